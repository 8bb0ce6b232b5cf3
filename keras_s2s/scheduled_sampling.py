"""Scheduled sampling: train the decoder on its own predictions some of the time.

Teacher forcing feeds the decoder the gold previous token y_{t-1} at every step; at test time
it gets its own prediction ŷ_{t-1} instead, a mismatch ("exposure bias") that can let one
early mistake derail the rest of the output. Scheduled sampling flips a coin per token:

    input_t = y_{t-1}  with probability ε_i        (the gold token, teacher forcing)
              ŷ_{t-1}  with probability 1 - ε_i    (the model's most likely previous token)

and lowers ε_i as training step i grows, from pure teacher forcing towards free running.
Bengio et al.'s inverse sigmoid schedule is ε_i = k / (k + exp(i / k)).

The model's prediction depends on the previous step, so the decoder runs token by token: a
`tf.scan` over target positions of the decoder's `step` (either architecture: the contract
of `source_memory.DecoderContract`), in graph. Gradients do not flow through the choice of ŷ
(an argmax), as in the paper. A decoder's `step` applies no dropout, so the decoder side
trains without it on this path (the encoder keeps its dropout).

Shapes: source_ids (batch, s), decoder_input_ids (batch, t) starting with [START],
logits (batch, t, vocab).

Reference:
    Bengio, Vinyals, Jaitly, Shazeer. Scheduled Sampling for Sequence Prediction with
    Recurrent Neural Networks. NeurIPS 2015. https://arxiv.org/abs/1506.03099
"""

import math
import time

import tensorflow as tf

from keras_s2s import distribute
from keras_s2s.kv_cache import FixedCache
from keras_s2s.losses import masked_correct, masked_cross_entropy
from keras_s2s.source_memory import encode_source
from keras_s2s.training import EpochTotals, make_optimizer


def inverse_sigmoid_decay(step, k=100.0):
    """ε_i = k / (k + exp(i / k)): the chance of feeding the gold token at training step i.

    Starts just below 1 and falls to 0.5 near step k·ln(k); larger k decays more slowly.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 (Bengio et al. 2015); got {k}.")
    return k / (k + math.exp(min(step / k, 700.0)))  # 700 keeps exp() finite


def scheduled_sampling_logits(model, source_ids, decoder_input_ids, truth_probability, seed,
                              training=True):
    """Logits of the decoder fed a per-token mix of gold and predicted tokens.

    Args:
        model: a `Seq2Seq`.
        source_ids: (batch, s) int32.
        decoder_input_ids: (batch, t) int32, the gold tokens shifted right ([START] first).
        truth_probability: scalar ε in [0, 1]; 1 is teacher forcing, 0 free running.
        seed: (2,) int32/int64, seeds the coin flips (stateless, so reproducible).
        training: passed to the encoder (dropout).

    Returns:
        logits (batch, t, vocab). Position 0 always reads [START].
    """
    decoder = model.decoder
    memory = encode_source(model.encoder, decoder, source_ids, training=training)
    batch, length = tf.shape(decoder_input_ids)[0], tf.shape(decoder_input_ids)[1]
    use_gold = tf.random.stateless_uniform(tf.shape(decoder_input_ids), seed) < truth_probability
    use_gold = tf.concat([tf.ones([batch, 1], tf.bool), use_gold[:, 1:]], axis=1)  # (batch, t)

    def one_step(carry, inputs):
        state, previous_logits = carry
        gold, take_gold = inputs  # (batch,), (batch,)
        predicted = tf.argmax(previous_logits, axis=-1, output_type=tf.int32)  # (batch,)
        tokens = tf.where(take_gold, gold, tf.stop_gradient(predicted))
        logits, state, _ = decoder.step(tokens, state, memory)
        return state, logits

    # t steps, each with its own position: the fixed cache keeps one shape through tf.scan.
    initial = (decoder.search_state(memory, length, FixedCache),
               tf.zeros([batch, decoder.vocab_size]))
    time_major = (tf.transpose(tf.cast(decoder_input_ids, tf.int32)), tf.transpose(use_gold))  # (t, batch)
    _, logits = tf.scan(one_step, time_major, initializer=initial)  # (t, batch, vocab)
    return tf.transpose(logits, [1, 0, 2])  # (batch, t, vocab)


def scheduled_sampling_sums(model, source_ids, target_ids, truth_probability, seed,
                            label_smoothing=0.0):
    """(loss_sum, token_count, correct) of predicting target_ids[:, 1:] with the decoder fed
    `scheduled_sampling_logits`' mix of gold and predicted tokens."""
    logits = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], truth_probability, seed)
    labels = target_ids[:, 1:]  # (batch, t)
    loss_sum, token_count = masked_cross_entropy(labels, logits, label_smoothing)
    return loss_sum, token_count, masked_correct(labels, logits)


def train_scheduled_sampling(model, train_dataset, train_config, truth_probability=None,
                             verbose=1):
    """Trains `model` for `train_config.epochs` epochs with scheduled sampling.

    Args:
        model: a `Seq2Seq`.
        train_dataset: (source_ids, target_ids) batches from `make_dataset`.
        train_config: a `TrainConfig` (epochs, learning rate, clipping, label smoothing, seed).
        truth_probability: function of the training step i (0, 1, ...) returning ε_i in
            [0, 1]; defaults to `inverse_sigmoid_decay` with k = 100.
        verbose: 1 prints one line per epoch, 0 is silent.

    Returns:
        One dict per epoch: loss and accuracy (per real target token, on the mixed inputs),
        truth_probability (ε at the epoch's last step) and seconds.
    """
    truth_probability = truth_probability or inverse_sigmoid_decay
    cardinality = int(train_dataset.cardinality())
    optimizer = make_optimizer(train_config, cardinality if cardinality > 0 else None)
    optimizer.build(model.trainable_variables)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int64)])
    def train_step(source_ids, target_ids, epsilon, seed):
        return distribute.train_on_batch(model, optimizer, lambda: scheduled_sampling_sums(
            model, source_ids, target_ids, epsilon, seed, train_config.label_smoothing))

    history, step = [], 0
    for epoch in range(train_config.epochs):
        start, totals, epsilon = time.perf_counter(), EpochTotals(), 1.0
        for source_ids, target_ids in train_dataset:
            epsilon = float(truth_probability(step))
            if not 0.0 <= epsilon <= 1.0:
                raise ValueError(f"truth_probability({step}) must be in [0, 1]; got {epsilon}.")
            totals.add(*train_step(tf.cast(source_ids, tf.int32), tf.cast(target_ids, tf.int32),
                                   tf.constant(epsilon, tf.float32),
                                   tf.constant([train_config.seed, step], tf.int64)))
            step += 1
        if step == 0:
            raise ValueError("train_dataset yielded no batch: there is nothing to train on.")
        logs = {"epoch": epoch + 1, **totals.logs(), "truth_probability": epsilon,
                "seconds": round(time.perf_counter() - start, 3)}
        history.append(logs)
        if verbose:
            print(f"Epoch {epoch + 1}/{train_config.epochs}: loss {logs['loss']:.4f}, "
                  f"accuracy {logs['accuracy']:.4f}, ε {epsilon:.3f}, {logs['seconds']:.1f} s")
    return history
