"""The source side, prepared once, and the decoder contract that reads it.

Whatever reads a source sentence (teacher forcing in `Seq2Seq`, scheduled sampling, the
`Translator`'s searches and its forced attention) first runs the encoder over the ids and
keeps what the decoder will read at every step: a `SourceMemory`, made by `encode_source`
and nowhere else. A decoder of either architecture then reads the memory, never the source
ids, through the methods of `DecoderContract`.

What the memory holds for each architecture:

    field             RNN (`decoder.Decoder`)                 Transformer (`TransformerDecoder`)
    encoder_outputs   h̄ (batch, s, units)                      encoder outputs (batch, s, units)
    source_mask       (batch, s) bool, False on padding       the same
    keys              the attention's keys (batch, s, ...):    per layer the cross-attention
                      W₁h̄ (Bahdanau), W_a h̄ (Luong general,   (K, V), (batch, heads, s, head_units)
                      concat), h̄ (dot); () without attention
    encoder_states    per layer the final states, the          [] (the decoder reads the
                      decoder's initial state                  source through attention only)
"""

from typing import Any, NamedTuple, Protocol, runtime_checkable

import tensorflow as tf

from keras_s2s.text import not_padding


class SourceMemory(NamedTuple):
    """What a decoder reads of a batch of source sentences (see the module docstring)."""

    encoder_outputs: tf.Tensor  # (batch, s, units)
    source_mask: tf.Tensor  # (batch, s) bool
    keys: Any  # decoder.compute_keys(encoder_outputs)
    encoder_states: Any  # the encoder's final states, one list per layer; [] for a Transformer

    def for_steps(self):
        """The memory a search's steps read, per row: without the encoder states, which only
        the state before the first step needs (carried, they would be gathered and tiled
        with the rows for nothing)."""
        return self._replace(encoder_states=())


def as_memory(memory):
    """`memory` as a `SourceMemory`: Keras' functional models (and `.keras` files) pass a
    layer's nested arguments on as lists, which a decoder's `call` turns back here."""
    return memory if isinstance(memory, SourceMemory) else SourceMemory(*memory)


def encode_source(encoder, decoder, source_ids, training=False, packed=False):
    """Source ids (batch, s) -> the `SourceMemory` every decoder method reads.

    Args:
        encoder, decoder: the model's (either architecture).
        source_ids: (batch, s) int, padded with `PAD_ID` at the end.
        training: dropout in the encoder.
        packed: run `encoder.encode`, inference that skips padded steps (the RNN encoder
            packs the batch by length; the Transformer's is its call). The same outputs on
            real positions and the same states; not for XLA, which needs fixed shapes.
    """
    source_ids = tf.convert_to_tensor(source_ids)
    if not decoder.built:
        # Its keys' layers must be built as parts of the decoder, not on their first call.
        decoder.build((None, None))
    if packed:
        encoder_outputs, encoder_states = encoder.encode(source_ids)  # (batch, s, units)
    else:
        encoder_outputs, encoder_states = encoder(source_ids, training=training)
    return SourceMemory(encoder_outputs, not_padding(source_ids),
                        decoder.compute_keys(encoder_outputs), encoder_states)


@runtime_checkable
class DecoderContract(Protocol):
    """What `Seq2Seq`, scheduled sampling and the `Translator` ask of a decoder.

    A decoder is a Keras layer (`encode_source` builds it before computing its keys).
    `target_ids` (batch, t) are a target prefix starting with [START]; `token_ids` (rows,)
    one token per row; `memory` a `SourceMemory` (for the searches' steps, of the rows still
    decoding); `state` whatever `search_state` or the previous step returned.
    """

    vocab_size: int

    def compute_keys(self, encoder_outputs):
        """(batch, s, units) -> the memory's `keys`, computed once per sentence."""

    def call(self, target_ids, memory, training=False):
        """Teacher forcing: logits (batch, t, vocab) and attention weights (batch, t, s)."""

    def attentional_states(self, target_ids, memory, training=False):
        """Teacher forcing up to the output projection: (batch, t, units), weights (batch, t, s)."""

    def project(self, attentional, training=False):
        """(..., units) -> logits (..., vocab)."""

    def cross_attention_weights(self, target_ids, memory):
        """Every layer's and head's attention under teacher forcing: (batch, layers, heads, t, s)."""

    def search_state(self, memory, max_length, cache=None):
        """The state before [START] for at most `max_length` steps; `cache` is the key/value
        cache form (`kv_cache.FixedCache`, the default, or `GrowingCache`) where the decoder
        keeps one."""

    def step(self, token_ids, state, memory):
        """One token per row: float32 logits (rows, vocab), the new state, weights (rows, s)."""

    def attentional_step(self, token_ids, state, memory):
        """`step` without the output projection: (rows, units), the new state, weights."""
