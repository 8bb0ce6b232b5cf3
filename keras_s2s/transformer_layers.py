"""One Transformer encoder layer and one decoder layer: attention, feed-forward, residuals.

Encoder layer (a source position reads every source position):

    x = x + Dropout(SelfAttention(LN(x)))            padding mask
    x = x + Dropout(FFN(LN(x)))                      FFN(x) = W_2 max(0, W_1 x + b_1) + b_2

Decoder layer (a target position reads earlier target positions, then the source):

    y = y + Dropout(SelfAttention(LN(y)))            causal mask
    y = y + Dropout(CrossAttention(LN(y), x))        source padding mask
    y = y + Dropout(FFN(LN(y)))

That is pre-norm (`norm_first=True`, the default): layer normalisation before each block,
which trains stably without a long warm-up. Post-norm (the paper's form, `norm_first=False`)
normalises after each residual sum instead: x = LN(x + Dropout(Block(x))).

Reference:
    Vaswani et al. Attention Is All You Need. NeurIPS 2017, section 3.1.
    Xiong et al. On Layer Normalization in the Transformer Architecture. ICML 2020 (pre-norm).
"""

import keras
import tensorflow as tf

from keras_s2s.multi_head_attention import MultiHeadAttention


def gelu(x):
    """GELU, x·Φ(x) with Φ the standard normal CDF (Hendrycks and Gimpel, 2016)."""
    return keras.activations.gelu(x, approximate=False)


def gelu_sigmoid(x):
    """GELU approximated as x·σ(1.702x), the form Marian computes under the name gelu."""
    return x * keras.activations.sigmoid(1.702 * x)


# The nonlinearity f of each `FeedForward` by its `ModelConfig.ff_activation` name.
FEED_FORWARD_ACTIVATIONS = {
    "relu": keras.activations.relu,
    "gelu": gelu,
    "gelu-sigmoid": gelu_sigmoid,
    "swish": keras.activations.silu,  # x·σ(x)
}


@keras.saving.register_keras_serializable(package="keras_s2s")
class FeedForward(keras.layers.Layer):
    """The position-wise network W_2 f(W_1 x + b_1) + b_2: (..., units) -> (..., units).

    f is ReLU in the paper (max(0, x)); `activation` names another of
    `FEED_FORWARD_ACTIVATIONS` (GELU, or swish as OPUS-MT's Marian models use).
    """

    def __init__(self, units, ff_units, dropout=0.0, activation="relu", **kwargs):
        super().__init__(**kwargs)
        if activation not in FEED_FORWARD_ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(FEED_FORWARD_ACTIVATIONS)}; "
                             f"got {activation!r}.")
        self.units = units
        self.ff_units = ff_units
        self.dropout_rate = dropout
        self.activation = activation
        self.inner = keras.layers.Dense(ff_units, activation=FEED_FORWARD_ACTIVATIONS[activation],
                                        name="W_1")
        self.outer = keras.layers.Dense(units, name="W_2")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, inputs_shape):
        self.inner.build(inputs_shape)
        self.outer.build(tuple(inputs_shape[:-1]) + (self.ff_units,))

    def call(self, inputs, training=False):
        return self.outer(self.dropout(self.inner(inputs), training=training))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "ff_units": self.ff_units,
                "dropout": self.dropout_rate, "activation": self.activation}


class _Residual:
    """x + Dropout(block(LN(x))) (pre-norm) or LN(x + Dropout(block(x))) (post-norm)."""

    def __init__(self, layer_norm, dropout, norm_first):
        self.layer_norm, self.dropout, self.norm_first = layer_norm, dropout, norm_first

    def __call__(self, inputs, block, training):
        """`block(normalised inputs) -> (output, extra)`; returns (new inputs, extra)."""
        output, extra = block(self.layer_norm(inputs) if self.norm_first else inputs)
        summed = inputs + self.dropout(output, training=training)
        return (summed if self.norm_first else self.layer_norm(summed)), extra


def _layer_norm(name):
    return keras.layers.LayerNormalization(epsilon=1e-6, name=name)


class _TransformerLayer(keras.layers.Layer):
    """What both layers hold: self-attention and feed-forward blocks, their norms, dropout."""

    def __init__(self, units, num_heads, ff_units, dropout=0.0, attention_dropout=0.0,
                 norm_first=True, ff_activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_heads, self.ff_units = units, num_heads, ff_units
        self.dropout_rate, self.attention_dropout = dropout, attention_dropout
        self.norm_first, self.ff_activation = norm_first, ff_activation
        self.self_attention = MultiHeadAttention(num_heads, units, attention_dropout,
                                                 name="self_attention")
        self.feed_forward = FeedForward(units, ff_units, dropout, ff_activation,
                                        name="feed_forward")
        self.self_attention_norm = _layer_norm("self_attention_norm")
        self.feed_forward_norm = _layer_norm("feed_forward_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def _residual(self, norm):
        return _Residual(norm, self.dropout, self.norm_first)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads,
                "ff_units": self.ff_units, "dropout": self.dropout_rate,
                "attention_dropout": self.attention_dropout, "norm_first": self.norm_first,
                "ff_activation": self.ff_activation}


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention and feed-forward, each in a residual block.

    Args:
        units: d_model.
        num_heads: attention heads (units must be divisible by it).
        ff_units: inner width of the feed-forward network.
        dropout: on each block's output and inside the feed-forward network.
        attention_dropout: on the attention weights.
        norm_first: pre-norm (True) or post-norm (False).
        ff_activation: the feed-forward's nonlinearity (`FEED_FORWARD_ACTIVATIONS`).

    Call arguments:
        inputs: (batch, s, units).
        source_mask: (batch, s) bool, False on padding.
        training: bool.

    Returns:
        (batch, s, units).
    """

    def build(self, inputs_shape, source_mask_shape=None):
        for layer in (self.self_attention_norm, self.feed_forward_norm, self.feed_forward):
            layer.build(inputs_shape)
        self.self_attention.build(inputs_shape, inputs_shape)

    def call(self, inputs, source_mask, training=False):
        residual = self._residual
        padding_mask = source_mask[:, tf.newaxis, :]  # (batch, s) -> (batch, 1, s)
        inputs, _ = residual(self.self_attention_norm)(
            inputs, lambda x: self.self_attention(x, x, padding_mask, training=training), training)
        inputs, _ = residual(self.feed_forward_norm)(
            inputs, lambda x: (self.feed_forward(x, training=training), None), training)
        return inputs


@keras.saving.register_keras_serializable(package="keras_s2s")
class TransformerDecoderLayer(_TransformerLayer):
    """Causal self-attention, cross-attention over the encoder outputs, feed-forward.

    Args: as `TransformerEncoderLayer`.

    Call arguments:
        inputs: (batch, t, units), the embedded target prefix.
        encoder_outputs: (batch, s, units).
        source_mask: (batch, s) bool, False on source padding.
        training: bool.
        cross_keys_values: optional `cross_attention.project_keys_values(encoder_outputs)`,
            made once per sentence (the `SourceMemory`'s keys); computed here when absent.

    Returns:
        (batch, t, units) and the cross-attention weights (batch, heads, t, s).

    `step` runs one new target position per row with a key/value cache of the earlier ones.
    """

    def __init__(self, units, num_heads, ff_units, dropout=0.0, attention_dropout=0.0,
                 norm_first=True, ff_activation="relu", **kwargs):
        super().__init__(units, num_heads, ff_units, dropout, attention_dropout, norm_first,
                         ff_activation, **kwargs)
        self.cross_attention = MultiHeadAttention(num_heads, units, attention_dropout,
                                                  name="cross_attention")
        self.cross_attention_norm = _layer_norm("cross_attention_norm")

    def build(self, inputs_shape, encoder_outputs_shape=None, source_mask_shape=None):
        encoder_outputs_shape = encoder_outputs_shape or inputs_shape
        for layer in (self.self_attention_norm, self.cross_attention_norm,
                      self.feed_forward_norm, self.feed_forward):
            layer.build(inputs_shape)
        self.self_attention.build(inputs_shape, inputs_shape)
        self.cross_attention.build(inputs_shape, encoder_outputs_shape)

    def call(self, inputs, encoder_outputs, source_mask, training=False, cross_keys_values=None):
        length = tf.shape(inputs)[1]
        # Position i sees positions 0..i: the lower triangle, True where attending is allowed.
        causal_mask = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)[tf.newaxis]
        inputs, _ = self._residual(self.self_attention_norm)(
            inputs, lambda y: self.self_attention(y, y, causal_mask, training=training), training)
        padding_mask = source_mask[:, tf.newaxis, :]  # (batch, 1, s)
        if cross_keys_values is None:
            cross_keys_values = self.cross_attention.project_keys_values(encoder_outputs)
        inputs, weights = self._residual(self.cross_attention_norm)(
            inputs, lambda y: self.cross_attention.attend(y, cross_keys_values, padding_mask,
                                                          training=training), training)
        inputs, _ = self._residual(self.feed_forward_norm)(
            inputs, lambda y: (self.feed_forward(y, training=training), None), training)
        return inputs, weights  # (batch, t, units), (batch, heads, t, s)

    def step(self, inputs, cache, positions, cross_keys_values, source_mask):
        """One target position per row, reading the cache of the earlier ones.

        Args:
            inputs: (rows, units), the new token's embedding (or the layer below's output).
            cache: this layer's self-attention cache (`kv_cache.FixedCache` or `GrowingCache`).
            positions: (rows,) int32, the new token's position.
            cross_keys_values: `cross_attention.project_keys_values(encoder_outputs)`.
            source_mask: (rows, s) bool.

        Returns:
            outputs (rows, units), the cache with this position, cross-attention weights
            (rows, heads, s).
        """
        def self_attend(y):
            output, new_cache, _ = self.self_attention.cached_self_attention_step(y, cache, positions)
            return output, new_cache

        inputs, cache = self._residual(self.self_attention_norm)(inputs, self_attend, False)
        inputs, weights = self._residual(self.cross_attention_norm)(
            inputs, lambda y: self.cross_attention.step(y, cross_keys_values, source_mask), False)
        inputs, _ = self._residual(self.feed_forward_norm)(
            inputs, lambda y: (self.feed_forward(y), None), False)
        return inputs, cache, weights
