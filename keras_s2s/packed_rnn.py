"""An RNN over a packed batch: each step runs only the rows whose sentence is still going.

A padded batch of sentences of different lengths costs batch × longest steps in an RNN layer,
even with a mask (the mask only keeps padded steps from changing the state). Here the rows
are sorted longest first, so the rows still inside their sentence at step t are always the
first `active[t]`, and step t runs the cell on that slice alone: the work is the sum of the
lengths. The backward direction reads each row's own tokens reversed, so it starts at the
row's last real token, as a masked backward RNN does.

Used by `Encoder.encode`, so by every search and every export: it is the default, not an
option, because it gives the same numbers for less work (the cells are the layers' own Keras
cells, and each row's state is kept from its last real token, as the mask does in
`Encoder.call`; `test_packed_encode_equals_call_on_real_positions` in
tests/test_encoder_decoder.py checks it). Training keeps the Keras layers and their fused GPU
kernels. Read `Encoder.call` first: it is the textbook form of the same encoder.
"""

import tensorflow as tf


def run_packed(cells, inputs, lengths):
    """Runs one RNN layer (one cell, or a (forward, backward) pair) over a packed batch.

    Args:
        cells: one Keras RNN cell (unidirectional) or a (forward, backward) pair of cells.
        inputs: (batch, s, features), rows sorted by `lengths`, longest first; positions at
            and after a row's length are padding.
        lengths: (batch,) int32, non-increasing.

    Returns:
        outputs (batch, s, units) (both directions concatenated; zeros on padding) and the
        final states, a list per direction of that cell's state tensors (batch, cell units),
        each the state after the row's last real token (zeros for an empty row).
    """
    cells = tuple(cells) if isinstance(cells, (tuple, list)) else (cells,)
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    time_major = [tf.transpose(inputs, [1, 0, 2])]  # (batch, s, f) -> (s, batch, f)
    if len(cells) == 2:
        reversal = _reversal_indices(lengths, steps)  # (s, batch, 2)
        time_major.append(tf.gather_nd(inputs, reversal))  # (batch, s, f) -> (s, batch, f), reversed
    # active[t]: how many rows have a token at step t (rows are sorted longest first).
    active = tf.reduce_sum(tf.cast(lengths[tf.newaxis, :] > tf.range(steps)[:, tf.newaxis],
                                   tf.int32), axis=1)  # (s,)
    initial_states = tuple(
        [tf.zeros(tf.stack([batch, size]), inputs.dtype) for size in tf.nest.flatten(cell.state_size)]
        for cell in cells)
    output_arrays = tuple(tf.TensorArray(inputs.dtype, size=steps) for _ in cells)

    def body(step, states, arrays):
        rows = active[step]
        new_states, new_arrays = [], []
        for cell, sequence, cell_states, array in zip(cells, time_major, states, arrays):
            # The first `rows` rows step; the rest keep their final state.
            output, stepped = cell(sequence[step, :rows], [state[:rows] for state in cell_states])
            stepped = tf.nest.flatten(stepped)
            new_states.append([_rows_then(new, old, rows) for new, old in zip(stepped, cell_states)])
            new_arrays.append(array.write(step, tf.pad(output, [[0, batch - rows], [0, 0]])))
        return step + 1, tuple(new_states), tuple(new_arrays)

    _, final_states, output_arrays = tf.while_loop(
        lambda step, *_: step < steps, body, (tf.constant(0), initial_states, output_arrays))
    outputs = [tf.transpose(output_arrays[0].stack(), [1, 0, 2])]  # (s, batch, units) -> (batch, s, units)
    if len(cells) == 2:
        # Back to each row's own order: position t of row b is backward step len_b - 1 - t.
        unreversal = tf.reverse(tf.transpose(reversal, [1, 0, 2]), axis=[-1])  # (batch, s, 2)
        outputs.append(tf.gather_nd(output_arrays[1].stack(), unreversal))  # (batch, s, units)
    outputs = tf.concat(outputs, axis=-1) if len(outputs) == 2 else outputs[0]
    return outputs, [list(states) for states in final_states]


def _reversal_indices(lengths, steps):
    """(s, batch, 2) [row, position] pairs: step t of row b reads position len_b - 1 - t
    while t < len_b, and position t (padding) after.

    One gather with these does what `tf.reverse_sequence` and a transpose do in two ops,
    and moves the data once instead of twice.
    """
    positions = tf.range(steps)[:, tf.newaxis]  # (s, 1)
    sources = tf.where(positions < lengths, lengths - 1 - positions, positions)  # (s, batch)
    rows = tf.broadcast_to(tf.range(tf.shape(lengths)[0]), tf.shape(sources))  # (s, batch)
    return tf.stack([rows, sources], axis=-1)


def _rows_then(new, old, rows):
    """The first `rows` rows from `new`, the rest from `old`, with `old`'s static shape."""
    merged = tf.concat([new, old[rows:]], axis=0)
    merged.set_shape(old.shape)
    return merged
