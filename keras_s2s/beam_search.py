"""Beam search over the same `next_step(tokens, state)` functions as `search.py`.

Each sentence keeps `beam_size` partial translations (hypotheses). At every step each one is
extended by every vocabulary token; the `beam_size` best extensions by length-normalised
score survive:

    score(y) = log p(y | x) / lp(|y|)        lp(n) = ((5 + n) / 6) ** alpha   (GNMT)

alpha = 0 ranks by raw log-probability (which favours short outputs); larger alpha favours
longer ones. A hypothesis that has produced [END] is finished: it stays in the beam unchanged
and competes with the growing ones on its final score. The search stops when every
hypothesis of every sentence is finished, or at `max_length`.

Shapes: the model sees (sentences * beam, ...) rows, the beams of a sentence next to each
other. Per-sentence tensors the step reads (encoder outputs, attention keys) are best passed
as `row_inputs`: they are tiled here, and sentences that are done leave the batch. Anything
`next_step` closes over instead must be tiled the same way with `tile_beams`, and then every
sentence stays in the batch to the end.

Reference: Wu et al. Google's Neural Machine Translation System. 2016, section 7.
https://arxiv.org/abs/1609.08144
"""

import collections

import tensorflow as tf

from keras_s2s.search import open_rows, state_shape_invariants, step_with_row_inputs, zero_rows
from keras_s2s.text import PAD_ID

BeamResult = collections.namedtuple(
    "BeamResult", ["tokens", "lengths", "scores", "log_probs", "step_outputs"])
BeamResult.__doc__ = """The n-best list of each sentence, best first.

tokens: (batch, beam, t) int32; lengths: (batch, beam) int32, [END] included;
scores: (batch, beam) float32, length-normalised (the ranking); log_probs: (batch, beam)
float32, raw log p(y | x); step_outputs: (batch, beam, t, ...) per-step outputs (attention).
"""

_NEG_INF = -float("inf")


def length_penalty(lengths, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha, elementwise."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def tile_beams(nest, beam_size):
    """Repeats every (batch, ...) tensor of a nest: (batch * beam, ...), beams adjacent."""
    return tf.nest.map_structure(lambda tensor: tf.repeat(tensor, beam_size, axis=0), nest)


def beam_search(next_step, initial_state, start_tokens, end_id, max_length, beam_size,
                alpha=0.6, row_inputs=None):
    """Batched beam search in one graph loop.

    Args:
        next_step: (batch * beam,) tokens, state -> logits, state, step_output; with
            `row_inputs`, also given the row inputs of the hypotheses in play.
        initial_state: state nest for each sentence (batch, ...); tiled here.
        start_tokens: (batch,) int32.
        end_id: token that finishes a hypothesis.
        max_length: most tokens per hypothesis.
        beam_size: hypotheses kept per sentence (int or scalar tensor); 1 is greedy search.
        alpha: length-penalty exponent.
        row_inputs: optional nest of per-sentence (batch, ...) tensors the step reads but never
            changes (encoder outputs, attention keys, source mask); tiled here. With it, a
            sentence whose hypotheses have all finished leaves the batch, so the model runs
            only on sentences still being searched.

    Returns:
        A `BeamResult`.
    """
    beam_size = tf.convert_to_tensor(beam_size, tf.int32)
    batch = tf.shape(start_tokens)[0]
    call_step, row_inputs, drop_finished = step_with_row_inputs(next_step, row_inputs)

    def keep_going(step, sentences, tokens, state, row_inputs, log_probs, lengths, finished, *_):
        return tf.logical_and(step < max_length,
                              tf.logical_or(step == 0, tf.logical_not(tf.reduce_all(finished))))

    def body(step, sentences, tokens, state, row_inputs, log_probs, lengths, finished,
             final_log_probs, final_lengths, records):
        logits, state, step_output = call_step(tokens, state, row_inputs)  # (sentences * beam, vocab)
        in_play = tf.shape(sentences)[0]
        new_tokens, log_probs, lengths, parents, was_finished, finished = extend_beams(
            logits, log_probs, lengths, finished, beam_size, alpha, end_id)
        state, step_output = follow_parents(parents, was_finished, state, step_output)
        places = tf.stack([tf.fill([in_play], step), sentences], axis=1)  # (in_play, 2)
        records = tuple(array.write(step, value) for array, value in zip(
            records, (places, new_tokens, parents, step_output)))
        final_log_probs = tf.tensor_scatter_nd_update(final_log_probs, sentences[:, tf.newaxis], log_probs)
        final_lengths = tf.tensor_scatter_nd_update(final_lengths, sentences[:, tf.newaxis], lengths)
        per_sentence = (sentences, log_probs, lengths, finished)  # (in_play, ...) each
        per_row = (tf.reshape(new_tokens, [-1]), state, row_inputs)  # (in_play * beam, ...) each
        if drop_finished:
            per_sentence, per_row = _without_finished_sentences(per_sentence, per_row, beam_size)
        sentences, log_probs, lengths, finished = per_sentence
        tokens, state, row_inputs = per_row
        return (step + 1, sentences, tokens, state, row_inputs, log_probs, lengths, finished,
                final_log_probs, final_lengths, records)

    loop_vars = _initial_loop_vars(initial_state, start_tokens, row_inputs, beam_size)
    steps, *_, log_probs, lengths, records = tf.while_loop(
        keep_going, body, loop_vars, shape_invariants=_shape_invariants(loop_vars))
    return _n_best(records, steps, batch, beam_size, log_probs, lengths, alpha)


def _initial_loop_vars(initial_state, start_tokens, row_inputs, beam_size):
    """(step, sentences, tokens, state, row_inputs, log_probs, lengths, finished,
    final_log_probs, final_lengths, records) before the first step."""
    batch = tf.shape(start_tokens)[0]
    log_probs = initial_log_probs(batch, beam_size)  # (batch, beam)
    # Per step: (step, sentence) places, then the tokens, parents and outputs of those
    # sentences' hypotheses; laid out as (t, batch, beam, ...) once after the loop.
    records = tuple(tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False)
                    for dtype in (tf.int32, tf.int32, tf.int32, tf.float32))
    return (tf.constant(0), tf.range(batch), tf.repeat(tf.cast(start_tokens, tf.int32), beam_size),
            tile_beams(initial_state, beam_size), tile_beams(row_inputs, beam_size), log_probs,
            tf.zeros([batch, beam_size], tf.int32), tf.zeros([batch, beam_size], tf.bool),
            log_probs, tf.zeros([batch, beam_size], tf.int32), records)


def initial_log_probs(batch, beam_size):
    """(batch, beam) log-probabilities before the first step: only the first hypothesis is
    alive, so that the first expansion does not fill the beam with copies of one token."""
    return tf.tile(tf.concat([[0.0], tf.fill([beam_size - 1], _NEG_INF)], 0)[tf.newaxis],
                   [batch, 1])


def extend_beams(logits, log_probs, lengths, finished, beam_size, alpha, end_id):
    """One step of every sentence's beam: its `beam_size` best extensions.

    Args: logits (in_play * beam, vocab); log_probs, lengths, finished (in_play, beam).

    Returns:
        (new_tokens, log_probs, lengths, parents, was_finished, finished), each
        (in_play, beam): the surviving hypotheses, `parents` the hypothesis each extends.
    """
    in_play = tf.shape(log_probs)[0]
    # A hypothesis's extensions share its score and length, so only its `beam_size` most
    # likely tokens can be among the best `beam_size` extensions of the sentence: the
    # rest of the vocabulary is never scored.
    width = tf.minimum(beam_size, tf.shape(logits)[-1])
    step_log_probs, top_tokens = tf.math.top_k(tf.nn.log_softmax(logits), k=width)
    step_log_probs = tf.reshape(step_log_probs, [in_play, beam_size, width])
    top_tokens = tf.reshape(top_tokens, [in_play, beam_size, width])
    # A finished hypothesis can only be extended by padding, at no cost: it survives as is.
    frozen = tf.concat([[0.0], tf.fill([width - 1], _NEG_INF)], 0)  # (width,)
    step_log_probs = tf.where(finished[:, :, tf.newaxis], frozen, step_log_probs)
    top_tokens = tf.where(finished[:, :, tf.newaxis], PAD_ID, top_tokens)
    candidate_log_probs = log_probs[:, :, tf.newaxis] + step_log_probs  # (in_play, beam, width)
    candidate_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)  # (in_play, beam)
    candidate_scores = (candidate_log_probs
                        / length_penalty(candidate_lengths, alpha)[:, :, tf.newaxis])
    _, best = tf.math.top_k(tf.reshape(candidate_scores, [in_play, -1]), k=beam_size)
    parents = best // width  # (in_play, beam): which hypothesis each survivor extends
    new_tokens = tf.gather(tf.reshape(top_tokens, [in_play, -1]), best, batch_dims=1)
    log_probs = tf.gather(tf.reshape(candidate_log_probs, [in_play, -1]), best, batch_dims=1)
    lengths = tf.gather(candidate_lengths, parents, batch_dims=1)
    was_finished = tf.gather(finished, parents, batch_dims=1)
    # Hypotheses at -inf (fewer tokens than beams) count as finished, so they never
    # keep the loop running.
    finished = was_finished | tf.equal(new_tokens, end_id) | tf.math.is_inf(log_probs)
    return new_tokens, log_probs, lengths, parents, was_finished, finished


def follow_parents(parents, was_finished, state, step_output):
    """The survivors' decoder state and step outputs: each hypothesis takes its parent's.

    Args: parents, was_finished (in_play, beam) from `extend_beams`; state, a nest of
    (in_play * beam, ...) tensors; step_output (in_play * beam, ...).

    Returns: the state gathered by parent, and step_output as (in_play, beam, ...) float32,
    zeros for hypotheses that had already finished.
    """
    in_play, beam_size = tf.shape(parents)[0], tf.shape(parents)[1]
    flat_parents = tf.reshape(parents + tf.range(in_play)[:, tf.newaxis] * beam_size, [-1])
    state = tf.nest.map_structure(lambda tensor: tf.gather(tensor, flat_parents), state)
    # What the parent reported at this step belongs to the token it chose.
    step_output = zero_rows(tf.reshape(was_finished, [-1]), tf.gather(step_output, flat_parents))
    return state, tf.reshape(step_output, tf.concat([[in_play, beam_size],  # (in_play, beam, ...)
                                                     tf.shape(step_output)[1:]], 0))


def _without_finished_sentences(per_sentence, per_row, beam_size):
    """A sentence whose hypotheses have all finished leaves: per-sentence (in_play, ...) and
    per-row (in_play * beam, ...) nests gathered to those left; the gathers run only on the
    steps where one did."""
    finished = per_sentence[-1]  # (in_play, beam)

    def leave():
        kept = tf.cast(tf.reshape(tf.where(tf.logical_not(tf.reduce_all(finished, axis=1))),
                                  [-1]), tf.int32)  # (sentences left,)
        kept_rows = tf.reshape(kept[:, tf.newaxis] * beam_size + tf.range(beam_size), [-1])
        return (tf.nest.map_structure(lambda tensor: tf.gather(tensor, kept), per_sentence),
                tf.nest.map_structure(lambda tensor: tf.gather(tensor, kept_rows), per_row))

    return tf.cond(tf.reduce_any(tf.reduce_all(finished, axis=1)), leave,
                   lambda: (per_sentence, per_row))


def _shape_invariants(loop_vars):
    """The loop's shape invariants: sentences leave and the beam size may be a tensor, so
    batch and beam stay open dimensions; the decoder's state says what else may change."""
    open_all = lambda tensor: tf.TensorShape([None] * tensor.shape.rank)  # noqa: E731
    return (tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None]),
            state_shape_invariants(loop_vars[3]),
            tf.nest.map_structure(open_rows, loop_vars[4]),
            *[open_all(tensor) for tensor in loop_vars[5:10]],
            (tf.TensorShape(None),) * len(loop_vars[10]))


def _n_best(records, steps, batch, beam_size, log_probs, lengths, alpha):
    """The `BeamResult` from the loop's records and final hypotheses (batch, beam)."""
    places, step_tokens, step_parents, step_outputs = (array.concat() for array in records)
    # (t, batch, beam, ...): a sentence that left keeps its hypotheses in place (parents are
    # the identity) and adds padding and zero outputs.
    step_tokens = tf.tensor_scatter_nd_update(tf.fill([steps, batch, beam_size], PAD_ID), places,
                                              step_tokens)
    identity = tf.broadcast_to(tf.range(beam_size), [steps, batch, beam_size])
    step_parents = tf.tensor_scatter_nd_update(identity, places, step_parents)
    step_outputs = tf.scatter_nd(places, step_outputs,
                                 tf.concat([[steps, batch], tf.shape(step_outputs)[1:]], 0))
    return ranked(step_tokens, step_parents, step_outputs, log_probs, lengths, beam_size, alpha)


def ranked(step_tokens, step_parents, step_outputs, log_probs, lengths, beam_size, alpha):
    """The `BeamResult`, best first, from every step's tokens and parents (t, batch, beam),
    outputs (t, batch, beam, ...) and the final hypotheses' log_probs and lengths (batch, beam)."""
    scores = log_probs / length_penalty(lengths, alpha)  # (batch, beam)
    scores, order = tf.math.top_k(scores, k=beam_size)  # best first
    tokens, step_outputs = backtrack(order, step_tokens, step_parents, step_outputs)
    return BeamResult(tokens, tf.gather(lengths, order, batch_dims=1), scores,
                      tf.gather(log_probs, order, batch_dims=1), step_outputs)


def backtrack(order, step_tokens, step_parents, step_outputs):
    """Follows parent pointers from the last step back to the first.

    order: (batch, beam) final hypotheses to read; step_tokens, step_parents: (t, batch, beam);
    step_outputs: (t, batch, beam, ...). Returns tokens (batch, beam, t), outputs (batch, beam, t, ...).
    """
    def one_step_back(carry, step):
        index, _, _ = carry  # which hypothesis at this step each final one descends from
        tokens, parents, outputs = step
        return (tf.gather(parents, index, batch_dims=1), tf.gather(tokens, index, batch_dims=1),
                tf.gather(outputs, index, batch_dims=1))

    _, tokens, outputs = tf.scan(
        one_step_back, (step_tokens, step_parents, step_outputs),
        initializer=(order, tf.zeros_like(step_tokens[0]), tf.zeros_like(step_outputs[0])),
        reverse=True)
    tokens = tf.transpose(tokens, [1, 2, 0])  # (t, batch, beam) -> (batch, beam, t)
    # (t, batch, beam, ...) -> (batch, beam, t, ...)
    outputs = tf.transpose(outputs, tf.concat([[1, 2, 0], tf.range(3, tf.rank(outputs))], 0))
    return tokens, outputs

