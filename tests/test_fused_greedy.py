"""The XLA-compiled greedy path: same translations as the graph loop, bucketed shapes."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib
from keras_s2s.fast.fused_greedy import SOURCE_LENGTH_BUCKET, bucketed_source_ids, fixed_shape_greedy_search
from keras_s2s.search import greedy_search

from .test_search import END, scripted_next_step
from .test_translator import run_with_session_loader
from tests.helpers import DATES

SENTENCES = DATES + ["", "December 31, 1999 " * 12, "?? ~~ ¿"]


def test_buckets_pad_the_source_to_multiples_of_8_and_the_batch_to_powers_of_two():
    for batch, length, expected in ((1, 1, (1, 8)), (3, 8, (4, 8)), (5, 9, (8, 16)),
                                    (16, 17, (16, 24)), (17, 3, (32, 8))):
        ids = tf.reshape(tf.range(1, batch * length + 1), [batch, length])
        padded = bucketed_source_ids(ids).numpy()
        assert padded.shape == expected
        np.testing.assert_array_equal(padded[:batch, :length], ids.numpy())
        assert not padded[:, length:].any()  # padding id 0 after the real positions
        # Extra rows repeat real ones, so they finish with them.
        repeated = ids.numpy()[np.arange(expected[0] - batch) % batch]
        np.testing.assert_array_equal(padded[batch:, :length], repeated)
    assert SOURCE_LENGTH_BUCKET == 8


def compiled_search(paths, max_length):
    """fixed_shape_greedy_search over `scripted_next_step(paths)`, compiled by XLA."""
    next_step = scripted_next_step(paths)
    batch = len(paths)
    search = tf.function(jit_compile=True)(lambda: fixed_shape_greedy_search(
        lambda tokens, state, row_inputs: next_step(tokens, state), tf.zeros([batch], tf.int32),
        tf.zeros([batch], tf.int32), END, max_length, row_inputs=()))
    return search()


def test_fixed_shape_search_compiled_by_xla_matches_greedy_search():
    paths = [[2, 3, END, 4, 4, 4], [5, END, 2, 2, 2, 2], [2, 2, 2, 2, 2, 2]]
    steps, result = compiled_search(paths, 5)
    expected = greedy_search(scripted_next_step(paths), tf.zeros([3], tf.int32),
                             tf.zeros([3], tf.int32), END, 5)
    assert int(steps) == 5  # the third row never ends: the loop stops at max_length
    np.testing.assert_array_equal(result.tokens, expected.tokens)
    np.testing.assert_array_equal(result.lengths, expected.lengths)
    np.testing.assert_allclose(result.scores, expected.scores, rtol=1e-6)
    np.testing.assert_array_equal(result.step_outputs, expected.step_outputs)


def test_fixed_shape_search_pads_the_steps_after_every_row_ended():
    steps, result = compiled_search([[2, END, 3, 3, 3, 3], [END, 4, 4, 4, 4, 4]], 6)
    assert int(steps) == 2
    np.testing.assert_array_equal(result.tokens, [[2, END, 0, 0, 0, 0], [END, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(result.lengths, [2, 1])
    step_outputs = result.step_outputs.numpy()  # (batch, 6, 8)
    assert step_outputs[0, :2].any() and not step_outputs[0, 2:].any() and not step_outputs[1, 1:].any()


@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_jit_compiled_translator_translates_like_the_graph_loop(dates_model, batch_size):
    model, _, test_pairs = dates_model
    texts = ([source for source, _ in test_pairs] + SENTENCES)[:batch_size]
    graph = model.translator().greedy(tf.constant(texts))
    translator = translator_lib.Translator(model, jit_compile=True)
    fused = translator.greedy(tf.constant(texts))
    assert set(fused) == set(graph)
    for key in ("text", "source_tokens", "target_tokens", "length"):
        np.testing.assert_array_equal(fused[key].numpy(), graph[key].numpy(), err_msg=key)
    np.testing.assert_allclose(fused["score"], graph["score"], atol=1e-4)
    np.testing.assert_allclose(fused["attention"], graph["attention"], atol=1e-5)


@pytest.fixture(scope="module")
def jit_export(dates_model, tmp_path_factory):
    return dates_model[0].export(str(tmp_path_factory.mktemp("xla") / "dates" / "1"), jit_compile=True)


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_jit_compiled_export_handles_bad_input_and_reloads(dates_model, jit_export, dates_export):
    fused, graph = translator_lib.load(jit_export), translator_lib.load(dates_export)
    model_beam_size = tf.constant(dates_model[0].model_config.beam_size)
    invalid_utf8 = [b"March \xff\xfe 3, 2021", b"\xc3"]
    for texts in (SENTENCES, SENTENCES[:1], [""], ["x " * 2000], invalid_utf8, []):
        batch = tf.constant(texts, tf.string)
        for search in ("greedy", "beam"):  # beam at the model's size: the XLA program too
            arguments = (batch,) if search == "greedy" else (batch, model_beam_size)
            fused_out = getattr(fused, search)(*arguments)
            graph_out = getattr(graph, search)(*arguments)
            assert fused_out["text"].numpy().tolist() == graph_out["text"].numpy().tolist()
            assert fused_out["attention"].shape == graph_out["attention"].shape
    # The default signature of a greedy model goes through the same path.
    serving = fused.signatures["serving_default"](text=tf.constant(SENTENCES[:2]))
    expected = graph.greedy(tf.constant(SENTENCES[:2]))["text"]
    assert serving["text"].numpy().tolist() == expected.numpy().tolist()


def test_jit_compiled_path_with_a_bfloat16_projection(dates_model):
    model, _, test_pairs = dates_model
    texts = tf.constant([source for source, _ in test_pairs][:3])
    graph = translator_lib.Translator(model, projection_dtype="bfloat16")
    fused = translator_lib.Translator(model, projection_dtype="bfloat16", jit_compile=True)
    graph_out, fused_out = graph.greedy(texts), fused.greedy(texts)
    assert fused_out["text"].numpy().tolist() == graph_out["text"].numpy().tolist()
    # bfloat16 keeps 8 bits of mantissa, and XLA rounds the projection's inputs and outputs at
    # other points than the graph does: a sentence's summed log-probability moves by a few
    # parts in a hundred (CI saw 0.1194 against 0.1172), the chosen tokens not at all.
    np.testing.assert_allclose(fused_out["score"], graph_out["score"], rtol=0.05, atol=5e-3)


@pytest.mark.subprocess
def test_session_based_loader_runs_the_jit_compiled_export(dates_model, jit_export):
    # The loader TensorFlow Serving uses; the server itself also needs
    # --xla_cpu_compilation_enabled=true to compile the XLA program.
    result = run_with_session_loader(jit_export, "greedy", "March 3, 2021")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = dates_model[0].translator().greedy(tf.constant(["March 3, 2021"]))["text"][0]
    assert f"[{expected.numpy()!r}]" in result.stdout
