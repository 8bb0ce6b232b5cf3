"""A batch searched in shards at the same time, so that one request can use several cores.

At batch 64 most of a decoding step's ops are too small to split across cores, so when each
op gets one thread a single loop leaves cores idle. Here the batch is dealt into
`shards` shards, each encoded and searched by its own graph loop. No data or control edge
orders the loops, so TensorFlow's inter-op threads run them side by side.

The shards are dealt like cards from the longest sentence down: each shard gets sentences of
every length, so the loops run about as many steps and end together. Every search result
is per row, so putting the rows back in batch order gives what one loop gives.
"""

import tensorflow as tf

from keras_s2s.text import unpadded_lengths

# A batch is split only when every shard gets at least this many rows: the smallest shards
# that still beat one loop over the batch (benchmarks/README.md, the --shards rows).
MIN_ROWS_PER_SHARD = 2


def search_in_shards(source_ids, search, shards):
    """Runs `search(shard_ids, rows)` on `shards` shards of a batch, merged in batch order.

    Args:
        source_ids: (batch, s) int32, padded with 0 (`PAD_ID`) at the end; batch >= shards.
        search: (shard_ids (rows, width), rows (rows,) batch positions) -> a nest of per-row
            tensors (rows, ...). `width` is the shard's own longest sentence.
        shards: how many shards (a Python int).

    Returns:
        The nest for the whole batch, (batch, ...): the shards' results in batch order, each
        axis after the first zero-padded to the largest shard's size (steps taken, source
        width).
    """
    lengths = unpadded_lengths(source_ids)  # (batch,)
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    shard_rows = [order[index::shards] for index in range(shards)]  # (rows,) batch positions each
    results = []
    for rows in shard_rows:
        width = tf.reduce_max(tf.gather(lengths, rows))
        results.append(search(tf.gather(source_ids, rows)[:, :width], rows))  # (rows, width) ids
    restore = tf.math.invert_permutation(tf.concat(shard_rows, axis=0))
    return tf.nest.map_structure(lambda *values: tf.gather(concat_padded(values), restore),
                                 *results)


def search_in_shards_or_whole(source_ids, search, shards):
    """`search_in_shards` when every shard gets at least `MIN_ROWS_PER_SHARD` rows, else
    `search` over the whole batch in one loop: the `Translator`'s splitter for `shards` > 1.

    Same arguments and result as `search_in_shards`; any batch size.
    """
    batch = tf.shape(source_ids)[0]
    return tf.cond(batch >= MIN_ROWS_PER_SHARD * shards,
                   lambda: search_in_shards(source_ids, search, shards),
                   lambda: search(source_ids, tf.range(batch)))


def concat_padded(tensors):
    """Concatenates (rows_i, ...) tensors on the first axis, zero-padding every other axis
    to the largest size among them."""
    largest = tf.reduce_max(tf.stack([tf.shape(tensor) for tensor in tensors]), axis=0)  # (rank,)

    def pad(tensor):
        missing = tf.concat([[0], largest[1:] - tf.shape(tensor)[1:]], axis=0)  # (rank,)
        return tf.pad(tensor, tf.stack([tf.zeros_like(missing), missing], axis=1))

    return tf.concat([pad(tensor) for tensor in tensors], axis=0)
