"""Beam search over the same `next_step(tokens, state)` functions as `search.py`.

Each sentence keeps `beam_size` partial translations (hypotheses). At every step each one is
extended by every vocabulary token; the `beam_size` best extensions by length-normalised
score survive:

    score(y) = log p(y | x) / lp(|y|)        lp(n) = ((5 + n) / 6) ** alpha   (GNMT)

alpha = 0 ranks by raw log-probability (which favours short outputs); larger alpha favours
longer ones. A hypothesis that has produced [END] is finished: it stays in the beam unchanged
and competes with the growing ones on its final score. The search stops when every
hypothesis of every sentence is finished, or at `max_length`.

Shapes: the model sees (batch * beam, ...) rows, the beams of a sentence next to each other.
Anything `next_step` closes over (encoder outputs, attention keys) must be tiled the same
way with `tile_beams`; the state passed in is tiled here.

Reference: Wu et al. Google's Neural Machine Translation System. 2016, section 7.
https://arxiv.org/abs/1609.08144
"""

import collections

import tensorflow as tf

from keras_s2s.search import zero_rows

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
                alpha=0.6, pad_id=0):
    """Batched beam search in one graph loop.

    Args:
        next_step: (batch * beam,) tokens, state -> logits, state, step_output.
        initial_state: state nest for each sentence (batch, ...); tiled here.
        start_tokens: (batch,) int32.
        end_id: token that finishes a hypothesis.
        max_length: most tokens per hypothesis.
        beam_size: hypotheses kept per sentence (int or scalar tensor); 1 is greedy search.
        alpha: length-penalty exponent.
        pad_id: written after a hypothesis has finished.

    Returns:
        A `BeamResult`.
    """
    beam_size = tf.convert_to_tensor(beam_size, tf.int32)
    batch = tf.shape(start_tokens)[0]
    flat_offsets = tf.range(batch)[:, tf.newaxis] * beam_size  # (batch, 1): first row of each sentence
    # Only the first hypothesis is alive at the start, so that the first expansion does
    # not fill the beam with copies of one token.
    log_probs = tf.tile(tf.concat([[0.0], tf.fill([beam_size - 1], _NEG_INF)], 0)[tf.newaxis],
                        [batch, 1])  # (batch, beam)
    arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True)
              for dtype in (tf.int32, tf.int32, tf.float32)]  # tokens, parents, step outputs

    def keep_going(step, tokens, state, log_probs, lengths, finished, *arrays):
        return tf.logical_and(step < max_length,
                              tf.logical_or(step == 0, tf.logical_not(tf.reduce_all(finished))))

    def body(step, tokens, state, log_probs, lengths, finished, tokens_array, parents_array,
             outputs_array):
        logits, state, step_output = next_step(tokens, state)  # (batch * beam, vocab)
        # A hypothesis's extensions share its score and length, so only its `beam_size` most
        # likely tokens can be among the best `beam_size` extensions of the sentence: the
        # rest of the vocabulary is never scored.
        width = tf.minimum(beam_size, tf.shape(logits)[-1])
        step_log_probs, top_tokens = tf.math.top_k(tf.nn.log_softmax(logits), k=width)
        step_log_probs = tf.reshape(step_log_probs, [batch, beam_size, width])
        top_tokens = tf.reshape(top_tokens, [batch, beam_size, width])
        # A finished hypothesis can only be extended by padding, at no cost: it survives as is.
        frozen = tf.concat([[0.0], tf.fill([width - 1], _NEG_INF)], 0)  # (width,)
        step_log_probs = tf.where(finished[:, :, tf.newaxis], frozen, step_log_probs)
        top_tokens = tf.where(finished[:, :, tf.newaxis], pad_id, top_tokens)
        candidate_log_probs = log_probs[:, :, tf.newaxis] + step_log_probs  # (batch, beam, width)
        candidate_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)  # (batch, beam)
        candidate_scores = (candidate_log_probs
                            / length_penalty(candidate_lengths, alpha)[:, :, tf.newaxis])
        _, best = tf.math.top_k(tf.reshape(candidate_scores, [batch, -1]), k=beam_size)  # (batch, beam)
        parents = best // width  # which hypothesis each survivor extends
        new_tokens = tf.gather(tf.reshape(top_tokens, [batch, -1]), best, batch_dims=1)
        log_probs = tf.gather(tf.reshape(candidate_log_probs, [batch, -1]), best, batch_dims=1)
        lengths = tf.gather(candidate_lengths, parents, batch_dims=1)
        was_finished = tf.gather(finished, parents, batch_dims=1)
        # Hypotheses at -inf (fewer tokens than beams) count as finished, so they never
        # keep the loop running.
        finished = was_finished | tf.equal(new_tokens, end_id) | tf.math.is_inf(log_probs)
        flat_parents = tf.reshape(parents + flat_offsets, [-1])  # rows of (batch * beam) tensors
        state = tf.nest.map_structure(lambda tensor: tf.gather(tensor, flat_parents), state)
        # What the parent reported at this step belongs to the token it chose.
        step_output = zero_rows(tf.reshape(was_finished, [-1]), tf.gather(step_output, flat_parents))
        step_output = tf.reshape(step_output, tf.concat([[batch, beam_size],
                                                         tf.shape(step_output)[1:]], 0))
        return (step + 1, tf.reshape(new_tokens, [-1]), state, log_probs, lengths, finished,
                tokens_array.write(step, new_tokens), parents_array.write(step, parents),
                outputs_array.write(step, step_output))

    loop_vars = (tf.constant(0), tf.repeat(tf.cast(start_tokens, tf.int32), beam_size),
                 tile_beams(initial_state, beam_size), log_probs,
                 tf.zeros([batch, beam_size], tf.int32), tf.zeros([batch, beam_size], tf.bool),
                 *arrays)
    # Batch and beam stay open dimensions: a constant beam size can give the tensors that
    # enter the loop a static beam width that top_k's output does not promise.
    open_leading = lambda tensor: tf.TensorShape([None] * tensor.shape.rank)  # noqa: E731
    invariants = (tf.TensorShape([]), tf.TensorShape([None]),
                  tf.nest.map_structure(lambda tensor: tf.TensorShape([None]).concatenate(
                      tensor.shape[1:]), loop_vars[2]),
                  *[open_leading(tensor) for tensor in loop_vars[3:6]],
                  *[tf.TensorShape(None)] * 3)
    (_, _, _, log_probs, lengths, _, tokens_array, parents_array,
     outputs_array) = tf.while_loop(keep_going, body, loop_vars, shape_invariants=invariants)

    scores = log_probs / length_penalty(lengths, alpha)  # (batch, beam)
    scores, order = tf.math.top_k(scores, k=beam_size)  # best first
    tokens, step_outputs = _backtrack(order, tokens_array.stack(), parents_array.stack(),
                                      outputs_array.stack())
    return BeamResult(tokens, tf.gather(lengths, order, batch_dims=1), scores,
                      tf.gather(log_probs, order, batch_dims=1), step_outputs)


def _backtrack(order, step_tokens, step_parents, step_outputs):
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
    outputs = tf.transpose(outputs, [1, 2, 0] + list(range(3, outputs.shape.rank)))
    return tokens, outputs

