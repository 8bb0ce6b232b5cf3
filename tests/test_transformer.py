"""The Transformer layers and stacks: equations, masks, the key/value cache, configuration errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.config import ModelConfig
from keras_s2s.kv_cache import FixedCache, GrowingCache
from keras_s2s.model import Seq2Seq
from keras_s2s.multi_head_attention import MultiHeadAttention
from keras_s2s.positional_encoding import PositionalEmbedding, sinusoidal_table
from keras_s2s.source_memory import SourceMemory
from keras_s2s.text import Vocabulary
from keras_s2s.transformer import TransformerDecoder, TransformerEncoder
from keras_s2s.transformer_layers import FeedForward, TransformerDecoderLayer, TransformerEncoderLayer

from .layer_checks import check_layer

RNG = np.random.default_rng(0)


def random(*shape):
    return tf.constant(RNG.normal(size=shape), tf.float32)


def test_multi_head_attention_equals_keras_with_the_same_weights():
    query, value = random(2, 3, 8), random(2, 5, 8)
    mask = tf.constant(RNG.random((2, 3, 5)) > 0.3)
    ours = MultiHeadAttention(num_heads=2, units=8)
    output, weights = ours(query, value, mask)
    reference = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    reference(query, value, attention_mask=mask)
    # Keras keeps each projection as (units, heads, head_units); ours is (units, units).
    for name, dense in (("query", ours.query_projection), ("key", ours.key_projection),
                        ("value", ours.value_projection)):
        einsum = getattr(reference, f"_{name}_dense")
        einsum.kernel.assign(tf.reshape(dense.kernel, (8, 2, 4)))
        einsum.bias.assign(tf.reshape(dense.bias, (2, 4)))
    reference._output_dense.kernel.assign(tf.reshape(ours.output_projection.kernel, (2, 4, 8)))
    reference._output_dense.bias.assign(ours.output_projection.bias)
    expected, expected_weights = reference(query, value, attention_mask=mask,
                                           return_attention_scores=True)
    np.testing.assert_allclose(output, expected, atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)


def test_padding_gets_no_weight_and_the_causal_mask_hides_the_future():
    layer = TransformerDecoderLayer(units=8, num_heads=2, ff_units=16)
    source_mask = tf.constant([[True, True, False, False]])
    _, cross_weights = layer(random(1, 3, 8), random(1, 4, 8), source_mask)
    np.testing.assert_array_equal(cross_weights[..., 2:], 0.0)
    np.testing.assert_allclose(tf.reduce_sum(cross_weights, -1), 1.0, rtol=1e-6)
    # The first target position sees only itself: its output cannot depend on later positions.
    inputs = random(1, 3, 8)
    changed = tf.concat([inputs[:, :1], random(1, 2, 8)], axis=1)
    first, _ = layer(inputs, random(1, 4, 8) * 0, source_mask)
    first_changed, _ = layer(changed, random(1, 4, 8) * 0, source_mask)
    np.testing.assert_allclose(first[:, 0], first_changed[:, 0], atol=1e-6)


def test_the_sinusoidal_table_follows_the_paper():
    table = sinusoidal_table(50, 16)
    position, pair = 7, 3
    angle = position / 10000 ** (2 * pair / 16)
    assert table[position, 2 * pair] == pytest.approx(np.sin(angle), abs=1e-6)
    assert table[position, 2 * pair + 1] == pytest.approx(np.cos(angle), abs=1e-6)
    embedding = PositionalEmbedding(vocab_size=10, units=16, max_length=50)
    ids = tf.constant([[4, 5, 6]])
    np.testing.assert_allclose(embedding(ids), tf.gather(embedding.embeddings, ids) * 4.0 + table[:3],
                               atol=1e-5)


def decoder_steps(decoder, inputs, cache=FixedCache):
    """The decoder's logits and attention, one cached `step` at a time, stacked like `call`'s."""
    memory, target_ids = inputs["memory"], inputs["target_ids"]
    state = decoder.search_state(memory, target_ids.shape[1], cache)
    step_logits, step_weights = [], []
    for position in range(target_ids.shape[1]):
        logits, state, weights = decoder.step(target_ids[:, position], state, memory)
        step_logits.append(logits)
        step_weights.append(weights)
    return tf.stack(step_logits, axis=1), tf.stack(step_weights, axis=1)


def memory_for(decoder, encoder_outputs, source_mask):
    """A `SourceMemory` of given encoder outputs, with the decoder's own cross-attention keys."""
    if not decoder.built:
        decoder.build((None, None))
    return SourceMemory(encoder_outputs, source_mask, decoder.compute_keys(encoder_outputs), [])


STACK = {"units": 16, "num_layers": 2, "num_heads": 4, "ff_units": 32, "max_length": 12}


# Each option is on in one configuration and off in another (all 8 combinations cost minutes).
@pytest.mark.parametrize("norm_first,positional,tie_embeddings",
                         [(True, "sinusoidal", False), (False, "learned", True), (True, "learned", True)])
def test_decoder_steps_with_the_cache_equal_teacher_forcing(norm_first, positional, tie_embeddings):
    source_mask = tf.constant([[True] * 5, [True, True, False, False, False]])
    init_kwargs = {"vocab_size": 30, **STACK, "norm_first": norm_first, "positional": positional,
                   "tie_embeddings": tie_embeddings}
    memory = memory_for(TransformerDecoder(**init_kwargs), random(2, 5, 16), source_mask)
    check_layer(TransformerDecoder, init_kwargs,
                {"target_ids": tf.constant([[2, 5, 6, 7, 8, 9], [2, 7, 8, 1, 0, 0]]),
                 "memory": memory},
                step=decoder_steps)


def test_the_growing_cache_steps_as_the_fixed_buffer_does():
    decoder = TransformerDecoder(vocab_size=30, **STACK)
    memory = memory_for(decoder, random(2, 5, 16),
                        tf.constant([[True] * 5, [True, True, False, False, False]]))
    inputs = {"target_ids": tf.constant([[2, 5, 6, 7, 8, 9], [2, 7, 8, 1, 0, 0]]), "memory": memory}
    fixed_logits, fixed_weights = decoder_steps(decoder, inputs)
    growing_logits, growing_weights = decoder_steps(decoder, inputs, GrowingCache)
    np.testing.assert_allclose(growing_logits, fixed_logits, atol=1e-5)
    np.testing.assert_allclose(growing_weights, fixed_weights, atol=1e-6)
    # After t steps the growing cache holds t positions; the fixed one all max_length.
    state = decoder.search_state(memory, 6, GrowingCache)
    fixed_state = decoder.search_state(memory, 6, FixedCache)
    for token in (2, 5, 6):
        _, state, _ = decoder.step(tf.fill([2], token), state, memory)
        _, fixed_state, _ = decoder.step(tf.fill([2], token), fixed_state, memory)
    assert all(isinstance(cache, GrowingCache) for cache in state.caches)
    assert [tuple(cache.keys.shape) for cache in state.caches] == [(2, 4, 3, 4)] * 2
    assert [tuple(cache.keys.shape) for cache in fixed_state.caches] == [(2, 4, 6, 4)] * 2
    np.testing.assert_array_equal(state.positions, [3, 3])
    # The searches' loops learn from the state which axes may change: rows, and positions
    # of the growing cache only.
    invariants = state.shape_invariants()
    assert invariants.caches[0].keys.as_list() == [None, 4, None, 4]
    assert fixed_state.shape_invariants().caches[0].keys.as_list() == [None, 4, 6, 4]


@pytest.mark.parametrize("norm_first", [True, False])
def test_every_transformer_layer_passes_the_layer_checks(norm_first):
    check_layer(TransformerEncoder, {"vocab_size": 20, **STACK, "norm_first": norm_first},
                {"source_ids": tf.constant([[5, 6, 7, 3, 0], [4, 3, 0, 0, 0]])})
    shared = {"units": 16, "num_heads": 4, "ff_units": 32, "norm_first": norm_first}
    source_mask = tf.constant([[True] * 5, [True] * 2 + [False] * 3])
    check_layer(TransformerEncoderLayer, shared, {"inputs": random(2, 5, 16), "source_mask": source_mask})
    check_layer(FeedForward, {"units": 16, "ff_units": 32}, {"inputs": random(2, 3, 16)})
    check_layer(MultiHeadAttention, {"num_heads": 4, "units": 16},
                {"query": random(2, 3, 16), "value": random(2, 5, 16)})
    check_layer(PositionalEmbedding, {"vocab_size": 20, "units": 16, "max_length": 12,
                                      "positional": "learned"},
                {"token_ids": tf.constant([[5, 6, 7]])})


def test_units_not_divisible_by_heads_is_refused_naming_the_fields():
    with pytest.raises(ValueError, match="units.*num_heads"):
        ModelConfig(architecture="transformer", units=30, num_heads=4)
    with pytest.raises(ValueError, match="units.*num_heads"):
        MultiHeadAttention(num_heads=4, units=30)


def test_a_shared_vocabulary_must_be_one_vocabulary():
    with pytest.raises(ValueError, match="share_embeddings.*max_source_vocab"):
        ModelConfig(architecture="transformer", share_embeddings=True, max_source_vocab=100,
                    max_target_vocab=200)
    with pytest.raises(ValueError, match="share_embeddings.*architecture"):
        ModelConfig(share_embeddings=True)
    config = ModelConfig(architecture="transformer", units=16, num_heads=2, ff_units=32,
                         share_embeddings=True)
    source = Vocabulary(["[PAD]", "[UNK]", "[START]", "[END]", "hallo"])
    target = Vocabulary(["[PAD]", "[UNK]", "[START]", "[END]", "hello"])
    with pytest.raises(ValueError, match="share_embeddings"):
        Seq2Seq(config, source, target)


def test_shared_embeddings_are_one_matrix_for_source_target_and_output():
    pairs = [("ein hund", "a dog"), ("eine katze", "a cat")]
    config = ModelConfig(architecture="transformer", units=16, num_heads=2, ff_units=32,
                         num_layers=1, share_embeddings=True)
    model = Seq2Seq.from_pairs(pairs, config)
    assert model.source_text.vocabulary == model.target_text.vocabulary
    assert model.encoder.embedding is model.decoder.embedding
    assert model.decoder.output_projection is None
    embeddings = [weight for weight in model.weights if "embedding" in weight.path]
    assert len(embeddings) == 1
