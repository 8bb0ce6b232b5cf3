"""Masked token-level loss and accuracy.

Both return sums and token counts rather than means so that every training path averages
the same way: per real target token over a whole epoch, whatever the batch shapes were.
"""

import tensorflow as tf

from keras_s2s.text import PAD_ID


def masked_cross_entropy(labels, logits, label_smoothing=0.0):
    """Summed cross-entropy over non-padding labels.

    Args:
        labels: (batch, t) int, PAD_ID where there is no token; or any shape (..., ) whose
            logits are (..., vocab), e.g. (tokens,) of real tokens only.
        logits: (batch, t, vocab) float, or (..., vocab) matching the labels.
        label_smoothing: share of the target probability spread uniformly over the vocabulary.

    Returns:
        (loss_sum, token_count): scalar float32 tensors.
    """
    mask = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)  # (batch, t)
    logits = tf.cast(logits, tf.float32)
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)  # (batch, t)
    if label_smoothing:
        # The smoothed target (1 - e) one_hot(y) + e / vocab, without building it:
        #   -sum_v target_v log p_v = (1 - e) (-log p_y) + e (logsumexp(z) - mean_v z_v).
        uniform_term = tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_mean(logits, axis=-1)
        per_token = (1.0 - label_smoothing) * per_token + label_smoothing * uniform_term
    return tf.reduce_sum(per_token * mask), tf.reduce_sum(mask)


def masked_correct(labels, logits):
    """Number of non-padding positions whose most likely token is the label (scalar float32)."""
    mask = tf.not_equal(labels, PAD_ID)
    predictions = tf.argmax(logits, axis=-1, output_type=labels.dtype)  # (batch, t)
    return tf.reduce_sum(tf.cast((predictions == labels) & mask, tf.float32))


def token_sums(labels, logits, label_smoothing=0.0):
    """(loss_sum, token_count, correct) over non-padding labels: `masked_cross_entropy` and
    `masked_correct` in one pass over the logits, the fast form the training step uses.

    Both terms of the smoothed loss share one log-sum-exp lse(z) = log Σ_v exp z_v:

        -Σ_v target_v log p_v = (1 - ε) (lse(z) - z_y) + ε (lse(z) - mean_v z_v)
                              = lse(z) - (1 - ε) z_y - ε mean_v z_v

    and the largest logit that lse computes anyway says whether the label is the most likely
    token (a tie with another token counts as correct, where argmax would pick the lower id).
    The textbook pair runs a softmax cross-entropy kernel, a second log-sum-exp and an argmax
    over the (tokens, vocab) logits; the values agree to float rounding (tests/test_losses.py),
    and `benchmarks/ab_training.py` measures what it saves.

    Args, shapes: as `masked_cross_entropy`.
    """
    mask = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)  # (...)
    logits = tf.cast(logits, tf.float32)  # (..., vocab)
    largest = tf.reduce_max(logits, axis=-1)  # (...)
    # The max is a constant shift for the gradient, as in tf.reduce_logsumexp.
    shifted = logits - tf.stop_gradient(largest)[..., tf.newaxis]
    log_sum_exp = tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=-1)) + tf.stop_gradient(largest)
    label_logits = tf.gather(logits, labels, batch_dims=labels.shape.rank)  # (...)
    per_token = log_sum_exp - (1.0 - label_smoothing) * label_logits
    if label_smoothing:
        per_token -= label_smoothing * tf.reduce_mean(logits, axis=-1)
    correct = tf.cast(tf.equal(label_logits, largest), tf.float32) * mask
    return tf.reduce_sum(per_token * mask), tf.reduce_sum(mask), tf.reduce_sum(correct)
