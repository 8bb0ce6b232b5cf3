import inspect
import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.decoder import Decoder
from keras_s2s.encoder import Encoder
from keras_s2s.source_memory import DecoderContract, SourceMemory, encode_source

from .layer_checks import check_layer

SOURCE = tf.constant([[5, 6, 7, 3], [8, 3, 0, 0]])  # second row padded
TARGET = tf.constant([[2, 9, 10, 11], [2, 12, 3, 0]])


@pytest.mark.parametrize("cell,bidirectional,num_layers",
                         list(itertools.product(["gru", "lstm"], [False, True], [1, 2])))
def test_encoder_shapes_and_padding_does_not_change_final_state(cell, bidirectional, num_layers):
    encoder = Encoder(30, 8, 16, cell=cell, num_layers=num_layers, bidirectional=bidirectional)
    outputs, states = encoder(SOURCE)
    assert tuple(outputs.shape) == (2, 4, 16)
    assert len(states) == num_layers
    assert all(tuple(state.shape) == (2, 16) for layer in states for state in layer)
    assert len(states[0]) == (2 if cell == "lstm" else 1)
    # The mask makes the padded row's final state the state after its last real token.
    _, unpadded_states = encoder(SOURCE[1:, :2])
    for padded, unpadded in zip(states[-1], unpadded_states[-1]):
        np.testing.assert_allclose(padded[1], unpadded[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell,bidirectional,num_layers",
                         list(itertools.product(["gru", "lstm"], [False, True], [1, 2])))
def test_packed_encode_equals_call_on_real_positions(cell, bidirectional, num_layers):
    # Lengths out of order (the packed path sorts and restores), one row of padding only.
    source = tf.constant([[5, 6, 3, 0, 0], [7, 3, 0, 0, 0], [4, 4, 4, 4, 3], [9, 3, 0, 0, 0],
                          [0, 0, 0, 0, 0]])
    encoder = Encoder(30, 8, 16, cell=cell, num_layers=num_layers, bidirectional=bidirectional)
    outputs, states = encoder(source)
    # Unknown batch and length, as in an exported graph.
    encode = tf.function(encoder.encode, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    packed_outputs, packed_states = encode(source)
    real = (source != 0).numpy()[..., None]
    np.testing.assert_allclose(packed_outputs, outputs.numpy() * real, rtol=1e-5, atol=1e-6)
    assert np.all(packed_outputs.numpy()[~real[..., 0]] == 0.0)
    for layer, packed_layer in zip(states, packed_states, strict=True):
        for state, packed_state in zip(layer, packed_layer, strict=True):
            np.testing.assert_allclose(packed_state, state, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(packed_states[-1][0][4], 0.0)  # nothing read: initial state
    single_outputs, _ = encode(source[2:3])  # a batch of one
    np.testing.assert_allclose(single_outputs[0], outputs[2], rtol=1e-5, atol=1e-6)


CONFIGURATIONS = [(cell, attention, feeding)
                  for cell in ("gru", "lstm")
                  for attention in ("bahdanau", "luong-dot", "luong-general", "luong-concat", None)
                  for feeding in ((False, True) if attention else (False,))]


@pytest.mark.parametrize("cell,attention,input_feeding", CONFIGURATIONS)
def test_step_by_step_decoding_equals_teacher_forced_call(cell, attention, input_feeding):
    encoder = Encoder(30, 8, 16, cell=cell, num_layers=2)
    decoder = Decoder(40, 8, 16, cell=cell, num_layers=2, attention=attention,
                      attention_units=12, input_feeding=input_feeding)
    memory = encode_source(encoder, decoder, SOURCE)
    logits, weights = decoder(TARGET, memory)
    assert tuple(logits.shape) == (2, 4, 40) and tuple(weights.shape) == (2, 4, 4)
    state = decoder.search_state(memory, TARGET.shape[1])
    step_logits, step_weights = [], []
    for position in range(TARGET.shape[1]):
        position_logits, state, position_weights = decoder.step(TARGET[:, position], state, memory)
        step_logits.append(position_logits)
        step_weights.append(position_weights)
    np.testing.assert_allclose(np.stack(step_logits, 1), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.stack(step_weights, 1), weights, rtol=1e-5, atol=1e-6)
    assert np.abs(logits.numpy()).max() > 0
    if attention is None:
        assert np.all(weights.numpy() == 0)
    else:
        assert np.all(weights.numpy()[1, :, 2:] == 0)  # padded source positions
        np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)


def test_decoder_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="input_feeding"):
        Decoder(10, 4, 8, attention=None, input_feeding=True)
    decoder = Decoder(10, 4, 8, num_layers=2)
    with pytest.raises(ValueError, match="num_layers"):
        decoder.initial_state([[tf.zeros([1, 8])]])
    with pytest.raises(ValueError, match="even"):
        Encoder(10, 4, 7, bidirectional=True)


def test_layers_round_trip_through_get_config():
    encoder = Encoder(30, 8, 16, cell="lstm", num_layers=2, bidirectional=False, dropout=0.1)
    decoder = Decoder(40, 8, 16, attention="luong-general", input_feeding=True)
    assert Encoder.from_config(encoder.get_config()).get_config() == encoder.get_config()
    assert Decoder.from_config(decoder.get_config()).get_config() == decoder.get_config()


@pytest.mark.parametrize("cell,bidirectional,num_layers,dropout",
                         [("gru", True, 1, 0.0), ("lstm", False, 2, 0.1), ("lstm", True, 2, 0.0)])
def test_encoder_passes_the_layer_checks(cell, bidirectional, num_layers, dropout):
    check_layer(Encoder, {"vocab_size": 30, "embedding_dim": 8, "units": 16, "cell": cell,
                          "num_layers": num_layers, "bidirectional": bidirectional,
                          "dropout": dropout},
                {"source_ids": SOURCE})


def decoder_steps(decoder, inputs):
    """Logits and attention of every target position, one `step` at a time, stacked like `call`'s."""
    memory, target_ids = inputs["memory"], inputs["target_ids"]
    state = decoder.search_state(memory, target_ids.shape[1])
    step_logits, step_weights = [], []
    for position in range(target_ids.shape[1]):
        logits, state, weights = decoder.step(target_ids[:, position], state, memory)
        step_logits.append(logits)
        step_weights.append(weights)
    return tf.stack(step_logits, axis=1), tf.stack(step_weights, axis=1)  # (batch, t, vocab), (batch, t, s)


@pytest.mark.parametrize("cell,attention,input_feeding,num_layers", [
    ("gru", "bahdanau", False, 1), ("gru", "luong-dot", True, 1), ("lstm", "luong-general", False, 2),
    ("lstm", "luong-concat", True, 1), ("gru", None, False, 2)])
def test_decoder_passes_the_layer_checks(cell, attention, input_feeding, num_layers):
    rng = np.random.default_rng(1)
    states = [[rng.normal(size=(2, 16)).astype("float32") for _ in range(2 if cell == "lstm" else 1)]
              for _ in range(num_layers)]
    init_kwargs = {"vocab_size": 40, "embedding_dim": 8, "units": 16, "cell": cell,
                   "num_layers": num_layers, "attention": attention, "attention_units": 12,
                   "input_feeding": input_feeding, "dropout": 0.1}
    encoder_outputs = rng.normal(size=(2, 4, 16)).astype("float32")
    keys_maker = Decoder(**init_kwargs)
    keys_maker.build((None, None))
    # Keys of the right shape for this attention; call and step both read them from the memory.
    keys = tf.nest.map_structure(np.asarray, keys_maker.compute_keys(encoder_outputs))
    check_layer(Decoder, init_kwargs,
                {"target_ids": TARGET,
                 "memory": SourceMemory(encoder_outputs, SOURCE != 0, keys, states)},
                step=decoder_steps)


def test_both_decoders_state_the_contract_they_implement():
    from keras_s2s.transformer import TransformerDecoder

    for decoder in (Decoder(10, 4, 8), TransformerDecoder(10, 8, num_layers=1, num_heads=2,
                                                           ff_units=16, max_length=6)):
        assert isinstance(decoder, DecoderContract)
        for name in ("attentional_states", "cross_attention_weights", "search_state", "step",
                     "attentional_step"):
            # The contract's arguments, in its order: nothing architecture-specific in between.
            expected = list(inspect.signature(getattr(DecoderContract, name)).parameters)[1:]
            found = list(inspect.signature(getattr(decoder, name)).parameters)
            assert found == expected, (type(decoder).__name__, name, found)
