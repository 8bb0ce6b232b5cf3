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
        keys, values = self.project_keys_values(value)
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

    def cached_self_attention_step(self, query, cache, positions, growing=False):
        """Self-attention of the token at `positions` over itself and the tokens before it.

        The keys and values of earlier tokens come from `cache` instead of being recomputed:
        each step projects only its own token and writes it into the cache at its position
        (or, with `growing`, appends it).

        Args:
            query: (rows, units), the new token's input.
            cache: (keys, values), each (rows, heads, max_length, head_units), holding the
                earlier tokens' keys and values at positions < `positions` (anything after);
                with `growing`, see below.
            positions: (rows,) int32, the new token's position.
            growing: the fast path (`GrowingCacheState` in `transformer.py`): `cache` holds
                exactly the positions before `positions`, the same for every row, each
                (rows, heads, positions, head_units), and the new token is appended.

        Returns:
            output (rows, units), the updated cache, weights (rows, heads, max_length), or
            (rows, heads, positions + 1) with `growing`.
        """
        rows = tf.shape(query)[0]
        cache_keys, cache_values = cache
        new_keys = tf.reshape(self.key_projection(query), [rows, self.num_heads, self.head_units])
        new_values = tf.reshape(self.value_projection(query), [rows, self.num_heads, self.head_units])
        if growing:
            # (rows, heads, n, head_units) -> (rows, heads, n + 1, head_units); every
            # position is one written so far, so none is masked.
            cache_keys = tf.concat([cache_keys, new_keys[:, :, tf.newaxis]], axis=2)
            cache_values = tf.concat([cache_values, new_values[:, :, tf.newaxis]], axis=2)
            output, weights = self.step(query, (cache_keys, cache_values))
            return output, (cache_keys, cache_values), weights
        # (row, head, position) for every row and head: one scatter writes the new token.
        places = tf.stack(tf.meshgrid(tf.range(rows), tf.range(self.num_heads), indexing="ij")
                          + [tf.tile(positions[:, tf.newaxis], [1, self.num_heads])],
                          axis=-1)  # (rows, heads, 3)
        cache_keys = tf.tensor_scatter_nd_update(cache_keys, places, new_keys)
        cache_values = tf.tensor_scatter_nd_update(cache_values, places, new_values)
        max_length = tf.shape(cache_keys)[2]
        visible = tf.range(max_length)[tf.newaxis, :] <= positions[:, tf.newaxis]  # (rows, max_length)
        output, weights = self.step(query, (cache_keys, cache_values), visible)
        return output, (cache_keys, cache_values), weights

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "units": self.units,
                "dropout": self.dropout_rate}
