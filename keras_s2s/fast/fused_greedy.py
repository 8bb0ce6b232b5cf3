"""Greedy decoding with fixed shapes, so that XLA can compile the whole loop into one program.

At batch 1 a decoding step is a long chain of small ops, and their per-op cost, not
arithmetic, sets the latency. XLA fuses the element-wise ops of the encoder, the attention
and the search into a few kernels, which the graph loop of `search.greedy_search` cannot:
that loop changes its batch size as rows finish, and XLA compiles one program per shape.

Here every tensor keeps its shape for the whole loop: finished rows stay in the batch and
repeat padding, and the results go to arrays of `max_length` steps. That wastes the work of
finished rows, so this is the fast path for small batches only (the translator's
`jit_compile` export uses it up to `FUSED_MAX_ROWS` rows); large batches gain more from
dropping finished rows.
"""

import tensorflow as tf

from keras_s2s.search import SearchResult, most_likely, sequence_lengths, zero_rows
from keras_s2s.text import PAD_ID

# Source lengths are padded up to a multiple of this before compiling, so that sentences
# of 1 to 8 tokens share one compiled program, 9 to 16 the next, and so on.
SOURCE_LENGTH_BUCKET = 8


def bucketed_source_ids(source_ids):
    """(batch, s) ids -> (batch', s'): s' the next multiple of `SOURCE_LENGTH_BUCKET` (padded
    with 0), batch' the next power of two (the real rows repeated, so that the extra rows
    finish with them). Callers keep the first `batch` rows of the results.

    XLA compiles one program per shape; buckets keep the number of programs small (3 batch
    sizes up to the translator's 4 rows, one per 8 source tokens) at the price of some
    padded work.
    """
    batch, length = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
    padded_length = (length + SOURCE_LENGTH_BUCKET - 1) // SOURCE_LENGTH_BUCKET * SOURCE_LENGTH_BUCKET
    padded_batch = _next_power_of_two(batch)
    source_ids = tf.gather(source_ids, tf.range(padded_batch) % batch)
    return tf.pad(source_ids, [[0, 0], [0, padded_length - length]])


def _next_power_of_two(count):
    """The smallest power of two >= count (an int32 scalar >= 1): set every bit below the
    highest one of count - 1, then add one."""
    bits = count - 1
    for shift in (1, 2, 4, 8, 16):
        bits = tf.bitwise.bitwise_or(bits, tf.bitwise.right_shift(bits, shift))
    return bits + 1


def fixed_shape_greedy_search(next_step, initial_state, start_tokens, end_id, max_length,
                              row_inputs):
    """Greedy search whose loop keeps every shape; returns (steps, `SearchResult`).

    Args:
        next_step: `next_step(tokens, state, row_inputs)` as in `search.greedy_search`.
        initial_state, start_tokens, end_id: as `search.greedy_search`.
        max_length: a Python int: the result arrays have this many steps.
        row_inputs: nest of (batch, ...) tensors the step reads; here no row leaves.

    Returns:
        steps, a scalar int32 (the steps taken), and a `SearchResult` whose tokens (batch,
        max_length) and step outputs (batch, max_length, ...) have padding and zeros after
        `steps`.
        The tokens and scores equal `search.greedy_search`'s.
    """
    batch = tf.shape(start_tokens)[0]
    arrays = tuple(tf.TensorArray(dtype, size=max_length)
                   for dtype in (tf.int32, tf.float32, tf.float32))

    def keep_going(step, tokens, state, finished, arrays):
        return tf.logical_not(tf.reduce_all(finished))

    def body(step, tokens, state, finished, arrays):
        logits, state, step_output = next_step(tokens, state, row_inputs)  # (batch, vocab)
        next_tokens, chosen = most_likely(logits)  # (batch,), (batch,)
        # Finished rows stay in the batch (fixed shapes): they repeat padding, add nothing.
        next_tokens = tf.where(finished, PAD_ID, next_tokens)
        chosen = tf.where(finished, 0.0, chosen)
        step_output = zero_rows(finished, step_output)  # float32
        arrays = tuple(array.write(step, value)
                       for array, value in zip(arrays, (next_tokens, chosen, step_output)))
        return step + 1, next_tokens, state, finished | tf.equal(next_tokens, end_id), arrays

    loop_vars = (tf.constant(0), tf.cast(start_tokens, tf.int32), initial_state,
                 tf.zeros([batch], tf.bool), arrays)
    steps, _, _, _, arrays = tf.while_loop(keep_going, body, loop_vars,
                                           maximum_iterations=max_length)
    # Steps the loop never reached are still unwritten: stack() gives zeros there, so the
    # step outputs are zeros; the tokens get PAD_ID below.
    tokens, scores, step_outputs = (array.stack() for array in arrays)  # (max_length, batch, ...)
    tokens = tf.where(tf.range(max_length)[:, tf.newaxis] < steps, tokens, PAD_ID)
    tokens = tf.transpose(tokens)  # (batch, max_length)
    permutation = [1, 0] + list(range(2, step_outputs.shape.rank))  # steps after batch
    # A row without end_id ran all `steps`, which is then max_length: its length is right.
    return steps, SearchResult(tokens, sequence_lengths(tokens, end_id),
                               tf.reduce_sum(scores, axis=0), tf.transpose(step_outputs, permutation))
