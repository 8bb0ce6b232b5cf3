"""Beam search with fixed shapes, so that XLA can compile it with the encoder into one program.

The companion of `fused_greedy.py`, for the same reason: at batch 1 a beam step is a chain of
small ops whose per-op cost sets the latency. `beam_search.beam_search` drops sentences whose
hypotheses have all finished and grows its records step by step; here every tensor keeps its
shape for the whole loop: finished sentences stay (their hypotheses are frozen by
`extend_beams` as in the graph loop) and the records have `max_length` steps. One step is
the graph loop's step, the same functions in the same order, so the n-best lists are the same.
"""

import tensorflow as tf

from keras_s2s.beam_search import (BeamResult, extend_beams, follow_parents, initial_log_probs,
                                   ranked, tile_beams)
from keras_s2s.text import PAD_ID


def fixed_shape_beam_search(next_step, initial_state, start_tokens, end_id, max_length,
                            beam_size, alpha, row_inputs):
    """Beam search whose loop keeps every shape; returns (steps, `BeamResult`).

    Args:
        next_step: `next_step(tokens, state, row_inputs)` as in `beam_search.beam_search`.
        initial_state, start_tokens, end_id, alpha: as `beam_search.beam_search`.
        max_length, beam_size: Python ints (XLA needs them to fix the shapes).
        row_inputs: nest of per-sentence (batch, ...) tensors the step reads; tiled here.

    Returns:
        steps, a scalar int32 (the steps taken), and a `BeamResult` whose tokens (batch, beam,
        max_length) and step outputs (batch, beam, max_length, ...) hold padding and zeros
        after `steps`. Its first `steps` steps equal `beam_search.beam_search`'s result.
    """
    batch = tf.shape(start_tokens)[0]
    records = tuple(tf.TensorArray(dtype, size=max_length) for dtype in (tf.int32, tf.int32, tf.float32))

    def keep_going(step, tokens, state, log_probs, lengths, finished, records):
        return tf.logical_or(step == 0, tf.logical_not(tf.reduce_all(finished)))

    def body(step, tokens, state, log_probs, lengths, finished, records):
        logits, state, step_output = next_step(tokens, state, row_inputs)  # (batch * beam, vocab)
        new_tokens, log_probs, lengths, parents, was_finished, finished = extend_beams(
            logits, log_probs, lengths, finished, beam_size, alpha, end_id)  # (batch, beam) each
        state, step_output = follow_parents(parents, was_finished, state, step_output)
        records = tuple(array.write(step, value) for array, value in zip(
            records, (new_tokens, parents, step_output)))
        return step + 1, tf.reshape(new_tokens, [-1]), state, log_probs, lengths, finished, records

    row_inputs = tile_beams(row_inputs, beam_size)
    loop_vars = (tf.constant(0), tf.repeat(tf.cast(start_tokens, tf.int32), beam_size),
                 tile_beams(initial_state, beam_size), initial_log_probs(batch, beam_size),
                 tf.zeros([batch, beam_size], tf.int32), tf.zeros([batch, beam_size], tf.bool),
                 records)
    steps, _, _, log_probs, lengths, _, records = tf.while_loop(
        keep_going, body, loop_vars, maximum_iterations=max_length)
    # (max_length, batch, beam, ...) each
    step_tokens, step_parents, step_outputs = (array.stack() for array in records)
    # Steps the loop never reached hold zeros: padding for tokens, and for parents the
    # identity, so that following them back leaves every hypothesis where it is.
    reached = (tf.range(max_length) < steps)[:, tf.newaxis, tf.newaxis]  # (max_length, 1, 1)
    step_tokens = tf.where(reached, step_tokens, PAD_ID)
    step_parents = tf.where(reached, step_parents, tf.range(beam_size))
    return steps, ranked(step_tokens, step_parents, step_outputs, log_probs, lengths, beam_size, alpha)


def first_steps(result, steps, batch, source_length):
    """A bucketed `BeamResult` cut back to the real sentences (batch), the steps taken and the
    real source positions: tokens (batch, beam, steps), step outputs (batch, beam, steps, s)."""
    return BeamResult(result.tokens[:batch, :, :steps], result.lengths[:batch],
                      result.scores[:batch], result.log_probs[:batch],
                      result.step_outputs[:batch, :, :steps, :source_length])
