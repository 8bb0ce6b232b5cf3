"""Batches searched in shards at the same time (`keras_s2s.fast.shards`, `Translator(shards=...)`):
shards dealt and merged back in batch order, the same outputs as one loop, and graph loops
that nothing orders one after the other."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib
from keras_s2s.fast.shards import concat_padded, search_in_shards

from .test_fused_greedy import SENTENCES
from .test_translator import run_with_session_loader


def test_shards_are_dealt_longest_first_and_merged_in_batch_order():
    lengths = [3, 1, 5, 2, 4]
    source_ids = tf.constant([[7] * length + [0] * (5 - length) for length in lengths])

    def search(shard_ids, rows):  # reports what each shard was given
        shard_size = tf.shape(rows)[0]
        return {"ids": shard_ids, "rows": rows, "shard_size": tf.fill([shard_size], shard_size),
                "width": tf.fill([shard_size], tf.shape(shard_ids)[1])}

    merged = search_in_shards(source_ids, search, shards=2)
    np.testing.assert_array_equal(merged["ids"], source_ids)  # back in order, zero-padded
    np.testing.assert_array_equal(merged["rows"], np.arange(5))
    # Longest first (positions 2, 4, 0, 3, 1) dealt in turn: shards {2, 0, 1} and {4, 3}.
    np.testing.assert_array_equal(merged["shard_size"], [3, 3, 3, 2, 2])
    # Each shard is as wide as its own longest sentence.
    np.testing.assert_array_equal(merged["width"], [5, 5, 5, 4, 4])


def test_concat_padded_pads_every_axis_but_the_first():
    merged = concat_padded([tf.ones([2, 3, 1]), 2 * tf.ones([1, 1, 4])]).numpy()
    assert merged.shape == (3, 3, 4)
    np.testing.assert_array_equal(merged[:2, :, :1], np.ones([2, 3, 1]))
    np.testing.assert_array_equal(merged[2, :1], 2 * np.ones([1, 4]))
    assert not merged[:2, :, 1:].any() and not merged[2, 1:].any()
    np.testing.assert_array_equal(concat_padded([tf.constant([1]), tf.constant([2, 3])]), [1, 2, 3])


@pytest.fixture(scope="module")
def sharded_translators(dates_model):
    return {shards: translator_lib.Translator(dates_model[0], shards=shards) for shards in (2, 3)}


def decode_every_way(translator, texts):
    text = tf.constant(texts, tf.string)
    return {"greedy": translator.greedy(text),
            "beam": translator.beam(text, tf.constant(3)),
            "sample": translator.sample(text, tf.constant(0.9), tf.constant(0), tf.constant(1.0),
                                        tf.constant(5, tf.int64))}


def assert_same_outputs(found, expected, batch_size):
    for decoding, outputs in expected.items():
        assert set(found[decoding]) == set(outputs)
        for key, value in outputs.items():
            message = f"{decoding} {key}, batch {batch_size}"
            result = found[decoding][key].numpy()
            assert result.shape == tuple(value.shape), message
            if value.dtype.is_floating:
                np.testing.assert_allclose(result, value, atol=1e-5, err_msg=message)
            else:
                np.testing.assert_array_equal(result, value.numpy(), err_msg=message)


# Sentences of very different lengths first, so that the shards differ in width and steps.
def mixed_texts(test_pairs):
    return SENTENCES + [source for source, _ in test_pairs]


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
@pytest.mark.parametrize("shards, batch_sizes", [(2, (0, 1, 3, 4, 9)), (3, (5, 6, 7))])
def test_shards_translate_like_one_loop(dates_model, sharded_translators, shards, batch_sizes):
    model, _, test_pairs = dates_model
    texts = mixed_texts(test_pairs)
    for batch_size in batch_sizes:  # below 2 rows a shard (batch < 2 * shards): one loop
        assert_same_outputs(decode_every_way(sharded_translators[shards], texts[:batch_size]),
                            decode_every_way(model.translator(), texts[:batch_size]), batch_size)


def test_shards_share_the_bfloat16_projection(dates_model):
    model, _, test_pairs = dates_model
    text = tf.constant(mixed_texts(test_pairs)[:6])
    # Kept in a list: a translator's tf.functions hold it only weakly.
    translators = [translator_lib.Translator(model, projection_dtype="bfloat16", shards=shards)
                   for shards in (1, 2)]
    whole, sharded = (translator.greedy(text) for translator in translators)
    np.testing.assert_array_equal(sharded["text"], whole["text"])
    np.testing.assert_allclose(sharded["score"], whole["score"], atol=1e-5)


def ancestors(nodes, name):
    """Every node `name` depends on, through data and control inputs, within one function."""
    seen, pending = set(), [name]
    while pending:
        for source in nodes[pending.pop()].input:
            source = source.lstrip("^").split(":")[0]
            if source in nodes and source not in seen:
                seen.add(source)
                pending.append(source)
    return seen


@pytest.mark.parametrize("signature", ["greedy", "beam", "sample"])
def test_the_shards_loops_do_not_wait_for_each_other(sharded_translators, signature):
    function = getattr(sharded_translators[2], signature)
    graph = function.get_concrete_function().graph.as_graph_def()
    branches = [function for function in graph.library.function
                if sum(node.op == "While" for node in function.node_def) == 2]
    assert branches, "no function holds the two shards' loops"
    for branch in branches:
        nodes = {node.name: node for node in branch.node_def}
        first, second = (name for name, node in nodes.items() if node.op == "While")
        assert first not in ancestors(nodes, second) and second not in ancestors(nodes, first)


@pytest.mark.subprocess
def test_sharded_export_reloads_and_serves_the_same_outputs(dates_model, sharded_translators,
                                                            tmp_path):
    model, _, test_pairs = dates_model
    texts = mixed_texts(test_pairs)[:5]
    path = sharded_translators[2].save(str(tmp_path / "dates" / "1"))
    assert_same_outputs(decode_every_way(translator_lib.load(path), texts),
                        decode_every_way(model.translator(), texts), len(texts))
    # The session-based loader of TensorFlow Serving, on a batch that is split.
    result = run_with_session_loader(path, "greedy", texts)
    assert result.returncode == 0, result.stderr[-2000:]
    for translation in model.translate(texts):
        assert f"b'{translation}'" in result.stdout


@pytest.mark.parametrize("shards", [0, 1.5, None, "2", True])
def test_shards_must_be_a_positive_integer(dates_model, shards):
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        translator_lib.Translator(dates_model[0], shards=shards)
