"""The Transformer encoder and decoder stacks: the second architecture of `Seq2Seq`.

    source ids -> PositionalEmbedding -> N x TransformerEncoderLayer -> (LN) -> encoder outputs
    target prefix -> PositionalEmbedding -> N x TransformerDecoderLayer(encoder outputs) -> (LN)
        -> logits = W_s y   (or E yᵀ with embeddings tied to the output projection)

They keep the RNN encoder's and decoder's interfaces (`encoder.py`, `decoder.py`), so
`Seq2Seq`, its training loops, the searches and the `Translator` drive either architecture:
teacher forcing runs every target position in one pass under the causal mask; `step` runs
one token per row for search.

Decoding with a key/value cache. Position i's self-attention needs the keys and values of
positions 0..i of every decoder layer; the search state (`TransformerState`) carries them in
one cache per layer (`kv_cache.py`: a fixed buffer, or the graph loops' growing form), so a
step projects only its own token. The cross-attention keys and values depend on the source
alone: `compute_keys` makes them once per sentence (they are the `SourceMemory`'s keys), and
beam search tiles them per hypothesis without reordering them.

Reference:
    Vaswani et al. Attention Is All You Need. NeurIPS 2017. https://arxiv.org/abs/1706.03762
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from keras_s2s.kv_cache import FixedCache
from keras_s2s.positional_encoding import PositionalEmbedding
from keras_s2s.source_memory import as_memory
from keras_s2s.text import not_padding
from keras_s2s.transformer_layers import TransformerDecoderLayer, TransformerEncoderLayer


class TransformerState(NamedTuple):
    """A search's decoder state: the next position and one key/value cache per layer."""

    positions: tf.Tensor  # (rows,) int32: the position the next token takes
    caches: tuple  # per layer a `kv_cache.FixedCache` or `GrowingCache`

    def shape_invariants(self):
        """For the searches' graph loops: rows open, each cache as it declares."""
        return TransformerState(tf.TensorShape([None]),
                                tuple(cache.shape_invariants() for cache in self.caches))


def _stack_config(layer):
    return {"units": layer.units, "num_layers": layer.num_layers, "num_heads": layer.num_heads,
            "ff_units": layer.ff_units, "max_length": layer.max_length,
            "dropout": layer.dropout_rate, "attention_dropout": layer.attention_dropout,
            "norm_first": layer.norm_first, "positional": layer.positional,
            "ff_activation": layer.ff_activation, "zero_start": layer.zero_start}


class _TransformerStack(keras.layers.Layer):
    """What both stacks share: embedding, layers, final layer norm (pre-norm only)."""

    layer_class = None

    def __init__(self, vocab_size, units, num_layers=2, num_heads=4, ff_units=1024,
                 max_length=128, dropout=0.1, attention_dropout=0.0, norm_first=True,
                 positional="sinusoidal", ff_activation="relu", zero_start=False, embedding=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.units, self.num_layers = vocab_size, units, num_layers
        self.num_heads, self.ff_units, self.max_length = num_heads, ff_units, max_length
        self.dropout_rate, self.attention_dropout = dropout, attention_dropout
        self.norm_first, self.positional = norm_first, positional
        self.ff_activation, self.zero_start = ff_activation, zero_start
        # A given embedding is shared (one vocabulary for source and target); it is built
        # and saved by whoever made it.
        self.embedding = embedding or PositionalEmbedding(vocab_size, units, max_length,
                                                          positional, zero_start, name="embedding")
        self.dropout = keras.layers.Dropout(dropout)
        for index in range(num_layers):
            # One attribute per layer, so that checkpoints track each of them.
            setattr(self, f"layer_{index}", self.layer_class(
                units, num_heads, ff_units, dropout, attention_dropout, norm_first,
                ff_activation, name=f"layer_{index}"))
        # Pre-norm leaves the last residual sum unnormalised; post-norm ends normalised.
        self.final_norm = (keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")
                           if norm_first else None)

    @property
    def layers_in_order(self):
        return [getattr(self, f"layer_{index}") for index in range(self.num_layers)]

    def _build_stack(self, inputs_shape, *other_shapes):
        if not self.embedding.built:
            self.embedding.build(inputs_shape[:2])
        for layer in self.layers_in_order:
            layer.build(inputs_shape, *other_shapes)
        if self.final_norm is not None:
            self.final_norm.build(inputs_shape)

    def _finish(self, outputs):
        return outputs if self.final_norm is None else self.final_norm(outputs)

    def get_config(self):
        # A shared embedding is the model's to share: `Seq2Seq` rebuilds it from its
        # ModelConfig, so a stack rebuilt from its config alone gets an embedding of its own.
        return {**super().get_config(), "vocab_size": self.vocab_size, **_stack_config(self),
                "embedding": None}


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerEncoder(_TransformerStack):
    """Positional embedding and `num_layers` encoder layers.

    Args:
        vocab_size: source vocabulary size; id 0 is padding.
        units: d_model, the width of every position's vector.
        num_layers: encoder layers N.
        num_heads: attention heads (units must be divisible by it).
        ff_units: inner width of the feed-forward networks.
        max_length: most source positions (the positional table's length).
        dropout: on the embeddings, each block's output and inside the feed-forward networks.
        attention_dropout: on the attention weights.
        norm_first: pre-norm (True) or post-norm (False) residual blocks.
        positional: "sinusoidal", "learned" or "stored" position table.
        ff_activation: the feed-forward networks' nonlinearity ("relu", "gelu", ...).
        zero_start: [START] embeds as a zero vector (a decoder that starts as Marian's).
        embedding: optional `PositionalEmbedding` shared with the decoder.

    Call arguments:
        source_ids: (batch, s) int, padded with 0 at the end.
        training: bool.

    Returns:
        outputs (batch, s, units) and an empty list: no final states, unlike the RNN
        encoder; the decoder reads the source through cross-attention only.

    Example:
        >>> encoder = TransformerEncoder(vocab_size=20, units=8, num_layers=1, num_heads=2,
        ...                              ff_units=16, max_length=10)
        >>> outputs, states = encoder(tf.constant([[5, 6, 3, 0]]))
        >>> tuple(outputs.shape), states
        ((1, 4, 8), [])
    """

    layer_class = TransformerEncoderLayer

    def build(self, source_ids_shape):
        self._build_stack((source_ids_shape[0], source_ids_shape[1], self.units))

    def call(self, source_ids, training=False):
        source_mask = not_padding(source_ids)  # (batch, s)
        outputs = self.dropout(self.embedding(source_ids), training=training)  # (batch, s, units)
        for layer in self.layers_in_order:
            outputs = layer(outputs, source_mask, training=training)
        return self._finish(outputs), []

    def encode(self, source_ids):
        """`call(source_ids, training=False)`, the name the `Translator` uses for inference."""
        return self(source_ids, training=False)


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerDecoder(_TransformerStack):
    """Positional embedding, `num_layers` decoder layers and the output projection.

    Args: as `TransformerEncoder`, with `vocab_size` the target vocabulary, and
        tie_embeddings: compute logits with the embedding matrix (logits = y Eᵀ) instead of
            a separate W_s; with a shared `embedding` the source, target and output
            projection then share one matrix.
        output_bias: add a bias b to tied logits (logits = y Eᵀ + b), as Marian does; an
            untied W_s has its own bias either way.

    Call arguments:
        target_ids: (batch, t) int, the gold tokens shifted right (starting with [START]).
        memory: a `SourceMemory` (`source_memory.encode_source`).
        training: bool.

    Returns:
        logits (batch, t, vocab) and the last layer's cross-attention weights averaged over
        heads (batch, t, s); `cross_attention_weights` gives every layer and head.

    It implements `source_memory.DecoderContract`, as the RNN `Decoder` does.

    Example:
        >>> from keras_s2s.source_memory import encode_source
        >>> sizes = dict(units=8, num_layers=1, num_heads=2, ff_units=16, max_length=10)
        >>> encoder = TransformerEncoder(vocab_size=20, **sizes)
        >>> decoder = TransformerDecoder(vocab_size=30, **sizes)
        >>> memory = encode_source(encoder, decoder, tf.constant([[5, 6, 3, 0], [7, 3, 0, 0]]))
        >>> logits, weights = decoder(tf.ones([2, 3], tf.int32), memory)
        >>> tuple(logits.shape), tuple(weights.shape)
        ((2, 3, 30), (2, 3, 4))
    """

    layer_class = TransformerDecoderLayer

    def __init__(self, vocab_size, units, tie_embeddings=False, output_bias=False, **kwargs):
        super().__init__(vocab_size, units, **kwargs)
        self.tie_embeddings, self.output_bias = tie_embeddings, output_bias
        self.output_projection = (None if tie_embeddings
                                  else keras.layers.Dense(vocab_size, name="W_s"))
        self.logits_bias = None

    def build(self, target_ids_shape, memory_shape=None):
        inputs_shape = (target_ids_shape[0], target_ids_shape[1], self.units)
        # A SourceMemory of shapes when Keras builds on a first call; its first field is
        # the encoder outputs'.
        self._build_stack(inputs_shape, memory_shape[0] if memory_shape else inputs_shape)
        if self.output_projection is not None:
            self.output_projection.build(inputs_shape)
        elif self.output_bias:
            self.logits_bias = self.add_weight(name="logits_bias", shape=(self.vocab_size,),
                                               initializer="zeros")

    def search_state(self, memory, max_length, cache=None):
        """The `TransformerState` before [START] in a search of at most `max_length` steps:
        positions (batch,) all 0 and per layer an empty cache of the form `cache`
        (`kv_cache.FixedCache` by default, or `GrowingCache`)."""
        cache = cache or FixedCache
        batch = tf.shape(memory.encoder_outputs)[0]
        head_units = self.layers_in_order[0].self_attention.head_units
        caches = tuple(cache.empty(batch, self.num_heads, max_length, head_units,
                                   memory.encoder_outputs.dtype)
                       for _ in range(self.num_layers))
        return TransformerState(tf.zeros([batch], tf.int32), caches)

    def compute_keys(self, encoder_outputs):
        """Every layer's cross-attention (keys, values), each (batch, heads, s, head_units)."""
        return tuple(layer.cross_attention.project_keys_values(encoder_outputs)
                     for layer in self.layers_in_order)

    def call(self, target_ids, memory, training=False):
        memory = as_memory(memory)
        outputs, weights = self.attentional_states(target_ids, memory, training=training)
        return self.project(outputs), weights  # (batch, t, vocab), (batch, t, s)

    def _layer_outputs(self, target_ids, memory, training):
        """Final outputs (batch, t, units) and every layer's cross-attention weights."""
        outputs = self.dropout(self.embedding(target_ids), training=training)  # (batch, t, units)
        all_weights = []
        for layer, cross_keys_values in zip(self.layers_in_order, memory.keys, strict=True):
            outputs, weights = layer(outputs, memory.encoder_outputs, memory.source_mask,
                                     training=training, cross_keys_values=cross_keys_values)
            all_weights.append(weights)  # (batch, heads, t, s)
        return self._finish(outputs), all_weights

    def attentional_states(self, target_ids, memory, training=False):
        """Teacher forcing up to the output projection: (batch, t, units), weights (batch, t, s)."""
        outputs, all_weights = self._layer_outputs(target_ids, memory, training)
        return outputs, tf.reduce_mean(all_weights[-1], axis=1)  # (batch, heads, t, s) -> (batch, t, s)

    def cross_attention_weights(self, target_ids, memory):
        """Every layer's and head's cross-attention: (batch, layers, heads, t, s)."""
        _, all_weights = self._layer_outputs(target_ids, memory, False)
        return tf.stack(all_weights, axis=1)

    def project(self, outputs, training=False):
        """(..., units) -> logits (..., vocab). No dropout comes before it (`training` is
        the contract's: the RNN decoder's projection has some)."""
        if self.output_projection is not None:
            return self.output_projection(outputs)
        embeddings = tf.cast(self.embedding.embeddings, outputs.dtype)  # (vocab, units)
        logits = tf.matmul(outputs, embeddings, transpose_b=True)  # (..., vocab)
        if self.logits_bias is not None:
            logits += tf.cast(self.logits_bias, logits.dtype)
        return logits

    def step(self, token_ids, state, memory):
        """One decoding step for search, with the key/value cache.

        Args:
            token_ids: (rows,) int, the previous output token.
            state: `search_state(...)` or the previous step's state.
            memory: the `SourceMemory` of these rows (read through its keys and mask).

        Returns:
            logits (rows, vocab) float32, the new state, the last layer's cross-attention
            averaged over heads (rows, s).
        """
        outputs, state, weights = self.attentional_step(token_ids, state, memory)
        # Searches rank in float32 whatever the compute dtype (mixed precision).
        return tf.cast(self.project(outputs), tf.float32), state, weights

    def attentional_step(self, token_ids, state, memory):
        """`step` without the output projection, as the RNN decoder's: the outputs
        (rows, units) that `project` turns into logits, the new state, the weights (rows, s)."""
        outputs = self.embedding.step(token_ids, state.positions)  # (rows,) -> (rows, units)
        new_caches = []
        for layer, cache, cross_keys_values in zip(self.layers_in_order, state.caches, memory.keys,
                                                   strict=True):
            outputs, cache, weights = layer.step(outputs, cache, state.positions, cross_keys_values,
                                                 memory.source_mask)
            new_caches.append(cache)
        weights = tf.reduce_mean(weights, axis=1)  # (rows, heads, s) -> (rows, s)
        return self._finish(outputs), TransformerState(state.positions + 1, tuple(new_caches)), weights

    def get_config(self):
        return {**super().get_config(), "tie_embeddings": self.tie_embeddings,
                "output_bias": self.output_bias}
