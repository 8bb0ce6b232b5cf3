"""The XLA-compiled beam search: the graph loop's n-best lists, with fixed shapes."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib
from keras_s2s.beam_search import beam_search
from keras_s2s.fast.fused_beam import fixed_shape_beam_search

from .test_beam_search import END, sentence_tables, with_row_inputs
from .test_fused_greedy import SENTENCES


@pytest.mark.parametrize("beam_size", [1, 3])
def test_fixed_shape_beam_search_compiled_by_xla_matches_the_graph_loop(beam_size):
    tables, starts = sentence_tables()
    max_length = 9
    expected = beam_search(with_row_inputs, tf.zeros([4], tf.int32), starts, END, max_length,
                           beam_size, 0.6, row_inputs=tf.constant(tables))
    compiled = tf.function(jit_compile=True)(lambda: fixed_shape_beam_search(
        with_row_inputs, tf.zeros([4], tf.int32), starts, END, max_length, beam_size, 0.6,
        tf.constant(tables)))
    steps, result = compiled()
    steps = int(steps)
    assert steps == expected.tokens.shape[2] and result.tokens.shape[2] == max_length
    np.testing.assert_array_equal(result.tokens[:, :, :steps], expected.tokens)
    assert not result.tokens[:, :, steps:].numpy().any()  # padding after the last step
    np.testing.assert_array_equal(result.lengths, expected.lengths)
    for field in ("scores", "log_probs"):
        np.testing.assert_allclose(getattr(result, field), getattr(expected, field), rtol=1e-6)
    np.testing.assert_allclose(result.step_outputs[:, :, :steps], expected.step_outputs, rtol=1e-6)


def test_jit_compiled_translator_beam_searches_like_the_graph_loop(any_dates_model):
    model, _, test_pairs = any_dates_model
    graph = translator_lib.Translator(model)
    fused = translator_lib.Translator(model, jit_compile=True)
    # The dates models decode greedily by default; the XLA program is compiled for the
    # translator's default beam size, so give both translators a real beam before tracing.
    beam_size = graph.default_beam_size = fused.default_beam_size = 3
    sources = [source for source, _ in test_pairs]
    # 1 and 3 sentences take the XLA program; 6, and another beam size, the graph loop.
    for texts, size in ((sources[:1], beam_size), (SENTENCES[-3:], beam_size),
                        (sources[:6], beam_size), (sources[:2], beam_size + 1)):
        texts = tf.constant(texts)
        expected, result = graph.beam(texts, size), fused.beam(texts, size)
        assert set(result) == set(expected)
        for key in ("text", "nbest", "length", "source_tokens", "target_tokens"):
            np.testing.assert_array_equal(result[key].numpy(), expected[key].numpy(), err_msg=key)
        for key in ("score", "nbest_scores", "attention"):
            np.testing.assert_allclose(result[key], expected[key], atol=1e-4, err_msg=key)
