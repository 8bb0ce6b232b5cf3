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
    if label_smoothing:
        vocab_size = tf.shape(logits)[-1]
        targets = tf.one_hot(labels, vocab_size, on_value=1.0 - label_smoothing,
                             off_value=0.0) + label_smoothing / tf.cast(vocab_size, tf.float32)
        per_token = tf.nn.softmax_cross_entropy_with_logits(targets, logits)  # (batch, t)
    else:
        per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)  # (batch, t)
    return tf.reduce_sum(per_token * mask), tf.reduce_sum(mask)


def masked_correct(labels, logits):
    """Number of non-padding positions whose most likely token is the label (scalar float32)."""
    mask = tf.not_equal(labels, PAD_ID)
    predictions = tf.argmax(logits, axis=-1, output_type=labels.dtype)  # (batch, t)
    return tf.reduce_sum(tf.cast((predictions == labels) & mask, tf.float32))
