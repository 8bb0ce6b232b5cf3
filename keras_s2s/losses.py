"""Masked token-level loss and accuracy.

Both return sums and token counts rather than means so that every training path averages
the same way: per real target token over a whole epoch, whatever the batch shapes were.
"""

import tensorflow as tf

from keras_s2s.text import not_padding


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
    mask = tf.cast(not_padding(labels), tf.float32)  # (batch, t)
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
    mask = not_padding(labels)
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
    Its gradient is written out, as the softmax cross-entropy kernel does it:

        ∂/∂z_v = softmax(z)_v - (1 - ε) [v = y] - ε / vocab

    from the exponentials the forward pass kept; automatic differentiation of the lines
    above would take several more passes over the (tokens, vocab) logits, one of them a
    scatter for the label's gather. The textbook pair runs a softmax cross-entropy kernel, a
    second log-sum-exp and an argmax; values and gradients agree to float rounding
    (tests/test_losses.py), and `benchmarks/ab_training.py` measures what each form saves.

    Args, shapes: as `masked_cross_entropy`.
    """
    mask = tf.cast(not_padding(labels), tf.float32)  # (...)
    loss_sum, correct = _loss_sum_and_correct(labels, tf.cast(logits, tf.float32), mask,
                                              label_smoothing)
    return loss_sum, tf.reduce_sum(mask), correct


def one_pass_terms(labels, logits, mask, label_smoothing):
    """The forward pass of `token_sums` for float32 logits (..., vocab): the smoothed loss
    (...) and correct (...) of each position (zero where `mask` is), and what the gradient
    reuses, exp(z - max z) (..., vocab) and its sum (...)."""
    largest = tf.reduce_max(logits, axis=-1)  # (...)
    exp_shifted = tf.exp(logits - tf.stop_gradient(largest)[..., tf.newaxis])  # (..., vocab)
    sum_exp = tf.reduce_sum(exp_shifted, axis=-1)  # (...)
    label_logits = tf.gather(logits, labels, batch_dims=labels.shape.rank)  # (...)
    per_token = tf.math.log(sum_exp) + tf.stop_gradient(largest) - (1.0 - label_smoothing) * label_logits
    if label_smoothing:
        per_token -= label_smoothing * tf.reduce_mean(logits, axis=-1)
    correct = tf.cast(tf.equal(label_logits, largest), tf.float32) * mask
    return per_token * mask, correct, exp_shifted, sum_exp


def _loss_sum_and_correct(labels, logits, mask, label_smoothing):
    """`token_sums`' loss sum and correct count, with the written-out gradient."""
    @tf.custom_gradient
    def sums(logits):  # (..., vocab) float32
        per_token, correct, exp_shifted, sum_exp = one_pass_terms(labels, logits, mask, label_smoothing)

        def gradient(loss_sum_gradient, unused_correct_gradient):
            weights = loss_sum_gradient * mask  # (...): padding gets none
            vocab = tf.shape(logits)[-1]
            spread = exp_shifted / sum_exp[..., tf.newaxis] - label_smoothing / tf.cast(vocab, tf.float32)
            rows = tf.reshape(spread * weights[..., tf.newaxis], [-1, vocab])  # (n, vocab)
            # The label's own term, -(1 - ε) at one place a row.
            places = tf.stack([tf.range(tf.shape(rows)[0]), tf.reshape(labels, [-1])], axis=1)
            rows = tf.tensor_scatter_nd_sub(rows, places, (1.0 - label_smoothing) * tf.reshape(weights, [-1]))
            return tf.reshape(rows, tf.shape(logits))

        return (tf.reduce_sum(per_token), tf.reduce_sum(correct)), gradient

    return sums(logits)
