"""Encoder: source token ids -> one vector per source position, plus final RNN states."""

import keras
import tensorflow as tf

from keras_s2s.packed_rnn import run_packed
from keras_s2s.text import not_padding, unpadded_lengths


def make_rnn(cell, units, name, go_backwards=False):
    """A sequence-returning GRU or LSTM that also returns its final state(s)."""
    layer_class = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}.get(cell)
    if layer_class is None:
        raise ValueError(f"cell must be 'gru' or 'lstm'; got {cell!r}.")
    return layer_class(units, return_sequences=True, return_state=True,
                       go_backwards=go_backwards, name=name)


@keras.saving.register_keras_serializable(package="keras_s2s")
class Encoder(keras.layers.Layer):
    """Embedding followed by `num_layers` stacked (optionally bidirectional) RNNs.

    A bidirectional encoder gives each direction `units // 2` units and concatenates them,
    so outputs and states are `units` wide either way and the decoder (and Luong's "dot"
    score) never depends on the direction setting.

    Args:
        vocab_size: source vocabulary size; id 0 is padding.
        embedding_dim: width of the token embeddings.
        units: width of the outputs and of each layer's final state.
        cell: "gru" or "lstm".
        num_layers: stacked RNN layers; each reads the previous layer's outputs.
        bidirectional: read the sentence in both directions.
        dropout: dropout on the embeddings and between layers.

    Call arguments:
        source_ids: (batch, s) int, padded with 0 at the end.
        training: bool, enables dropout.

    Returns:
        outputs (batch, s, units) and a list with one entry per layer, each a list of that
        layer's final state tensors (batch, units): [h] for a GRU, [h, c] for an LSTM.

    Example:
        >>> encoder = Encoder(vocab_size=100, embedding_dim=8, units=16)
        >>> outputs, states = encoder(tf.constant([[5, 6, 3, 0]]))
        >>> tuple(outputs.shape), len(states), tuple(states[0][0].shape)
        ((1, 4, 16), 1, (1, 16))

    Reference:
        Sutskever, Vinyals, Le. Sequence to Sequence Learning with Neural Networks. 2014.
        Schuster, Paliwal. Bidirectional Recurrent Neural Networks. 1997.
    """

    def __init__(self, vocab_size, embedding_dim, units, cell="gru", num_layers=1,
                 bidirectional=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if bidirectional and units % 2:
            raise ValueError(f"A bidirectional encoder needs even units; got units={units}.")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout_rate = dropout
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout = keras.layers.Dropout(dropout)
        for index in range(num_layers):
            if bidirectional:
                rnn = keras.layers.Bidirectional(
                    make_rnn(cell, units // 2, f"rnn_{index}"),
                    backward_layer=make_rnn(cell, units // 2, f"rnn_{index}_backward",
                                            go_backwards=True),
                    name=f"bidirectional_{index}")
            else:
                rnn = make_rnn(cell, units, f"rnn_{index}")
            # One attribute per layer: a list attribute would hide the layers from
            # tf.train.Checkpoint, which tracks attributes, not Keras' list wrappers.
            setattr(self, f"rnn_{index}", rnn)

    @property
    def rnn_layers(self):
        return [getattr(self, f"rnn_{index}") for index in range(self.num_layers)]

    def build(self, source_ids_shape):
        batch, length = source_ids_shape[0], source_ids_shape[1]
        self.embedding.build(source_ids_shape)
        width = self.embedding_dim
        for rnn in self.rnn_layers:
            rnn.build((batch, length, width))
            width = self.units

    def call(self, source_ids, training=False):
        # The RNNs skip padded steps, so each final state is the state after the last real token.
        source_mask = not_padding(source_ids)  # (batch, s)
        outputs = self.dropout(self.embedding(source_ids), training=training)  # (batch, s, emb)
        final_states = []
        for index, rnn in enumerate(self.rnn_layers):
            if index > 0:
                outputs = self.dropout(outputs, training=training)
            outputs, *states = rnn(outputs, mask=source_mask, training=training)  # (batch, s, units)
            if self.bidirectional:
                # [h_fw, (c_fw,) h_bw, (c_bw,)] -> [concat(h_fw, h_bw), (concat(c_fw, c_bw))]
                half = len(states) // 2
                states = [tf.concat([forward, backward], axis=-1)
                          for forward, backward in zip(states[:half], states[half:])]
            final_states.append(states)
        return outputs, final_states

    def encode(self, source_ids):
        """`call(source_ids, training=False)` for inference, without stepping over padding.

        The batch is sorted by length and every RNN step runs only the rows still inside
        their sentence (`keras_s2s.packed_rnn`), so a batch costs the sum of its
        lengths, not its size times its longest sentence. Same outputs on real positions and
        same final states as `call`; padded positions of the outputs are zeros (attention
        never reads them).

        Args:
            source_ids: (batch, s) int, s >= 1, padded with 0 at the end.
        """
        source_ids = tf.convert_to_tensor(source_ids)
        lengths = unpadded_lengths(source_ids)  # (batch,)
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)  # longest first
        restore = tf.math.invert_permutation(order)
        lengths = tf.gather(lengths, order)
        outputs = tf.gather(self.embedding(source_ids), order)  # (batch, s, emb), sorted
        final_states = []
        for rnn in self.rnn_layers:
            cells = ((rnn.forward_layer.cell, rnn.backward_layer.cell) if self.bidirectional
                     else rnn.cell)
            outputs, states = run_packed(cells, outputs, lengths)  # (batch, s, units)
            # [[h_fw, (c_fw)], [h_bw, (c_bw)]] -> [concat(h_fw, h_bw), (concat(c_fw, c_bw))]
            states = [tf.concat(pair, axis=-1) for pair in zip(*states)]
            final_states.append([tf.gather(state, restore) for state in states])
        return tf.gather(outputs, restore), final_states

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional,
                "dropout": self.dropout_rate}
