"""The training step's one-pass loss (`token_sums`) against the textbook pair it replaces."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.losses import masked_correct, masked_cross_entropy, token_sums
from keras_s2s.text import PAD_ID


def textbook_sums(labels, logits, label_smoothing):
    loss_sum, token_count = masked_cross_entropy(labels, logits, label_smoothing)
    return loss_sum, token_count, masked_correct(labels, logits)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(37,), (4, 9)])  # real tokens only, or (batch, t) with padding
def test_one_pass_sums_and_gradients_equal_the_textbook_pair(label_smoothing, shape):
    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(scale=4.0, size=shape + (50,)), tf.float32)
    labels = rng.integers(1, 50, size=shape)
    labels[..., -2:] = PAD_ID  # padding, ignored by both
    # Some labels made the most likely token, so that `correct` counts more than chance.
    flat_logits = logits.numpy().reshape(-1, 50)
    flat_labels = labels.reshape(-1)
    flat_labels[::3] = flat_logits[::3].argmax(-1)
    labels = tf.constant(flat_labels.reshape(shape), tf.int32)
    sums, gradients = [], []
    for function in (textbook_sums, token_sums):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            values = function(labels, logits, label_smoothing)
        sums.append([float(value) for value in values])
        gradients.append(tape.gradient(values[0], logits).numpy())
    np.testing.assert_allclose(sums[1], sums[0], rtol=1e-5)
    assert sums[0][2] >= np.ceil(np.sum(flat_labels[::3] != PAD_ID))  # the planted ones at least
    np.testing.assert_allclose(gradients[1], gradients[0], atol=1e-6)


def test_a_tie_for_the_largest_logit_counts_as_correct():
    logits = tf.constant([[2.0, 5.0, 5.0, 1.0], [0.0, 1.0, 3.0, 3.0]])
    labels = tf.constant([2, 3])  # tied with a lower id, which argmax would pick
    assert float(token_sums(labels, logits)[2]) == 2.0
    assert float(masked_correct(labels, logits)) == 0.0
