"""Scaling out: one training step for one device or many, on `tf.distribute`.

Every training path (`model.fit`, `training.train`, scheduled sampling) runs one step,
`train_on_batch`, inside `strategy.run`, once per replica, on that replica's share of the
global batch. Two things make N replicas compute exactly what one device computes on the
whole batch:

1. Loss scaling. Each replica divides its summed token loss by the token count of the
   *global* batch (an all-reduce of the replicas' counts), not by its own. The optimizer
   sums the replicas' gradients, and the sum of `loss_sum_r / global_tokens` over replicas
   is the single-device mean loss, so the summed gradient is the single-device gradient.
2. Clipping. Keras clips each replica's share of the gradient before it sums them; with
   `global_clipnorm` that is not the clipping of the whole gradient. With more than one
   replica the gradients are summed here first, clipped as a whole, and handed to the
   optimizer as equal shares (sum / N), whose own sum is the clipped total again and
   whose norm is below the limit, so Keras' clipping leaves them alone.

On one device (the default strategy) these functions reduce to the plain computation.
"""

import tensorflow as tf

SUM = tf.distribute.ReduceOp.SUM


def global_token_count(token_count):
    """The real target tokens of the whole global batch, from one replica's count."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return token_count
    return replica.all_reduce(SUM, token_count)


def train_on_batch(model, optimizer, batch_sums):
    """One update of `model` from one replica's batch: the training step every path runs
    (`Seq2Seq.train_step` under `fit`, `training.train`'s loop, scheduled sampling).

    Args:
        model: the model whose trainable variables are updated.
        optimizer: a Keras optimizer built for them.
        batch_sums: a function () -> (loss_sum, token_count, correct), the batch's summed
            token loss, its real target tokens and the correct predictions among them,
            computed where the gradient tape sees it.

    Returns:
        (loss_sum, token_count, correct) of this replica's batch.
    """
    with tf.GradientTape() as tape:
        loss_sum, token_count, correct = batch_sums()
        # Dividing by the global batch's tokens makes the replicas' summed gradients the
        # single-device gradient (point 1 above).
        loss = loss_sum / tf.maximum(global_token_count(token_count), 1.0)
    gradients = tape.gradient(loss, model.trainable_variables)
    apply_gradients(optimizer, gradients, model.trainable_variables)
    return loss_sum, token_count, correct


def apply_gradients(optimizer, gradients, variables):
    """`optimizer.apply_gradients`, with the global-norm clipping of the summed gradient."""
    replica = tf.distribute.get_replica_context()
    replicas = 1 if replica is None else replica.num_replicas_in_sync
    clip_norm = getattr(optimizer, "global_clipnorm", None)
    if replicas > 1 and clip_norm:
        present = [index for index, gradient in enumerate(gradients) if gradient is not None]
        # Embedding gradients arrive as IndexedSlices; the division below needs tensors.
        total = replica.all_reduce(SUM, [tf.convert_to_tensor(gradients[index]) for index in present])
        total, _ = tf.clip_by_global_norm(total, clip_norm)
        gradients = list(gradients)
        for index, gradient in zip(present, total):
            gradients[index] = gradient / replicas
    optimizer.apply_gradients(zip(gradients, variables))


def distribute_dataset(dataset, strategy):
    """`dataset` as `strategy` feeds it: each global batch split across the replicas."""
    if strategy.num_replicas_in_sync == 1:
        return dataset
    return strategy.experimental_distribute_dataset(dataset)


def check_created_in_scope(model, strategy):
    """Refuses a model whose variables `strategy` did not create (they would not be mirrored)."""
    if strategy.num_replicas_in_sync == 1:
        return
    variable = model.trainable_variables[0]
    if not strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)):
        raise ValueError(f"The model's variables were not created under {type(strategy).__name__}"
                         ".scope(); build the model inside `with strategy.scope():`.")
