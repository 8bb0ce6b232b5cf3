"""Decoding strategies that know nothing about RNNs.

A search drives a `next_step` function:

    next_step(tokens (batch,), state) -> (logits (batch, vocab), new_state, step_output (batch, ...))

`state` is any nest of tensors with batch first. Only the batch axis may change size from
step to step, unless the state says otherwise: a state object with a `shape_invariants()`
method gives the loop's shape invariants itself (a Transformer's growing key/value cache
does). `step_output` is recorded at every step and returned stacked (batch, t, ...): the
decoder uses it for attention weights. All loops are
`tf.while_loop`s, so a search runs inside one graph call for a whole batch and exports with
the model.

Every search also accepts `row_inputs`: a nest of per-row tensors the step reads but never
changes (the decoder's `SourceMemory`, say). Then
`next_step(tokens, state, row_inputs)` is called with the rows that are still decoding only:
a row that has produced the end token leaves the batch, so a batch costs the sum of its
output lengths instead of its size times its longest output.
"""

import collections

import tensorflow as tf

from keras_s2s.text import PAD_ID

SearchResult = collections.namedtuple(
    "SearchResult", ["tokens", "lengths", "scores", "step_outputs"])
SearchResult.__doc__ = """What a search returns, batch first.

tokens: (batch, t) int32, the chosen tokens; the end token is included, then padding.
lengths: (batch,) int32, tokens up to and including the end token (t when none came).
scores: (batch,) float32, the summed log-probability of the tokens counted in `lengths`.
step_outputs: (batch, t, ...), what `next_step` reported at each step (zeros after the end).
"""


def greedy_search(next_step, initial_state, start_tokens, end_id, max_length, row_inputs=None):
    """Takes the most likely token at every step until every row has produced `end_id`.

    Args:
        next_step: the model's one-step function (see module docstring).
        initial_state: state nest before the first step.
        start_tokens: (batch,) int32, the first input token of each row.
        end_id: the token that finishes a row.
        max_length: int or scalar tensor, most tokens produced per row.
        row_inputs: optional nest of (batch, ...) tensors passed to `next_step` as a third
            argument; finished rows then leave the batch (see module docstring).

    Returns:
        A `SearchResult`; scores are summed log-probabilities.
    """
    return _one_path_search(next_step, initial_state, start_tokens, end_id, max_length,
                            lambda logits, step, rows: most_likely(logits), row_inputs)


def most_likely(logits):
    """(rows, vocab) logits -> the argmax tokens (rows,) int32 and their log-probabilities."""
    tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (rows,)
    # The most likely token has probability >= 1/vocab, so the log of its softmax cannot
    # underflow; that lets greedy use the softmax kernel, which is cheaper than LogSoftmax's.
    return tokens, tf.math.log(tf.gather(tf.nn.softmax(logits), tokens, batch_dims=1))


def sample_search(next_step, initial_state, start_tokens, end_id, max_length, row_keys,
                  temperature=1.0, top_k=0, top_p=1.0, row_inputs=None):
    """Draws every token from the model's (reshaped) distribution: varied output for a chatbot.

    Args:
        next_step, initial_state, start_tokens, end_id, max_length, row_inputs: as
            `greedy_search`.
        row_keys: (batch,) int64, one random key per row. A row's draws depend only on its
            key and the step, never on the batch it is in, so the same key always gives the
            same sample (derive keys from the input text and a user seed for that).
        temperature: divides the logits; below 1 sharpens, above 1 flattens; <= 0 is greedy.
        top_k: sample among the k most likely tokens only (0: all).
        top_p: sample among the smallest set of tokens whose probability reaches p (nucleus).

    Returns:
        A `SearchResult`; scores are the model's own log-probabilities of the drawn tokens.
    """
    temperature = tf.cast(temperature, tf.float32)
    row_keys = tf.cast(row_keys, tf.int64)

    def draw(logits, step, rows):
        log_probs = tf.nn.log_softmax(logits)  # (rows, vocab)
        logits = filter_logits(log_probs / tf.maximum(temperature, 1e-6), top_k, top_p)
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample from softmax(logits).
        keys = tf.gather(row_keys, rows)
        # One draw per row from its own key: the stateless random ops have no vectorised
        # form, so this is a loop over rows (tf.vectorized_map would fall back to the same
        # loop, with a warning). The fixed output signature keeps an empty batch's shape.
        uniform = tf.map_fn(
            lambda key: tf.random.stateless_uniform(
                tf.shape(logits)[1:], seed=tf.stack([key, tf.cast(step, tf.int64)]),
                minval=1e-20, maxval=1.0),
            keys, fn_output_signature=tf.TensorSpec([None], tf.float32))  # (rows, vocab)
        uniform = tf.reshape(uniform, tf.shape(logits))
        sampled = tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), axis=-1,
                            output_type=tf.int32)
        greedy = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        tokens = tf.where(temperature > 0, sampled, greedy)
        return tokens, tf.gather(log_probs, tokens, batch_dims=1)

    return _one_path_search(next_step, initial_state, start_tokens, end_id, max_length,
                            draw, row_inputs)


def filter_logits(logits, top_k=0, top_p=1.0):
    """(batch, vocab) logits with everything outside the top-k / top-p set at -inf.

    At least the most likely token always survives; tokens tied with the last kept one
    are kept too, so a tie can leave more than k.
    """
    vocab = tf.shape(logits)[-1]
    top_k = tf.cast(top_k, tf.int32)
    top_k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")  # (batch, vocab)
    # Nucleus: keep sorted tokens while the probability mass before them is below p.
    sorted_probs = tf.nn.softmax(sorted_logits)
    mass_before = tf.cumsum(sorted_probs, axis=-1, exclusive=True)
    top_p = tf.cast(top_p, tf.float32)
    keep_count = tf.reduce_sum(tf.cast(mass_before < top_p, tf.int32), -1)
    # Rounding can bring the mass to 1.0 before the tail: p >= 1 keeps every token exactly.
    keep_count = tf.where(top_p >= 1.0, vocab, keep_count)
    keep_count = tf.clip_by_value(tf.minimum(keep_count, top_k), 1, vocab)  # (batch,)
    threshold = tf.gather(sorted_logits, keep_count - 1, batch_dims=1)[:, tf.newaxis]
    return tf.where(logits < threshold, tf.constant(-float("inf"), logits.dtype), logits)


def _one_path_search(next_step, initial_state, start_tokens, end_id, max_length, choose,
                     row_inputs=None):
    """The loop shared by greedy and sampling: one token per row per step, chosen by
    `choose(logits (rows, vocab), step, rows) -> (tokens (rows,) int32, their log-probabilities
    (rows,))`, where `rows` (rows,) holds the batch positions of the rows in play."""
    batch = tf.shape(start_tokens)[0]
    call_step, row_inputs, drop_finished = step_with_row_inputs(next_step, row_inputs)
    # Each step records (row, step) places and what those rows produced; the (batch, t)
    # results are assembled once after the loop, so no step pays for the whole batch.
    records = tuple(tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False)
                    for dtype in (tf.int32, tf.int32, tf.float32, tf.float32))

    def keep_going(step, rows, tokens, state, row_inputs, finished, records):
        # At least one step always runs so that the results have a known shape, even for
        # an empty batch.
        return tf.logical_and(step < max_length,
                              tf.logical_or(step == 0, tf.logical_not(tf.reduce_all(finished))))

    def body(step, rows, tokens, state, row_inputs, finished, records):
        logits, state, step_output = call_step(tokens, state, row_inputs)  # (rows, vocab)
        next_tokens, chosen = choose(logits, step, rows)  # (rows,), (rows,)
        if not drop_finished:
            # Finished rows stay in the batch: they repeat padding and add nothing.
            next_tokens = tf.where(finished, PAD_ID, next_tokens)
            chosen = tf.where(finished, 0.0, chosen)
            step_output = zero_rows(finished, step_output)
        places = tf.stack([rows, tf.fill(tf.shape(rows), step)], axis=1)  # (rows, 2): (row, step)
        records = tuple(array.write(step, value) for array, value in zip(
            records, (places, next_tokens, chosen, tf.cast(step_output, tf.float32))))
        finished = finished | tf.equal(next_tokens, end_id)
        carried = (rows, next_tokens, finished, state, row_inputs)
        if drop_finished:
            # Finished rows leave, so every row in play is unfinished; the gathers run only
            # on the steps where some row finished.
            def leave():
                in_play = tf.reshape(tf.where(tf.logical_not(finished)), [-1])  # (rows left,)
                return tf.nest.map_structure(lambda tensor: tf.gather(tensor, in_play), carried)
            carried = tf.cond(tf.reduce_any(finished), leave, lambda: carried)
        rows, next_tokens, finished, state, row_inputs = carried
        return step + 1, rows, next_tokens, state, row_inputs, finished, records

    loop_vars = (tf.constant(0), tf.range(batch), tf.cast(start_tokens, tf.int32), initial_state,
                 row_inputs, tf.zeros([batch], tf.bool), records)
    # Rows leave the batch, so every per-row tensor has an open first dimension.
    invariants = (tf.TensorShape([]), *[tf.nest.map_structure(open_rows, value)
                                        for value in loop_vars[1:3]],
                  state_shape_invariants(loop_vars[3]),
                  *[tf.nest.map_structure(open_rows, value) for value in loop_vars[4:6]],
                  (tf.TensorShape(None),) * len(records))
    steps, _, _, _, _, _, records = tf.while_loop(keep_going, body, loop_vars,
                                                  shape_invariants=invariants)
    places, step_tokens, step_scores, step_outputs = (array.concat() for array in records)
    tokens = tf.tensor_scatter_nd_update(tf.fill([batch, steps], PAD_ID), places, step_tokens)
    scores = tf.math.unsorted_segment_sum(step_scores, places[:, 0], batch)  # (batch,)
    step_outputs = tf.scatter_nd(  # (batch, t, ...), zeros where a row had finished
        places, step_outputs, tf.concat([[batch, steps], tf.shape(step_outputs)[1:]], 0))
    return SearchResult(tokens, sequence_lengths(tokens, end_id), scores, step_outputs)


def step_with_row_inputs(next_step, row_inputs):
    """(call_step, row_inputs, drop_finished) for a search loop that calls
    `call_step(tokens, state, row_inputs)`.

    With row inputs, `next_step` takes them and finished rows may leave the batch
    (`drop_finished`). Without, `next_step(tokens, state)` closes over whatever per-row
    tensors it reads, for the whole batch, so every row stays; the row inputs are then an
    empty nest.
    """
    if row_inputs is not None:
        return next_step, row_inputs, True
    return (lambda tokens, state, row_inputs: next_step(tokens, state)), (), False


def open_rows(tensor):
    """A per-row tensor's shape with the rows axis open: rows leave a search's batch."""
    return tf.TensorShape([None]).concatenate(tensor.shape[1:])


def state_shape_invariants(state):
    """A search loop's shape invariants for the decoder's state: what the state declares
    (`state.shape_invariants()`, for a state that changes shape along another axis than its
    rows), otherwise every tensor with its rows axis open."""
    if hasattr(state, "shape_invariants"):
        return state.shape_invariants()
    return tf.nest.map_structure(open_rows, state)


def zero_rows(condition, values):
    """values (batch, ...) as float32 with the rows where condition (batch,) holds zeroed."""
    values = tf.cast(values, tf.float32)
    condition = tf.reshape(condition, tf.concat([[-1], tf.ones([tf.rank(values) - 1], tf.int32)], 0))
    return tf.where(condition, tf.zeros_like(values), values)


def sequence_lengths(tokens, end_id):
    """(batch, t) tokens -> (batch,) count up to and including the first `end_id` (t if none)."""
    is_end = tf.cast(tf.equal(tokens, end_id), tf.int32)
    before_or_at_end = tf.equal(tf.cumsum(is_end, axis=1, exclusive=True), 0)
    return tf.reduce_sum(tf.cast(before_or_at_end, tf.int32), axis=1)
