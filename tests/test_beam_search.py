"""Beam search driven by fake Markov-chain models whose best paths are computed exhaustively."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.beam_search import beam_search, length_penalty
from keras_s2s.search import greedy_search

END, PAD = 1, 0


def markov_model(transition_logits):
    """next_step where the next-token logits depend only on the previous token.

    The step output is the one-hot of the input token, so a hypothesis' recorded outputs
    must spell its own tokens shifted right by one.
    """
    table = tf.constant(transition_logits, tf.float32)
    vocab = table.shape[0]

    def next_step(tokens, state):
        return tf.gather(table, tokens), state, tf.one_hot(tokens, vocab)

    return next_step


def best_path(transition_logits, start, max_length, alpha=0.0):
    """Exhaustive search over every sequence that ends in END (or fills max_length)."""
    log_probs = tf.nn.log_softmax(tf.constant(transition_logits, tf.float32)).numpy()
    vocab = len(transition_logits)
    best = None
    for length in range(1, max_length + 1):
        for sequence in itertools.product(range(vocab), repeat=length):
            if END in sequence[:-1] or PAD in sequence or (sequence[-1] != END and length < max_length):
                continue
            previous, total = start, 0.0
            for token in sequence:
                total, previous = total + log_probs[previous, token], token
            score = total / ((5 + length) / 6) ** alpha
            if best is None or score > best[0]:
                best = (score, sequence)
    return best


def search(transition_logits, starts, beam_size, max_length=4, alpha=0.0):
    starts = tf.constant(starts, tf.int32)
    return beam_search(markov_model(transition_logits), tf.zeros_like(starts), starts, END,
                       max_length, beam_size, alpha)


def test_beam_finds_the_path_greedy_misses():
    # From 2: token 3 looks best (0.55) but leads nowhere likely; token 4 (0.45) leads to END.
    logits = np.full((5, 5), -9.0)
    logits[:, PAD] = -1e9
    logits[2, 3], logits[2, 4] = np.log(0.55), np.log(0.45)
    logits[3, 2:] = np.log(0.33)
    logits[4, END] = 0.0
    greedy = greedy_search(markov_model(logits), tf.zeros([1], tf.int32), tf.constant([2]), END, 4)
    beam = search(logits, [2], beam_size=2)
    assert greedy.tokens.numpy()[0, 0] == 3
    np.testing.assert_array_equal(beam.tokens.numpy()[0, 0, :2], [4, END])
    assert beam.log_probs.numpy()[0, 0] > greedy.scores.numpy()[0]


@pytest.mark.parametrize("seed", range(5))
def test_wide_beam_equals_exhaustive_search_and_beam_one_equals_greedy(seed):
    logits = np.random.default_rng(seed).normal(size=(5, 5)) * 2
    logits[:, PAD] = -1e9
    starts = [0, 2, 3, 4]
    wide = search(logits, starts, beam_size=64)
    single = search(logits, starts, beam_size=1)
    greedy = greedy_search(markov_model(logits), tf.zeros([4], tf.int32), tf.constant(starts), END, 4)
    for row, start in enumerate(starts):
        score, sequence = best_path(logits, start, 4)
        np.testing.assert_allclose(wide.log_probs[row, 0], score, rtol=1e-5)
        np.testing.assert_array_equal(wide.tokens[row, 0, :len(sequence)], sequence)
        length = int(greedy.lengths[row])
        np.testing.assert_array_equal(single.tokens[row, 0, :length], greedy.tokens[row, :length])
        np.testing.assert_allclose(single.log_probs[row, 0], greedy.scores[row], rtol=1e-6)


def test_length_penalty_changes_the_choice_as_the_formula_says():
    # From 0: END now (p = 0.4), or token 2 then END (0.6 * 0.9 = 0.54... scaled below).
    logits = np.full((4, 4), -1e9)
    logits[0, END], logits[0, 2] = np.log(0.5), np.log(0.5)
    logits[2, END], logits[2, 3] = np.log(0.8), np.log(0.2)
    short, long = np.log(0.5), np.log(0.5 * 0.8)
    for alpha in (0.0, 0.6, 2.0, 5.0):
        prefers_long = long / length_penalty(2, alpha) > short / length_penalty(1, alpha)
        result = search(logits, [0], beam_size=3, alpha=alpha)
        assert int(result.lengths[0, 0]) == (2 if prefers_long else 1), alpha
    # Both answers occur in this range, so the penalty really decides.
    assert not np.log(0.4) / length_penalty(2, 0.0) > np.log(0.5) / length_penalty(1, 0.0)


def test_nbest_is_sorted_and_scores_are_normalised_log_probs():
    logits = np.random.default_rng(7).normal(size=(6, 6))
    logits[:, PAD] = -1e9
    result = search(logits, [0, 3], beam_size=4, max_length=5, alpha=0.6)
    scores = result.scores.numpy()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    np.testing.assert_allclose(scores, result.log_probs / length_penalty(result.lengths, 0.6), rtol=1e-5)


def test_step_outputs_follow_their_hypothesis():
    logits = np.random.default_rng(3).normal(size=(6, 6))
    logits[:, PAD] = -1e9
    result = search(logits, [2, 5], beam_size=3, max_length=5)
    tokens, outputs = result.tokens.numpy(), result.step_outputs.numpy()
    for row, start in enumerate([2, 5]):
        for hypothesis in range(3):
            length = int(result.lengths[row, hypothesis])
            inputs = [start] + list(tokens[row, hypothesis, :length - 1])
            np.testing.assert_array_equal(outputs[row, hypothesis, :length].argmax(-1), inputs)
            assert np.all(outputs[row, hypothesis, length:] == 0)


def test_rows_do_not_depend_on_the_batch():
    logits = np.random.default_rng(11).normal(size=(6, 6))
    logits[:, PAD] = -1e9
    starts = [0, 2, 3, 4, 5]
    together = search(logits, starts, beam_size=3, max_length=5)
    for row, start in enumerate(starts):
        alone = search(logits, [start], beam_size=3, max_length=5)
        np.testing.assert_allclose(together.scores[row], alone.scores[0], rtol=1e-6)
        width = alone.tokens.shape[-1]
        np.testing.assert_array_equal(together.tokens[row, :, :width], alone.tokens[0])


def test_beam_size_can_be_a_tensor_inside_one_graph():
    logits = np.random.default_rng(5).normal(size=(5, 5))
    logits[:, PAD] = -1e9
    next_step = markov_model(logits)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def run(starts, beam_size):
        return beam_search(next_step, tf.zeros_like(starts), starts, END, 4, beam_size).scores

    assert run(tf.constant([0, 2]), tf.constant(2)).shape == (2, 2)
    assert run(tf.constant([0, 2]), tf.constant(4)).shape == (2, 4)
    assert run.experimental_get_tracing_count() == 1


def test_a_constant_beam_size_traces_too():
    logits = np.random.default_rng(5).normal(size=(5, 5))
    logits[:, PAD] = -1e9
    next_step = markov_model(logits)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def run(starts):
        return beam_search(next_step, tf.zeros_like(starts), starts, END, 4, beam_size=3).scores

    assert run(tf.constant([0, 2])).shape == (2, 3)


def sentence_tables():
    """Four sentences, each with its own transition table (its "source"), so that they
    finish at different steps: (4, 6, 6) float32 logits, and their start tokens (4,)."""
    rng = np.random.default_rng(11)
    tables = rng.normal(size=(4, 6, 6)).astype("float32") * 2.0
    tables[:, :, PAD] = -1e9
    tables[0, :, END] += 6.0  # sentence 0 ends at once, sentence 3 tends to run long
    tables[3, :, END] -= 3.0
    return tables, tf.constant([2, 3, 4, 5])


def with_row_inputs(tokens, state, row_inputs):
    """A step reading each row's table from row_inputs (rows, vocab, vocab); the state counts
    steps and the step output records it."""
    return (tf.gather(row_inputs, tokens, batch_dims=1), state + 1,
            tf.one_hot(tokens, row_inputs.shape[-1]) * tf.cast(state, tf.float32)[:, tf.newaxis])


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_sentences_that_are_done_leave_without_changing_any_result(beam_size):
    # The row-inputs path drops finished sentences, the closure path cannot.
    tables, starts = sentence_tables()
    tiled = tf.repeat(tf.constant(tables), beam_size, axis=0)

    def closed_over(tokens, state):
        return with_row_inputs(tokens, state, tiled)

    plain = beam_search(closed_over, tf.zeros([4], tf.int32), starts, END, 9, beam_size, 0.6)
    dropping = beam_search(with_row_inputs, tf.zeros([4], tf.int32), starts, END, 9, beam_size,
                           0.6, row_inputs=tf.constant(tables))
    lengths = plain.lengths.numpy()[:, 0]
    assert lengths.min() < lengths.max()  # sentences did finish at different steps
    for field in ("tokens", "lengths"):
        np.testing.assert_array_equal(getattr(dropping, field), getattr(plain, field))
    for field in ("scores", "log_probs", "step_outputs"):
        np.testing.assert_allclose(getattr(dropping, field), getattr(plain, field), rtol=1e-6)
