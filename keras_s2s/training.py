"""The custom teacher-forcing loop: what `model.fit` does, written out, plus resume.

`train` runs one `tf.function` step per batch (traced once: the input signature leaves batch
and length open), keeps a checkpoint per epoch in `checkpoint_dir`, and resumes from the
newest one by itself. Its numbers equal `model.fit`'s: both average the masked loss over every
real target token of the epoch, with the same optimizer and clipping.
"""

import json
import logging
import math
import os
import time

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
_IDS_SIGNATURE = [tf.TensorSpec([None, None], tf.int32, name="source_ids"),
                  tf.TensorSpec([None, None], tf.int32, name="target_ids")]


def make_optimizer(train_config, steps_per_epoch=None):
    """Adam with the configured learning rate (and decay) and global-norm gradient clipping.

    A decaying schedule needs `steps_per_epoch` to know where training ends.
    """
    learning_rate = train_config.learning_rate
    if train_config.learning_rate_decay == "cosine":
        if not steps_per_epoch:
            raise ValueError("learning_rate_decay='cosine' needs steps_per_epoch.")
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=train_config.epochs * steps_per_epoch, alpha=0.1)
    return keras.optimizers.Adam(learning_rate=learning_rate,
                                 global_clipnorm=train_config.clip_norm or None)


def train(model, train_dataset, train_config, validation_dataset=None, checkpoint_dir=None,
          verbose=1):
    """Trains `model` for `train_config.epochs` epochs in total, resuming if it can.

    Args:
        model: a `Seq2Seq`.
        train_dataset: batches of (source_ids, target_ids), e.g. from `make_dataset`.
        train_config: a `TrainConfig` (epochs, learning rate, clipping, label smoothing).
        validation_dataset: optional batches evaluated after every epoch.
        checkpoint_dir: where checkpoints and history.json go; if it already holds a
            checkpoint, training continues after its epoch, with its optimizer state.
        verbose: 1 shows a progress bar, 0 is silent.

    Returns:
        The history: one dict per epoch (loss, accuracy, val_loss, val_accuracy, seconds,
        target_tokens_per_second), earlier epochs from history.json included when resuming.
    """
    _check_dataset(train_dataset, "train_dataset")
    if validation_dataset is not None:
        _check_dataset(validation_dataset, "validation_dataset")
    cardinality = int(train_dataset.cardinality())
    steps_per_epoch = cardinality if cardinality > 0 else None  # unknown until an epoch ends
    optimizer = make_optimizer(train_config, steps_per_epoch)
    optimizer.build(model.trainable_variables)
    model.label_smoothing = train_config.label_smoothing
    epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epochs_done=epochs_done)
    manager, history = None, []
    if checkpoint_dir:
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir,
                                             max_to_keep=train_config.keep_checkpoints)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            history = _read_history(checkpoint_dir)[:int(epochs_done.numpy())]
            if verbose:
                print(f"Resumed from {manager.latest_checkpoint} after epoch "
                      f"{int(epochs_done.numpy())} (optimizer step {int(optimizer.iterations.numpy())}).")

    @tf.function(input_signature=_IDS_SIGNATURE)
    def train_step(source_ids, target_ids):
        with tf.GradientTape() as tape:
            loss_sum, token_count, correct = model.teacher_forcing_sums(
                source_ids, target_ids, training=True)
            loss = loss_sum / tf.maximum(token_count, 1.0)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss_sum, token_count, correct

    @tf.function(input_signature=_IDS_SIGNATURE)
    def evaluate_step(source_ids, target_ids):
        return model.teacher_forcing_sums(source_ids, target_ids, training=False)

    for epoch in range(int(epochs_done.numpy()), train_config.epochs):
        if verbose:
            print(f"Epoch {epoch + 1}/{train_config.epochs}")
        progress = keras.utils.Progbar(steps_per_epoch, verbose=verbose,
                                       stateful_metrics=["loss", "accuracy"])
        start = time.perf_counter()
        totals, step = _Totals(), 0
        for step, (source_ids, target_ids) in enumerate(train_dataset, start=1):
            totals.add(*train_step(source_ids, target_ids))
            if not math.isfinite(totals.last_loss):
                raise FloatingPointError(
                    f"The loss became {totals.last_loss} at epoch {epoch + 1}, step {step}; "
                    f"stopped without saving. The last checkpoint in {checkpoint_dir} is intact.")
            progress.update(step, list(totals.logs().items()))
        if step == 0:
            raise ValueError("train_dataset yielded no batch: there is nothing to train on.")
        steps_per_epoch = step
        seconds = time.perf_counter() - start
        logs = {"epoch": epoch + 1, **totals.logs(), "seconds": round(seconds, 3),
                "target_tokens_per_second": round(totals.tokens / seconds, 1)}
        if validation_dataset is not None:
            validation = _Totals()
            for source_ids, target_ids in validation_dataset:
                validation.add(*evaluate_step(source_ids, target_ids))
            logs.update({f"val_{key}": value for key, value in validation.logs().items()})
        progress.update(steps_per_epoch, [(key, value) for key, value in logs.items()
                                          if key.startswith("val_")], finalize=True)
        history.append(logs)
        epochs_done.assign(epoch + 1)
        if manager:
            manager.save(checkpoint_number=epoch + 1)
            _write_history(checkpoint_dir, history)
    return history


def average_checkpoints(model, checkpoint_dir, last=3):
    """Sets `model`'s weights to the mean of its `last` newest checkpoints; returns their paths.

    Averaging the last few epochs smooths the noise of the final updates and often gains
    a little BLEU for free.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1; got {last}.")
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None or not state.all_model_checkpoint_paths:
        raise ValueError(f"No checkpoint in checkpoint_dir={checkpoint_dir!r}.")
    paths = list(state.all_model_checkpoint_paths)[-last:]
    if len(paths) < last:
        logger.warning("Averaging %d checkpoints: %s keeps no more (asked for %d).", len(paths),
                       checkpoint_dir, last)
    total = None
    for path in paths:
        tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
        weights = [variable.numpy() for variable in model.weights]
        total = weights if total is None else [sum_ + weight for sum_, weight in zip(total, weights)]
    model.set_weights([sum_ / len(paths) for sum_ in total])
    return paths


def restore_weights(model, checkpoint_dir):
    """Loads the newest checkpoint's model weights into `model`; returns its path."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise ValueError(f"No checkpoint in checkpoint_dir={checkpoint_dir!r}.")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return latest


def _check_dataset(dataset, name):
    """Token-id batches of finite length, as `make_dataset` makes; anything else is refused."""
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(f"{name} is infinite (repeat()?); an epoch would never end.")
    specs = tf.nest.flatten(dataset.element_spec)
    if len(specs) != 2 or any(not spec.dtype.is_integer for spec in specs):
        raise ValueError(f"{name} must yield (source_ids, target_ids) integer batches, as "
                         f"make_dataset makes; got {dataset.element_spec}. Raw string pairs "
                         "work with model.fit.")


class _Totals:
    """Sums over an epoch, reported per real target token (as the Keras metrics do)."""

    def __init__(self):
        self.loss_sum = self.tokens = self.correct = 0.0
        self.last_loss = 0.0

    def add(self, loss_sum, token_count, correct):
        loss_sum, token_count = float(loss_sum), float(token_count)
        self.last_loss = loss_sum / max(token_count, 1.0)
        self.loss_sum += loss_sum
        self.tokens += token_count
        self.correct += float(correct)

    def logs(self):
        tokens = max(self.tokens, 1.0)
        return {"loss": self.loss_sum / tokens, "accuracy": self.correct / tokens}


def _read_history(checkpoint_dir):
    path = os.path.join(checkpoint_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _write_history(checkpoint_dir, history):
    # Write then rename, so an interrupted write never leaves a truncated history.
    path = os.path.join(checkpoint_dir, HISTORY_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(history, file, indent=1)
    os.replace(path + ".tmp", path)


def load_trained_model(checkpoint_dir):
    """Rebuilds the model a `keras-s2s train` run wrote to `checkpoint_dir`, with its newest weights."""
    from keras_s2s.model import Seq2Seq  # model.py does not depend on this module

    model = Seq2Seq.from_spec(checkpoint_dir)
    restore_weights(model, checkpoint_dir)
    return model
