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


def test_finished_rows_leave_the_batch_when_the_step_reads_row_inputs():
    paths = [[3, END, 5, 5], [2, 2, 2, END], [END, 5, 5, 5]]

    def next_step(tokens, state, row_inputs):
        # The per-row table arrives as row inputs, gathered to the rows still decoding; the
        # step output records how many rows that is.
        wanted = tf.gather(row_inputs, tf.minimum(state, 3), batch_dims=1)
        rows_in_play = tf.cast(tf.shape(tokens)[0], tf.float32)
        return tf.one_hot(wanted, VOCAB) * 5.0, state + 1, tf.fill([tf.shape(tokens)[0], 1], rows_in_play)

    dropping = greedy_search(next_step, tf.zeros([3], tf.int32), tf.zeros([3], tf.int32), END, 8,
                             row_inputs=tf.constant(paths))
    plain = run(paths)
    np.testing.assert_array_equal(dropping.tokens, plain.tokens)
    np.testing.assert_array_equal(dropping.lengths, plain.lengths)
    np.testing.assert_allclose(dropping.scores, plain.scores, rtol=1e-6)
    # Row 1 decodes longest: 3 rows in play at its first step, then 2, then 1 and 1.
    np.testing.assert_array_equal(dropping.step_outputs.numpy()[1, :, 0], [3, 2, 1, 1])
    # Finished rows record nothing after their end.
    np.testing.assert_array_equal(dropping.step_outputs.numpy()[2, 1:, 0], [0, 0, 0])

from keras_s2s.search import filter_logits, sample_search  # noqa: E402


def one_step_model(probabilities):
    """Every row draws once from `probabilities`, then must end."""
    table = tf.math.log(tf.constant(probabilities, tf.float32))

    def next_step(tokens, state):
        batch = tf.shape(tokens)[0]
        first = tf.tile(table[tf.newaxis], [batch, 1])
        then_end = tf.tile(tf.math.log(tf.one_hot([END], VOCAB) + 1e-9), [batch, 1])
        return tf.where((state == 0)[:, tf.newaxis], first, then_end), state + 1, tf.zeros([batch, 1])

    return next_step


PROBABILITIES = [1e-9, 0.05, 0.5, 0.25, 0.15, 0.05]


def sample(keys, **options):
    keys = tf.constant(keys, tf.int64)
    batch = keys.shape[0]
    # In a graph, as the translator runs it: run eagerly, its per-row draws take seconds.
    return tf.function(lambda: sample_search(one_step_model(PROBABILITIES), tf.zeros([batch], tf.int32),
                                             tf.zeros([batch], tf.int32), END, 3, keys, **options))()


def test_sampling_follows_the_model_distribution():
    drawn = sample(list(range(4000))).tokens.numpy()[:, 0]
    frequencies = np.bincount(drawn, minlength=VOCAB) / len(drawn)
    np.testing.assert_allclose(frequencies, PROBABILITIES, atol=0.03)


def test_top_k_top_p_and_temperature_restrict_the_draws():
    keys = list(range(1000))
    assert set(sample(keys, top_k=2).tokens.numpy()[:, 0]) == {2, 3}
    assert set(sample(keys, top_p=0.7).tokens.numpy()[:, 0]) == {2, 3}  # 0.5 + 0.25 reach 0.7
    assert set(sample(keys, top_p=0.4).tokens.numpy()[:, 0]) == {2}
    assert set(sample(keys, temperature=0.0).tokens.numpy()[:, 0]) == {2}  # greedy
    cold = np.mean(sample(keys, temperature=0.3).tokens.numpy()[:, 0] == 2)
    hot = np.mean(sample(keys, temperature=3.0).tokens.numpy()[:, 0] == 2)
    assert cold > 0.8 > 0.5 > hot


def test_samples_depend_on_the_row_key_only():
    together = sample([5, 6, 7, 8]).tokens.numpy()
    for row, key in enumerate([5, 6, 7, 8]):
        alone = sample([key]).tokens.numpy()[0]
        np.testing.assert_array_equal(alone, together[row, :len(alone)])
    assert len({tuple(row) for row in sample(list(range(50))).tokens.numpy()}) > 1
    scores = sample([9]).scores.numpy()
    drawn = int(sample([9]).tokens.numpy()[0, 0])
    # The score is the model's log-probability of the drawn path (then [END] at ~1).
    np.testing.assert_allclose(scores[0], np.log(PROBABILITIES[drawn]), atol=1e-4)


def test_filter_logits_keeps_at_least_the_best_token():
    logits = tf.math.log(tf.constant([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]))
    kept = np.isfinite(filter_logits(logits, top_k=0, top_p=0.01).numpy())
    np.testing.assert_array_equal(kept, [[False, True, False], [False, False, True]])
    kept = np.isfinite(filter_logits(logits, top_k=2, top_p=1.0).numpy())
    # Row 2 has a tie at the second place: both tied tokens stay.
    np.testing.assert_array_equal(kept, [[False, True, True], [True, True, True]])
