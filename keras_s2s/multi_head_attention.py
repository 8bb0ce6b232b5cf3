"""Multi-head attention, written out: the Transformer's one way of reading other positions.

Every position asks a question (a query) of every position it may see (the keys) and takes a
weighted sum of what those positions hold (the values). One head, for queries Q (t, d_k),
keys K (s, d_k) and values V (s, d_k):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Multi-head attention runs `num_heads` such heads side by side on learned projections of the
same inputs, each `units / num_heads` wide, and mixes their outputs:

    head_i = Attention(x_q W_i^Q, x_kv W_i^K, x_kv W_i^V)
    MultiHead(x_q, x_kv) = [head_1; ...; head_h] W^O

Self-attention reads its own sequence (x_q = x_kv); cross-attention lets the decoder read the
encoder outputs (the Transformer's counterpart of Bahdanau/Luong attention in `attention.py`).
The W_i are stored as one (units, units) matrix per projection; splitting its output into
heads is a reshape.

Masks are boolean and True where a query MAY attend (the convention of
`keras.layers.MultiHeadAttention`): the padding mask hides source padding, the causal mask
hides later target positions.

Shapes: query (batch, t, units), value (batch, s, units), attention_mask (batch, t, s) or
(batch, 1, s); returns output (batch, t, units) and weights (batch, heads, t, s).

Reference:
    Vaswani et al. Attention Is All You Need. NeurIPS 2017, section 3.2.
    https://arxiv.org/abs/1706.03762
"""

import keras
import tensorflow as tf

from keras_s2s.attention import masked_softmax


def masked_attention_weights(scores, attention_mask):
    """`attention.masked_softmax` in float32, whatever the dtype of `scores`, so that
    half-precision scores neither overflow nor lose the small weights.

    Args:
        scores: (..., t, s) float, any dtype.
        attention_mask: bool, broadcastable to `scores`, True where a query may attend; or None.

    Returns:
        float32 weights of the shape of `scores`.
    """
    return masked_softmax(tf.cast(scores, tf.float32), attention_mask)


@keras.saving.register_keras_serializable(package="keras_s2s")
class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention with `num_heads` heads, and a one-token `step` for search.

    Args:
        num_heads: heads h; `units` must be divisible by it (each head is units / h wide).
        units: width d_model of queries, keys, values and output.
        dropout: dropout on the attention weights during training.

    Call arguments:
        query: (batch, t, units).
        value: (batch, s, units), the sequence read (the query itself for self-attention).
        attention_mask: bool (batch, t, s) or (batch, 1, s), True where a query may attend.
        training: bool.

    Returns:
        output (batch, t, units) and weights (batch, heads, t, s) float32.

    Example:
        >>> attention = MultiHeadAttention(num_heads=2, units=8)
        >>> output, weights = attention(tf.zeros([1, 3, 8]), tf.zeros([1, 5, 8]))
        >>> tuple(output.shape), tuple(weights.shape)
        ((1, 3, 8), (1, 2, 3, 5))

    Reference:
        Vaswani et al. Attention Is All You Need. NeurIPS 2017. https://arxiv.org/abs/1706.03762
    """

    def __init__(self, num_heads, units, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if units % num_heads:
            raise ValueError(f"units must be divisible by num_heads; got units={units}, "
                             f"num_heads={num_heads}.")
        self.num_heads = num_heads
        self.units = units
        self.head_units = units // num_heads
        self.dropout_rate = dropout
        self.query_projection = keras.layers.Dense(units, name="W_q")
        self.key_projection = keras.layers.Dense(units, name="W_k")
        self.value_projection = keras.layers.Dense(units, name="W_v")
        self.output_projection = keras.layers.Dense(units, name="W_o")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, query_shape, value_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        self.query_projection.build(query_shape)
        self.key_projection.build(value_shape)
        self.value_projection.build(value_shape)
        self.output_projection.build(tuple(query_shape[:-1]) + (self.units,))

    def split_heads(self, projected):
        """(batch, n, units) -> (batch, heads, n, head_units)."""
        batch, length = tf.shape(projected)[0], tf.shape(projected)[1]
        heads = tf.reshape(projected, [batch, length, self.num_heads, self.head_units])
        return tf.transpose(heads, [0, 2, 1, 3])

    def merge_heads(self, heads):
        """(batch, heads, n, head_units) -> (batch, n, units)."""
        batch, length = tf.shape(heads)[0], tf.shape(heads)[2]
        return tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), [batch, length, self.units])

    def project_keys_values(self, value):
        """(batch, s, units) -> keys and values, each (batch, heads, s, head_units).

        They depend only on `value`, so cross-attention computes them once per sentence.
        """
        return (self.split_heads(self.key_projection(value)),
                self.split_heads(self.value_projection(value)))

    def call(self, query, value, attention_mask=None, training=False):
        return self.attend(query, self.project_keys_values(value), attention_mask, training)

    def attend(self, query, keys_values, attention_mask=None, training=False):
        """`call` with the keys and values already projected (`project_keys_values`), as a
        decoder reads the source: once per sentence, for every target position.

        Returns output (batch, t, units) and weights (batch, heads, t, s) float32.
        """
        keys, values = keys_values  # (batch, heads, s, head_units) each
        # Scaling the queries, not the scores: the same product with t·units multiplies
        # instead of t·s·heads.
        queries = self.split_heads(self.query_projection(query)) * (self.head_units ** -0.5)
        scores = tf.matmul(queries, keys, transpose_b=True)  # (batch, heads, t, s)
        if attention_mask is not None:
            attention_mask = tf.expand_dims(attention_mask, 1)  # (batch, t, s) -> (batch, 1, t, s)
        weights = masked_attention_weights(scores, attention_mask)  # (batch, heads, t, s) float32
        dropped = tf.cast(self.dropout(weights, training=training), values.dtype)
        context = tf.matmul(dropped, values)  # (batch, heads, t, head_units)
        return self.output_projection(self.merge_heads(context)), weights  # (batch, t, units)

    def step(self, query, keys_values, attention_mask=None):
        """Attention of one new position per row over given keys and values.

        Args:
            query: (rows, units), the new position's input.
            keys_values: keys and values (rows, heads, n, head_units).
            attention_mask: bool (rows, n), True where the new position may attend; or None.

        Returns:
            output (rows, units) and weights (rows, heads, n) float32.
        """
        keys, values = keys_values
        rows = tf.shape(query)[0]
        queries = tf.reshape(self.query_projection(query) * (self.head_units ** -0.5),
                             [rows, self.num_heads, 1, self.head_units])
        scores = tf.matmul(queries, keys, transpose_b=True)  # (rows, heads, 1, n)
        if attention_mask is not None:
            attention_mask = attention_mask[:, tf.newaxis, tf.newaxis, :]  # (rows, 1, 1, n)
        weights = masked_attention_weights(scores, attention_mask)
        context = tf.matmul(tf.cast(weights, values.dtype), values)  # (rows, heads, 1, head_units)
        output = self.output_projection(tf.reshape(context, [rows, self.units]))  # (rows, units)
        return output, weights[:, :, 0, :]

    def cached_self_attention_step(self, query, cache, positions):
        """Self-attention of the token at `positions` over itself and the tokens before it.

        The keys and values of earlier tokens come from `cache` instead of being recomputed:
        each step projects only its own token and adds it to the cache (`cache.append`).

        Args:
            query: (rows, units), the new token's input.
            cache: a `kv_cache.FixedCache` or `GrowingCache` holding the earlier tokens'
                keys and values.
            positions: (rows,) int32, the new token's position.

        Returns:
            output (rows, units), the cache with the new token, weights (rows, heads, n)
            over the n positions the cache holds.
        """
        rows = tf.shape(query)[0]
        new_keys = tf.reshape(self.key_projection(query), [rows, self.num_heads, self.head_units])
        new_values = tf.reshape(self.value_projection(query), [rows, self.num_heads, self.head_units])
        cache = cache.append(new_keys, new_values, positions)
        keys, values, visible = cache.read(positions)  # (rows, heads, n, head_units), (rows, n)
        output, weights = self.step(query, (keys, values), visible)
        return output, cache, weights

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "units": self.units,
                "dropout": self.dropout_rate}
