"""Decoder: previous target tokens + encoder outputs -> scores for the next token.

One decoding step, in the notation of Luong et al. (2015):

    h_t = RNN([embed(y_{t-1}); h̃_{t-1} if input feeding], h_{t-1})
    c_t, a_t = attention(h_t, encoder outputs)
    h̃_t = tanh(W_c [c_t; h_t])                          (the attentional state)
    logits_t = W_s h̃_t

`call` runs all target steps at once for training (teacher forcing): without input feeding
the RNN reads the whole gold prefix in one pass and attention for every t is one batched
matmul. `step` runs one token for search. Both use the same weights and agree to float
precision. With `attention=None` there is no c_t: h̃_t = h_t and the decoder sees the source
only through its initial state, the encoder's final states (the "context vector").
"""

import keras
import tensorflow as tf

from keras_s2s.attention import make_attention
from keras_s2s.encoder import make_rnn
from keras_s2s.source_memory import as_memory


@keras.saving.register_keras_serializable(package="keras_s2s")
class Decoder(keras.layers.Layer):
    """Embedding, stacked RNN, attention, attentional state and output projection.

    Args:
        vocab_size: target vocabulary size.
        embedding_dim: width of the target embeddings.
        units: RNN width; must equal the encoder's `units` (the decoder starts from its states).
        cell: "gru" or "lstm" (as the encoder).
        num_layers: stacked RNN layers (as the encoder).
        attention: "bahdanau", "luong-dot", "luong-general", "luong-concat" or None.
        attention_units: width of additive score networks.
        input_feeding: feed h̃_{t-1} into step t, so the decoder knows what it attended to.
        dropout: dropout on the target embeddings and on h̃_t before the projection.

    Call arguments:
        target_ids: (batch, t) int, the gold tokens shifted right (starting with [START]).
        memory: a `SourceMemory` (`source_memory.encode_source`): encoder outputs, source
            mask, attention keys and the encoder's final states (the initial state).
        training: bool.

    Returns:
        logits (batch, t, vocab) and attention weights (batch, t, s) (zeros without attention).

    It implements `source_memory.DecoderContract`, as the `TransformerDecoder` does.

    Example:
        >>> from keras_s2s.encoder import Encoder
        >>> from keras_s2s.source_memory import encode_source
        >>> encoder = Encoder(vocab_size=40, embedding_dim=8, units=16)
        >>> decoder = Decoder(vocab_size=50, embedding_dim=8, units=16)
        >>> memory = encode_source(encoder, decoder, tf.constant([[5, 6, 3, 0], [7, 3, 0, 0]]))
        >>> logits, weights = decoder(tf.ones([2, 3], tf.int32), memory)
        >>> tuple(logits.shape), tuple(weights.shape)
        ((2, 3, 50), (2, 3, 4))

    Reference:
        Luong, Pham, Manning. Effective Approaches to Attention-based Neural Machine
        Translation. EMNLP 2015. https://arxiv.org/abs/1508.04025
    """

    def __init__(self, vocab_size, embedding_dim, units, cell="gru", num_layers=1,
                 attention="bahdanau", attention_units=256, input_feeding=False, dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if input_feeding and attention is None:
            raise ValueError("input_feeding=True needs attention; got attention=None.")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.attention_name = attention
        self.attention_units = attention_units
        self.input_feeding = input_feeding
        self.dropout_rate = dropout
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout = keras.layers.Dropout(dropout)
        for index in range(num_layers):
            # One attribute per layer, as in the encoder, so checkpoints include them.
            setattr(self, f"rnn_{index}", make_rnn(cell, units, f"rnn_{index}"))
        self.attention = make_attention(attention, attention_units)
        if self.attention is not None:
            self.attentional_projection = keras.layers.Dense(
                units, activation="tanh", use_bias=False, name="W_c")
        self.output_projection = keras.layers.Dense(vocab_size, name="W_s")

    @property
    def rnn_layers(self):
        return [getattr(self, f"rnn_{index}") for index in range(self.num_layers)]

    def build(self, target_ids_shape, memory_shape=None):
        batch, length = target_ids_shape[0], target_ids_shape[1]
        # A SourceMemory of shapes when Keras builds on a first call; its first field is the
        # encoder outputs', which are `units` wide (the decoder starts from their states).
        encoder_outputs_shape = memory_shape[0] if memory_shape else (batch, None, self.units)
        self.embedding.build(target_ids_shape)
        width = self.embedding_dim + (self.units if self.input_feeding else 0)
        for rnn in self.rnn_layers:
            rnn.build((batch, length, width))
            width = self.units
        if self.attention is not None:
            self.attention.build((batch, length, self.units), encoder_outputs_shape)
            self.attentional_projection.build((batch, length, self.units + encoder_outputs_shape[-1]))
        self.output_projection.build((batch, length, self.units))

    def initial_state(self, encoder_states):
        """Encoder final states (one list per layer) -> the decoder's state before [START].

        The state is a pair (rnn_states, attentional): a tuple per layer of (batch, units)
        tensors, and h̃ (batch, units), zero before the first step.
        """
        if len(encoder_states) != self.num_layers:
            raise ValueError(f"The decoder has {self.num_layers} layers but got encoder states "
                             f"for {len(encoder_states)}; use the same num_layers for both.")
        rnn_states = tuple(tuple(layer_states) for layer_states in encoder_states)
        batch = tf.shape(rnn_states[0][0])[0]
        # The RNN states' dtype, so that a mixed-precision model keeps one dtype in its loops.
        return rnn_states, tf.zeros([batch, self.units], rnn_states[0][0].dtype)

    def search_state(self, memory, max_length, cache=None):
        """The state before [START] in a search: `initial_state` of the memory's encoder
        states. An RNN's state keeps its size, so the search's length and a cache form (what
        a Transformer decoder needs) do not matter here."""
        return self.initial_state(memory.encoder_states)

    def compute_keys(self, encoder_outputs):
        """(batch, s, units) -> attention keys, computed once per sentence (() without attention)."""
        if self.attention is None:
            return ()
        return self.attention.compute_keys(encoder_outputs)

    def call(self, target_ids, memory, training=False):
        memory = as_memory(memory)
        attentional, weights = self.attentional_states(target_ids, memory, training=training)
        return self.project(attentional, training=training), weights  # (batch, t, vocab), (batch, t, s)

    def project(self, attentional, training=False):
        """h̃ (..., units) -> logits (..., vocab): the output projection W_s (after dropout)."""
        return self.output_projection(self.dropout(attentional, training=training))

    def attentional_states(self, target_ids, memory, training=False):
        """Teacher forcing up to h̃: (batch, t, units) attentional states, weights (batch, t, s).

        Training projects only the states of real target tokens (`Seq2Seq.teacher_forcing_sums`),
        which skips the vocabulary-sized matmul on padding: the largest cost of a step.
        """
        initial_state = self.initial_state(memory.encoder_states)
        embedded = self.dropout(self.embedding(target_ids), training=training)  # (batch, t, emb)
        if self.input_feeding:
            return self._run_with_input_feeding(embedded, initial_state, memory)
        rnn_outputs = embedded
        # Target padding sits after the last real token, so it cannot change earlier
        # outputs; the loss ignores the padded positions, hence no RNN mask here.
        for rnn, state in zip(self.rnn_layers, initial_state[0]):
            rnn_outputs, *_ = rnn(rnn_outputs, initial_state=list(state), training=training)
        return self._attend(rnn_outputs, memory)

    def cross_attention_weights(self, target_ids, memory):
        """Teacher forcing's attention in the Transformer decoder's layout, one layer and
        one head: (batch, 1, 1, t, s), so that a caller reads either architecture alike."""
        _, weights = self.attentional_states(target_ids, memory)
        return weights[:, tf.newaxis, tf.newaxis]  # (batch, t, s) -> (batch, 1, 1, t, s)

    def step(self, token_ids, state, memory):
        """One decoding step for search.

        Args:
            token_ids: (batch,) int, the previous output token.
            state: (rnn_states, attentional) from `search_state` or the previous step.
            memory: the `SourceMemory` of these rows.

        Returns:
            logits (batch, vocab), the new state, attention weights (batch, s).
        """
        attentional, state, weights = self.attentional_step(token_ids, state, memory)
        logits = self.project(attentional)  # (batch, units) -> (batch, vocab)
        # Searches rank in float32 whatever the compute dtype (mixed precision).
        return tf.cast(logits, tf.float32), state, weights

    def attentional_step(self, token_ids, state, memory):
        """`step` up to h̃, without the output projection W_s.

        Returns:
            h̃ (batch, units), which `project` turns into logits, the new state (whose
            second part is that h̃) and attention weights (batch, s).
        """
        # A plain gather: search only feeds valid ids, so the index checks `Embedding`
        # makes on every call are not needed once per token.
        embedded = tf.cast(tf.gather(self.embedding.embeddings, token_ids),
                           self.embedding.compute_dtype)  # (batch,) -> (batch, emb)
        state, weights = self._rnn_and_attention_step(embedded, state, memory)
        return state[1], state, weights

    def _rnn_and_attention_step(self, embedded, state, memory):
        """From an embedded token (batch, emb): the RNN stack, attention and h̃; returns the
        new state (rnn_states, h̃) and weights (batch, s). Teacher forcing with input feeding
        scans it over the target; `attentional_step` runs it once."""
        rnn_states, attentional = state
        inputs = tf.concat([embedded, attentional], -1) if self.input_feeding else embedded
        new_rnn_states = []
        for rnn, layer_states in zip(self.rnn_layers, rnn_states):
            inputs, layer_states = rnn.cell(inputs, list(layer_states))  # (batch, units)
            new_rnn_states.append(tuple(layer_states))
        if self.attention is None:
            weights = tf.zeros(tf.stack([tf.shape(inputs)[0], tf.shape(memory.encoder_outputs)[1]]))
            return (tuple(new_rnn_states), inputs), weights
        # (batch, units) -> c_t (batch, units), weights (batch, s)
        context, weights = self.attention.step(inputs, memory.encoder_outputs, memory.keys,
                                               memory.source_mask)
        attentional = self.attentional_projection(tf.concat([context, inputs], -1))  # (batch, units)
        return (tuple(new_rnn_states), attentional), weights

    def _attend(self, rnn_outputs, memory):
        """(batch, t, units) RNN outputs -> h̃ (batch, t, units), weights (batch, t, s)."""
        if self.attention is None:
            source_length = tf.shape(memory.encoder_outputs)[1]
            weights = tf.zeros(tf.concat([tf.shape(rnn_outputs)[:2], [source_length]], 0))
            return rnn_outputs, weights
        context, weights = self.attention(rnn_outputs, memory.encoder_outputs, keys=memory.keys,
                                          source_mask=memory.source_mask)
        attentional = self.attentional_projection(tf.concat([context, rnn_outputs], -1))
        return attentional, weights

    def _run_with_input_feeding(self, embedded, initial_state, memory):
        """Teacher forcing when step t needs h̃_{t-1}: a graph loop over target positions."""
        batch, source_length = tf.shape(embedded)[0], tf.shape(memory.encoder_outputs)[1]

        def one_step(carry, embedded_t):
            state, _ = carry
            return self._rnn_and_attention_step(embedded_t, state, memory)

        initial = (initial_state, tf.zeros([batch, source_length], self.compute_dtype))
        time_major = tf.transpose(embedded, [1, 0, 2])  # (batch, t, emb) -> (t, batch, emb)
        (_, attentional), weights = tf.scan(one_step, time_major, initializer=initial)
        # (t, batch, ...) -> (batch, t, ...)
        return tf.transpose(attentional, [1, 0, 2]), tf.transpose(weights, [1, 0, 2])

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "num_layers": self.num_layers, "attention": self.attention_name,
                "attention_units": self.attention_units, "input_feeding": self.input_feeding,
                "dropout": self.dropout_rate}
