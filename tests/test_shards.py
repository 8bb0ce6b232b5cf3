"""Batches decoded in parts at the same time (`Translator(shards=...)`): same outputs as one
loop, in batch order, and graph loops that nothing orders one after the other."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib

from .test_fused_greedy import SENTENCES


@pytest.fixture(scope="module")
def sharded_translators(dates_model):
    return {shards: translator_lib.Translator(dates_model[0], shards=shards) for shards in (2, 3)}


def decode_every_way(translator, texts):
    text = tf.constant(texts, tf.string)
    return {"greedy": translator.greedy(text),
            "beam": translator.beam(text, tf.constant(3)),
            "sample": translator.sample(text, tf.constant(0.9), tf.constant(0), tf.constant(1.0),
                                        tf.constant(5, tf.int64))}


@pytest.mark.parametrize("shards, batch_sizes", [(2, (0, 1, 3, 4, 9)), (3, (6, 7))])
def test_parts_translate_like_one_loop(dates_model, sharded_translators, shards, batch_sizes):
    model, _, test_pairs = dates_model
    # Sentences of very different lengths first, so that the parts differ in width and steps.
    texts = SENTENCES + [source for source, _ in test_pairs]
    for batch_size in batch_sizes:  # below 2 rows a part (batch < 2 * shards): one loop
        whole = decode_every_way(model.translator(), texts[:batch_size])
        parts = decode_every_way(sharded_translators[shards], texts[:batch_size])
        for decoding, outputs in whole.items():
            assert set(parts[decoding]) == set(outputs)
            for key, expected in outputs.items():
                message = f"{decoding} {key}, batch {batch_size}"
                found = parts[decoding][key].numpy()
                assert found.shape == expected.shape, message
                if expected.dtype.is_floating:
                    np.testing.assert_allclose(found, expected, atol=1e-5, err_msg=message)
                else:
                    np.testing.assert_array_equal(found, expected.numpy(), err_msg=message)


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


def test_the_parts_loops_do_not_wait_for_each_other(sharded_translators):
    graph = sharded_translators[2].greedy.get_concrete_function().graph.as_graph_def()
    branches = [function for function in graph.library.function
                if sum(node.op == "While" for node in function.node_def) == 2]
    assert branches, "no function holds two decoding loops"
    for function in branches:
        nodes = {node.name: node for node in function.node_def}
        first, second = (name for name, node in nodes.items() if node.op == "While")
        assert first not in ancestors(nodes, second) and second not in ancestors(nodes, first)


def test_concat_padded_pads_every_axis_but_the_first():
    merged = translator_lib._concat_padded([tf.ones([2, 3, 1]), 2 * tf.ones([1, 1, 4])])
    assert merged.shape == (3, 3, 4)
    np.testing.assert_array_equal(merged[:2, :, :1], np.ones([2, 3, 1]))
    np.testing.assert_array_equal(merged[2, :1], 2 * np.ones([1, 4]))
    assert not merged.numpy()[:2, :, 1:].any() and not merged.numpy()[2, 1:].any()
    np.testing.assert_array_equal(translator_lib._concat_padded([tf.constant([1]), tf.constant([2, 3])]),
                                  [1, 2, 3])


@pytest.mark.parametrize("shards", [0, 1.5])
def test_shards_must_be_a_positive_integer(dates_model, shards):
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        translator_lib.Translator(dates_model[0], shards=shards)
