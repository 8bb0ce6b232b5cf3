"""Greedy search driven by fake models whose best path is known."""

import numpy as np
import tensorflow as tf

from keras_s2s.search import greedy_search, sequence_lengths

END = 1
VOCAB = 6


def scripted_next_step(paths):
    """A model that emits paths[row][step] with probability ~0.9 at every step.

    Its state is the step counter per row; its step output is the one-hot of the row's
    step, so the recorded outputs can be checked too.
    """
    table = tf.constant(paths, tf.int32)  # (batch, steps)

    def next_step(tokens, state):
        step = state  # (batch,)
        wanted = tf.gather(table, tf.minimum(step, table.shape[1] - 1), batch_dims=1)
        logits = tf.one_hot(wanted, VOCAB) * 5.0
        return logits, step + 1, tf.one_hot(step, 8)

    return next_step


def run(paths, max_length=8):
    batch = len(paths)
    return greedy_search(scripted_next_step(paths), tf.zeros([batch], tf.int32),
                         tf.zeros([batch], tf.int32), END, max_length)


def test_greedy_follows_the_best_path_and_stops_at_end():
    result = run([[3, 4, END, 5, 5], [2, END, 5, 5, 5]])
    np.testing.assert_array_equal(result.tokens, [[3, 4, END], [2, END, 0]])
    np.testing.assert_array_equal(result.lengths, [3, 2])
    step_log_prob = np.log(np.exp(5.0) / (np.exp(5.0) + VOCAB - 1))
    np.testing.assert_allclose(result.scores, [3 * step_log_prob, 2 * step_log_prob], rtol=1e-5)
    # The step outputs stop at the row's end: row 1 has zeros at its third step.
    np.testing.assert_array_equal(result.step_outputs.numpy()[1, 2], np.zeros(8))
    assert result.step_outputs.numpy()[0, 2, 2] == 1.0


def test_greedy_stops_at_max_length_without_end():
    result = run([[2, 3, 4, 5, 2, 3, 4, 5]], max_length=4)
    np.testing.assert_array_equal(result.tokens, [[2, 3, 4, 5]])
    np.testing.assert_array_equal(result.lengths, [4])


def test_rows_do_not_depend_on_the_rest_of_the_batch():
    paths = [[3, 4, END, 5], [2, 2, 2, END], [END, 5, 5, 5]]
    together = run(paths)
    for row, path in enumerate(paths):
        alone = run([path])
        length = int(alone.lengths[0])
        np.testing.assert_array_equal(together.tokens[row, :length], alone.tokens[0, :length])
        np.testing.assert_allclose(together.scores[row], alone.scores[0])


def test_empty_batch_gives_empty_results():
    def next_step(tokens, state):
        return tf.one_hot(tokens, VOCAB), state, tf.zeros([tf.shape(tokens)[0], 3])

    result = greedy_search(next_step, tf.zeros([0], tf.int32),
                           tf.zeros([0], tf.int32), END, 5)
    assert result.tokens.shape[0] == 0 and result.scores.shape == (0,)


def test_greedy_runs_inside_a_graph_function_with_one_trace():
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.int32)])
    def search(paths):
        traces.append(1)
        table = paths

        def next_step(tokens, state):
            wanted = tf.gather(table, tf.minimum(state, 3), batch_dims=1)
            return tf.one_hot(wanted, VOCAB) * 5.0, state + 1, tf.zeros([tf.shape(state)[0], 1])

        batch = tf.shape(paths)[0]
        return greedy_search(next_step, tf.zeros([batch], tf.int32), tf.zeros([batch], tf.int32),
                             END, 6).tokens

    np.testing.assert_array_equal(search(tf.constant([[2, END, 0, 0]])), [[2, END]])
    np.testing.assert_array_equal(search(tf.constant([[3, 3, END, 0], [END, 0, 0, 0]])),
                                  [[3, 3, END], [END, 0, 0]])
    assert len(traces) == 1


def test_sequence_lengths_count_through_the_first_end():
    np.testing.assert_array_equal(
        sequence_lengths(tf.constant([[5, END, 0, END], [5, 5, 5, 5], [END, 0, 0, 0]]), END),
        [2, 4, 1])
