"""Attention: how the decoder looks back at every encoder state.

Both layers take a query (the decoder's RNN output h_t at each target step) and the encoder
outputs h̄_s, score every (t, s) pair, softmax the scores over source positions that are not
padding, and return the weighted sum of encoder outputs (the context vector c_t):

    a_t(s) = softmax_s(score(h_t, h̄_s))        c_t = Σ_s a_t(s) h̄_s

Scores, side by side:

    Bahdanau (additive)   score = vᵀ tanh(W₁ h̄_s + W₂ h_t)
    Luong dot             score = h_tᵀ h̄_s
    Luong general         score = h_tᵀ W_a h̄_s
    Luong concat          score = vᵀ tanh(W_a [h_t; h̄_s])   (= Bahdanau's form: W_a splits into W₂, W₁)

The parts that depend only on the source (W₁ h̄_s, W_a h̄_s) are the "keys": `compute_keys`
makes them once per sentence so a decoder step does not recompute them.

Shapes: query (batch, t, units), values (batch, s, units), keys (batch, s, key_units),
source_mask (batch, s) bool; returns context (batch, t, units), weights (batch, t, s).
`step` is the same computation for one decoding step, query (batch, units) -> context
(batch, units), weights (batch, s): written with 2-D matmuls because a search runs it once
per token, where the reshapes a (batch, 1, units) query would need cost more than the math.
"""

import keras
import tensorflow as tf

LUONG_SCORES = ("dot", "general", "concat")


def masked_softmax(scores, mask):
    """Softmax over the last axis that gives masked positions exactly zero weight; the one
    used by every attention of the package, RNN and Transformer.

    Args:
        scores: (..., t, s) float.
        mask: bool broadcastable to `scores`, True where attention may go (a real source
            token, an earlier target position), or None.
    """
    if mask is not None:
        # The most negative finite value, not -inf, so a row without any real token yields
        # uniform weights instead of NaN.
        scores = tf.where(mask, scores, scores.dtype.min)
    return tf.nn.softmax(scores, axis=-1)


def attend(scores, values, source_mask):
    """Masked softmax of (batch, t, s) scores, then the weighted sum of (batch, s, units) values.

    Returns context (batch, t, units) and weights (batch, t, s).
    """
    mask = None if source_mask is None else source_mask[:, tf.newaxis, :]  # (batch, 1, s)
    weights = masked_softmax(scores, mask)  # (batch, t, s)
    context = tf.matmul(weights, values)  # (batch, t, s) @ (batch, s, units) -> (batch, t, units)
    return context, weights


def attend_step(scores, values, source_mask):
    """`attend` for one step: scores (batch, s) -> context (batch, units), weights (batch, s)."""
    if source_mask is not None:
        scores = tf.where(source_mask, scores, scores.dtype.min)
    # Written out, because tf.nn.softmax's oneDNN kernel pays a fixed cost per call that
    # only inputs far larger than one step's (batch, s) scores amortise.
    exponentials = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    weights = exponentials / tf.reduce_sum(exponentials, axis=-1, keepdims=True)  # (batch, s)
    return _weighted_sum(weights, values), weights  # (batch, units), (batch, s)


def _weighted_sum(weights, values):
    """Σ_s weights (batch, s) × values (batch, s, units) -> (batch, units).

    A batched matmul pays a fixed cost per call however small it is, so a multiply and a sum
    is cheaper for small inputs and slower for large ones; the size picks the form, at the
    crossing `benchmarks/op_choices.py` measures.
    """
    return tf.cond(tf.size(weights) < 512,
                   lambda: tf.reduce_sum(weights[:, :, tf.newaxis] * values, axis=1),
                   lambda: tf.matmul(weights[:, tf.newaxis, :], values)[:, 0])


class _AdditiveScore:
    """The additive score vᵀ tanh(W_k h̄_s + W_q h_t), written once for the two layers that
    use it: Bahdanau's, and Luong's "concat", whose W_a [h_t; h̄_s] is the same sum with W_a
    split by columns into W_q and W_k. The keys are W_k h̄_s."""

    def _make_additive_weights(self, key_name, query_name):
        self.key_projection = keras.layers.Dense(self.units, use_bias=False, name=key_name)
        self.query_projection = keras.layers.Dense(self.units, use_bias=False, name=query_name)
        self.score_vector = keras.layers.Dense(1, use_bias=False, name="v")

    def _build_additive_weights(self, query_shape, values_shape):
        self.key_projection.build(values_shape)
        self.query_projection.build(query_shape)
        self.score_vector.build(tuple(query_shape[:-1]) + (self.units,))

    def _additive_scores(self, query, keys):
        """(batch, t, units) queries, (batch, s, u) keys -> (batch, t, s) scores."""
        query_projection = self.query_projection(query)[:, :, tf.newaxis, :]  # (batch, t, 1, u)
        hidden = tf.tanh(query_projection + keys[:, tf.newaxis, :, :])  # (batch, t, s, u)
        return tf.squeeze(self.score_vector(hidden), axis=-1)  # (batch, t, s, 1) -> (batch, t, s)

    def _additive_step_scores(self, query, keys):
        """(batch, units) query, (batch, s, u) keys -> (batch, s) scores."""
        hidden = tf.tanh(keys + self.query_projection(query)[:, tf.newaxis, :])  # (batch, s, u)
        v = tf.cast(self.score_vector.kernel[:, 0], hidden.dtype)  # (u,); compute dtype under mixed precision
        # A multiply and a sum, not a (batch, s, u) @ (u, 1) matmul: a broadcast batched matmul
        # pays a fixed cost per call that this small product never earns back.
        return tf.reduce_sum(hidden * v, axis=-1)  # (batch, s)


@keras.saving.register_keras_serializable(package="keras_s2s")
class BahdanauAttention(_AdditiveScore, keras.layers.Layer):
    """Additive attention with a learned score network.

    Args:
        units: width u of the score network (W₁, W₂: units -> u; v: u -> 1).

    Call arguments:
        query: (batch, t, units) decoder states.
        values: (batch, s, units) encoder outputs.
        keys: optional (batch, s, u) result of `compute_keys(values)`.
        source_mask: optional (batch, s) bool, False on padding.

    Returns:
        context (batch, t, units) and weights (batch, t, s), rows summing to 1.

    Example:
        >>> attention = BahdanauAttention(units=8)
        >>> context, weights = attention(tf.zeros([2, 3, 4]), tf.ones([2, 5, 4]))
        >>> tuple(weights.shape)
        (2, 3, 5)

    Reference:
        Bahdanau, Cho, Bengio. Neural Machine Translation by Jointly Learning to Align and
        Translate. ICLR 2015. https://arxiv.org/abs/1409.0473
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self._make_additive_weights(key_name="W1", query_name="W2")

    def build(self, query_shape, values_shape):
        self._build_additive_weights(query_shape, values_shape)

    def compute_keys(self, values):
        """(batch, s, units) -> (batch, s, u): W₁ h̄_s, the same at every decoding step."""
        return self.key_projection(values)

    def call(self, query, values, keys=None, source_mask=None):
        if keys is None:
            keys = self.compute_keys(values)
        return attend(self._additive_scores(query, keys), values, source_mask)

    def step(self, query, values, keys, source_mask=None):
        """One decoding step: query (batch, units) -> context (batch, units), weights (batch, s)."""
        return attend_step(self._additive_step_scores(query, keys), values, source_mask)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_s2s")
class LuongAttention(_AdditiveScore, keras.layers.Layer):
    """Multiplicative ("dot", "general") or concat attention.

    Args:
        score: "dot" (no weights; query and values must have the same width), "general"
            (a learned W_a between them) or "concat" (an additive network, like Bahdanau's).
        units: width of the concat score network; unused by "dot" and "general".

    Call arguments, Returns: as `BahdanauAttention`.

    Example:
        >>> attention = LuongAttention(score="general")
        >>> context, weights = attention(tf.zeros([2, 3, 4]), tf.ones([2, 5, 4]))
        >>> tuple(context.shape)
        (2, 3, 4)

    Reference:
        Luong, Pham, Manning. Effective Approaches to Attention-based Neural Machine
        Translation. EMNLP 2015. https://arxiv.org/abs/1508.04025
    """

    def __init__(self, score="general", units=256, **kwargs):
        super().__init__(**kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(f"score must be one of {LUONG_SCORES}; got {score!r}.")
        self.score_name = score
        self.units = units
        if score == "concat":
            self._make_additive_weights(key_name="W_a_values", query_name="W_a_query")

    def build(self, query_shape, values_shape):
        if self.score_name == "dot" and query_shape[-1] != values_shape[-1]:
            raise ValueError("Luong 'dot' attention needs queries and values of the same width; "
                             f"got {query_shape[-1]} and {values_shape[-1]}. Use 'general'.")
        if self.score_name == "general":
            # W_a maps values into the query's space, so its width is known only here.
            self.key_projection = keras.layers.Dense(query_shape[-1], use_bias=False, name="W_a")
            self.key_projection.build(values_shape)
        elif self.score_name == "concat":
            self._build_additive_weights(query_shape, values_shape)

    def compute_keys(self, values):
        """(batch, s, units) -> (batch, s, key_units): h̄_s (dot), W_a h̄_s (general, concat)."""
        if self.score_name == "dot":
            return values
        return self.key_projection(values)

    def call(self, query, values, keys=None, source_mask=None):
        if keys is None:
            keys = self.compute_keys(values)
        if self.score_name == "concat":
            scores = self._additive_scores(query, keys)
        else:
            # dot, general: (batch, t, units) @ (batch, units, s) -> (batch, t, s)
            scores = tf.matmul(query, keys, transpose_b=True)
        return attend(scores, values, source_mask)

    def step(self, query, values, keys, source_mask=None):
        """One decoding step: query (batch, units) -> context (batch, units), weights (batch, s)."""
        if self.score_name == "concat":
            scores = self._additive_step_scores(query, keys)
        else:
            scores = tf.linalg.matvec(keys, query)  # (batch, s, units) · (batch, units) -> (batch, s)
        return attend_step(scores, values, source_mask)

    def get_config(self):
        return {**super().get_config(), "score": self.score_name, "units": self.units}


def make_attention(name, units):
    """Builds the attention a `ModelConfig.attention` string names, or None."""
    if name is None:
        return None
    if name == "bahdanau":
        return BahdanauAttention(units, name="attention")
    if name.startswith("luong-") and name[len("luong-"):] in LUONG_SCORES:
        return LuongAttention(score=name[len("luong-"):], units=units, name="attention")
    raise ValueError(f"Unknown attention {name!r}; use 'bahdanau', 'luong-dot', "
                     "'luong-general', 'luong-concat' or None.")
