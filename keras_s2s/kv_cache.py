"""The Transformer decoder's key/value cache: what a search step keeps of the earlier positions.

Position i's self-attention reads the keys and values of positions 0..i of its layer.
Recomputing them for the whole prefix at every step costs O(t) per layer and step (O(t²) a
sentence); the cache keeps them, so a step projects only its own token. Two forms, one
interface, chosen once by whoever starts the search (the `Translator`):

    cache = cache.append(new_keys, new_values, positions)   # each (rows, heads, head_units)
    keys, values, visible = cache.read(positions)           # visible (rows, n) bool, or None

`FixedCache` (the textbook form): buffers of `max_length` positions, allocated once per
search; each step writes its own position, and attends over the whole buffer with a mask
that hides the positions not written yet. Every shape stays the same for the whole loop, as
an XLA program needs (`fast/fused_greedy.py`).

`GrowingCache` (the fast path of the graph loops): exactly the positions written so far, one
more each step, so step t reads and copies t positions instead of `max_length` (and rows
that leave the batch gather less), and attends without a mask: every position it holds is
visible. Its length changes from step to step; `shape_invariants` says so to the loop,
which is how the searches, which know nothing about caches, keep that axis open.
"""

from typing import NamedTuple

import tensorflow as tf


class FixedCache(NamedTuple):
    """Keys and values of `max_length` positions, written in place."""

    keys: tf.Tensor  # (rows, heads, max_length, head_units)
    values: tf.Tensor  # (rows, heads, max_length, head_units)

    @classmethod
    def empty(cls, rows, heads, max_length, head_units, dtype):
        buffer = tf.zeros([rows, heads, max_length, head_units], dtype)
        return cls(buffer, buffer)

    def append(self, new_keys, new_values, positions):
        """Adds each row's new keys and values (rows, heads, head_units) by writing them into
        the buffer at its position (rows,); the buffer keeps its length."""
        rows, heads = tf.shape(new_keys)[0], new_keys.shape[1]
        # (row, head, position) for every row and head: one scatter writes the new token.
        places = tf.stack(tf.meshgrid(tf.range(rows), tf.range(heads), indexing="ij")
                          + [tf.tile(positions[:, tf.newaxis], [1, heads])],
                          axis=-1)  # (rows, heads, 3)
        return FixedCache(tf.tensor_scatter_nd_update(self.keys, places, new_keys),
                          tf.tensor_scatter_nd_update(self.values, places, new_values))

    def read(self, positions):
        """Keys, values (rows, heads, max_length, head_units) and which positions the token
        at `positions` (rows,) may see: (rows, max_length) bool, itself and those before."""
        max_length = tf.shape(self.keys)[2]
        visible = tf.range(max_length)[tf.newaxis, :] <= positions[:, tf.newaxis]
        return self.keys, self.values, visible

    def shape_invariants(self):
        # Rows leave the batch; the buffers keep their length.
        return FixedCache(*(tf.TensorShape([None]).concatenate(tensor.shape[1:]) for tensor in self))


class GrowingCache(NamedTuple):
    """Keys and values of exactly the positions written so far, the same count for every row
    (the searches step their rows together)."""

    keys: tf.Tensor  # (rows, heads, positions written, head_units)
    values: tf.Tensor  # (rows, heads, positions written, head_units)

    @classmethod
    def empty(cls, rows, heads, max_length, head_units, dtype):
        buffer = tf.zeros([rows, heads, 0, head_units], dtype)  # no position yet
        return cls(buffer, buffer)

    def append(self, new_keys, new_values, positions):
        """Adds the new position at the end: (rows, heads, n, head_units) -> (rows, heads,
        n + 1, head_units). `positions` is n for every row, so it is not read."""
        return GrowingCache(tf.concat([self.keys, new_keys[:, :, tf.newaxis]], axis=2),
                            tf.concat([self.values, new_values[:, :, tf.newaxis]], axis=2))

    def read(self, positions):
        """Keys and values; every position held is visible, so no mask (None)."""
        return self.keys, self.values, None

    def shape_invariants(self):
        # Rows leave the batch and the positions axis grows by one a step.
        return GrowingCache(*(tf.TensorShape([None, tensor.shape[1], None, tensor.shape[3]])
                              for tensor in self))
