"""Decoding strategies that know nothing about RNNs.

A search drives a `next_step` function:

    next_step(tokens (batch,), state) -> (logits (batch, vocab), new_state, step_output (batch, ...))

`state` is any nest of tensors with batch first; `step_output` is recorded at every step and
returned stacked (batch, t, ...): the decoder uses it for attention weights. All loops are
`tf.while_loop`s, so a search runs inside one graph call for a whole batch and exports with
the model.
"""

import collections

import tensorflow as tf

SearchResult = collections.namedtuple(
    "SearchResult", ["tokens", "lengths", "scores", "step_outputs"])
SearchResult.__doc__ = """What a search returns, batch first.

tokens: (batch, t) int32, the chosen tokens; the end token is included, then padding.
lengths: (batch,) int32, tokens up to and including the end token (t when none came).
scores: (batch,) float32, the summed log-probability of the tokens counted in `lengths`.
step_outputs: (batch, t, ...), what `next_step` reported at each step (zeros after the end).
"""


def greedy_search(next_step, initial_state, start_tokens, end_id, max_length, pad_id=0):
    """Takes the most likely token at every step until every row has produced `end_id`.

    Args:
        next_step: the model's one-step function (see module docstring).
        initial_state: state nest before the first step.
        start_tokens: (batch,) int32, the first input token of each row.
        end_id: the token that finishes a row.
        max_length: int or scalar tensor, most tokens produced per row.
        pad_id: written after a row has finished.

    Returns:
        A `SearchResult`.
    """
    batch = tf.shape(start_tokens)[0]
    tokens_array = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    outputs_array = tf.TensorArray(tf.float32, size=0, dynamic_size=True)

    def keep_going(step, tokens, state, finished, scores, tokens_array, outputs_array):
        # At least one step always runs so that the stacked arrays have a known shape,
        # even for an empty batch.
        return tf.logical_and(step < max_length,
                              tf.logical_or(step == 0, tf.logical_not(tf.reduce_all(finished))))

    def body(step, tokens, state, finished, scores, tokens_array, outputs_array):
        logits, state, step_output = next_step(tokens, state)
        log_probs = tf.nn.log_softmax(logits)  # (batch, vocab)
        next_tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)  # (batch,)
        next_tokens = tf.where(finished, pad_id, next_tokens)
        chosen = tf.gather(log_probs, next_tokens, batch_dims=1)  # (batch,)
        scores += tf.where(finished, 0.0, chosen)
        step_output = tf.where(
            tf.reshape(finished, [-1] + [1] * (step_output.shape.rank - 1)),
            tf.zeros_like(step_output), step_output)
        tokens_array = tokens_array.write(step, next_tokens)
        outputs_array = outputs_array.write(step, tf.cast(step_output, tf.float32))
        finished = finished | tf.equal(next_tokens, end_id)
        return step + 1, next_tokens, state, finished, scores, tokens_array, outputs_array

    _, _, _, _, scores, tokens_array, outputs_array = tf.while_loop(
        keep_going, body,
        (tf.constant(0), tf.cast(start_tokens, tf.int32), initial_state,
         tf.zeros([batch], tf.bool), tf.zeros([batch]), tokens_array, outputs_array))
    tokens = tf.transpose(tokens_array.stack(), [1, 0])  # (t, batch) -> (batch, t)
    step_outputs = outputs_array.stack()  # (t, batch, ...)
    step_outputs = tf.transpose(step_outputs, tf.concat([[1, 0], tf.range(2, tf.rank(step_outputs))], 0))
    return SearchResult(tokens, sequence_lengths(tokens, end_id), scores, step_outputs)


def sequence_lengths(tokens, end_id):
    """(batch, t) tokens -> (batch,) count up to and including the first `end_id` (t if none)."""
    is_end = tf.cast(tf.equal(tokens, end_id), tf.int32)
    before_or_at_end = tf.equal(tf.cumsum(is_end, axis=1, exclusive=True), 0)
    return tf.reduce_sum(tf.cast(before_or_at_end, tf.int32), axis=1)
