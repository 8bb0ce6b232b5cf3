"""Token embeddings plus positions: what a Transformer knows about word order.

Attention is blind to order: permuting the keys permutes nothing in a query's result. The
Transformer therefore adds a position signal to every token embedding:

    x_i = √d_model · E[token_i] + PE[i]

    PE[i, 2k]   = sin(i / 10000^(2k / d_model))
    PE[i, 2k+1] = cos(i / 10000^(2k / d_model))

Each pair of dimensions is a sinusoid of its own wavelength (2π to 10000·2π), so every
position has a distinct code, and PE[i + k] is a linear function of PE[i] for a fixed k,
which lets attention read relative positions. Scaling the embeddings by √d_model keeps them
from being drowned by the table, whose entries are of order 1. A learned table (one trained
vector per position, as in BERT) is the option `positional="learned"`; a fixed table kept
with the weights, which an import fills with another model's (Marian's puts every sine
before every cosine), is `positional="stored"`.

A decoder may also start from a zero vector instead of a [START] token's embedding, as
Marian's does (`zero_start=True`): x_0 = PE[0].

Reference:
    Vaswani et al. Attention Is All You Need. NeurIPS 2017, section 3.5.
    https://arxiv.org/abs/1706.03762
"""

import keras
import numpy as np
import tensorflow as tf

from keras_s2s.config import POSITIONAL_KINDS
from keras_s2s.text import START_ID


def sinusoidal_table(length, units):
    """The (length, units) float32 table PE above; `units` must be even."""
    positions = np.arange(length)[:, np.newaxis]  # (length, 1)
    frequencies = 1.0 / np.power(10000.0, np.arange(0, units, 2) / units)  # (units / 2,)
    angles = positions * frequencies  # (length, units / 2)
    table = np.zeros((length, units), np.float32)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


@keras.saving.register_keras_serializable(package="keras_s2s")
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding × √units plus a sinusoidal (or learned) position table.

    Args:
        vocab_size: vocabulary size; id 0 is padding.
        units: embedding width d_model (even).
        max_length: positions the table covers; longer input is an error of the caller
            (the text processors clip every sentence to its side's `max_*_length`).
        positional: "sinusoidal" (fixed, the paper's), "learned", or "stored" (fixed, kept
            with the weights; it starts as the sinusoidal table until an import sets it).
        zero_start: [START] embeds as a zero vector, whatever its row holds.

    Call arguments:
        token_ids: (batch, n) int.

    Returns:
        (batch, n, units) embeddings with positions added.

    Example:
        >>> embedding = PositionalEmbedding(vocab_size=10, units=4, max_length=8)
        >>> tuple(embedding(tf.constant([[4, 5, 6]])).shape)
        (1, 3, 4)
    """

    def __init__(self, vocab_size, units, max_length, positional="sinusoidal", zero_start=False,
                 **kwargs):
        super().__init__(**kwargs)
        if positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {POSITIONAL_KINDS}; got {positional!r}.")
        if units % 2:
            raise ValueError(f"units must be even for a positional table; got units={units}.")
        self.vocab_size = vocab_size
        self.units = units
        self.max_length = max_length
        self.positional = positional
        self.zero_start = zero_start
        self.embedding = keras.layers.Embedding(vocab_size, units, name="embedding")

    def build(self, token_ids_shape=None):
        self.embedding.build((None, None))
        if self.positional == "learned":
            self.position_table = self.add_weight(
                name="position_table", shape=(self.max_length, self.units),
                initializer=keras.initializers.RandomNormal(stddev=0.02))
        elif self.positional == "stored":
            self.position_table = self.add_weight(
                name="position_table", shape=(self.max_length, self.units), trainable=False,
                initializer=keras.initializers.Constant(
                    sinusoidal_table(self.max_length, self.units)))
        else:
            # A constant, not a weight: nothing to train or to store in checkpoints.
            self.position_table = tf.constant(sinusoidal_table(self.max_length, self.units))

    @property
    def embeddings(self):
        """The (vocab, units) token embedding matrix (shared with a tied output projection)."""
        return self.embedding.embeddings

    def _zero_starts(self, embedded, token_ids):
        """(..., units) embeddings with those of [START] zeroed when `zero_start`."""
        if not self.zero_start:
            return embedded
        return tf.where(tf.equal(token_ids, START_ID)[..., tf.newaxis],
                        tf.zeros([], embedded.dtype), embedded)

    def call(self, token_ids):
        length = tf.shape(token_ids)[1]
        embedded = self._zero_starts(self.embedding(token_ids), token_ids)  # (batch, n, units)
        embedded *= tf.cast(self.units ** 0.5, self.compute_dtype)
        positions = tf.cast(self.position_table[:length], self.compute_dtype)  # (n, units)
        return embedded + positions[tf.newaxis]  # (batch, n, units)

    def step(self, token_ids, positions):
        """One token per row: ids (rows,) at positions (rows,) -> (rows, units)."""
        # A plain gather: search feeds valid ids only, so Embedding's index checks can go.
        embedded = tf.cast(tf.gather(self.embedding.embeddings, token_ids), self.compute_dtype)
        embedded = self._zero_starts(embedded, token_ids)  # (rows, units)
        scaled = embedded * tf.cast(self.units ** 0.5, self.compute_dtype)
        return scaled + tf.cast(tf.gather(self.position_table, positions), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "units": self.units,
                "max_length": self.max_length, "positional": self.positional,
                "zero_start": self.zero_start}
