"""Scheduled sampling with real TensorFlow: its two limits are teacher forcing and greedy
free running, and training with it drives the loss down."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import tasks
from keras_s2s.config import preset
from keras_s2s.data import make_dataset
from keras_s2s.model import Seq2Seq
from keras_s2s.scheduled_sampling import (inverse_sigmoid_decay, scheduled_sampling_logits,
                                          train_scheduled_sampling)
from keras_s2s.search import greedy_search
from keras_s2s.source_memory import encode_source
from keras_s2s.text import END_ID, START_ID

from .helpers import small_config

SEED = tf.constant([0, 1], tf.int64)


def model_and_batch(architecture):
    """An untrained dates model of `architecture` and one batch: scheduled sampling steps
    either decoder through the same contract."""
    if architecture == "rnn":
        model_config, _ = small_config("dates", units=32, embedding_dim=16, attention_units=16)
    else:
        model_config, _ = small_config("dates-transformer", units=32, ff_units=64)
    train_pairs, _ = tasks.load_task("dates", 300, 10, seed=4)
    keras.utils.set_random_seed(0)
    model = Seq2Seq.from_pairs(train_pairs, model_config)
    source_ids, target_ids = next(iter(make_dataset(train_pairs, model, 16, shuffle=False)))
    return model, train_pairs, tf.cast(source_ids, tf.int32), tf.cast(target_ids, tf.int32)


@pytest.fixture(scope="module")
def batch_and_model(architecture):
    return model_and_batch(architecture)


def test_truth_probability_one_is_teacher_forcing(batch_and_model):
    model, _, source_ids, target_ids = batch_and_model
    expected = model((source_ids, target_ids[:, :-1]))
    logits = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 1.0, SEED,
                                       training=False)
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), atol=1e-4)


def test_truth_probability_zero_is_greedy_free_running(batch_and_model):
    model, _, source_ids, target_ids = batch_and_model
    logits = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 0.0, SEED,
                                       training=False)
    fed_back = tf.argmax(logits, axis=-1, output_type=tf.int32).numpy()  # (batch, t)
    memory = encode_source(model.encoder, model.decoder, source_ids)

    def next_step(tokens, state):
        return model.decoder.step(tokens, state, memory)

    length = fed_back.shape[1]
    greedy = greedy_search(next_step, model.decoder.search_state(memory, length),
                           tf.fill([source_ids.shape[0]], START_ID), END_ID, length)
    greedy_tokens, lengths = greedy.tokens.numpy(), greedy.lengths.numpy()
    for row in range(len(fed_back)):
        # Greedy pads after [END]; before that, both paths feed back the same argmax tokens.
        assert list(fed_back[row, :lengths[row]]) == list(greedy_tokens[row, :lengths[row]])


def test_coin_flips_mix_both_inputs_and_are_reproducible(batch_and_model):
    model, _, source_ids, target_ids = batch_and_model
    half = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 0.5, SEED, False)
    again = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 0.5, SEED, False)
    np.testing.assert_array_equal(half.numpy(), again.numpy())
    forced = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 1.0, SEED, False)
    free = scheduled_sampling_logits(model, source_ids, target_ids[:, :-1], 0.0, SEED, False)
    assert not np.allclose(half.numpy(), forced.numpy())
    assert not np.allclose(half.numpy(), free.numpy())


@pytest.mark.parametrize("architecture_name", [
    "rnn", pytest.param("transformer", marks=pytest.mark.slow)])  # the Transformer's: 13 s
def test_training_with_scheduled_sampling_drives_the_loss_down(architecture_name):
    model, train_pairs, _, _ = model_and_batch(architecture_name)
    _, train_config = preset("dates")
    train_config = dataclasses.replace(train_config, epochs=3)
    seen = []

    def schedule(step):
        seen.append(step)
        return max(0.5, 1.0 - step / 40)

    history = train_scheduled_sampling(model, make_dataset(train_pairs, model, 32), train_config,
                                       schedule, verbose=0)
    assert len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    assert seen == list(range(len(seen)))  # one call per training step, in order
    assert history[-1]["truth_probability"] < history[0]["truth_probability"]


def test_inverse_sigmoid_decay_falls_from_one_towards_zero():
    values = [inverse_sigmoid_decay(step, k=50) for step in (0, 100, 200, 400, 10 ** 6)]
    assert 0.97 < values[0] < 1.0
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="k"):
        inverse_sigmoid_decay(0, k=0.5)


def test_probability_outside_zero_one_is_refused():
    model, train_pairs, _, _ = model_and_batch("rnn")
    _, train_config = preset("dates")
    with pytest.raises(ValueError, match="truth_probability"):
        train_scheduled_sampling(model, make_dataset(train_pairs[:40], model, 32),
                                 dataclasses.replace(train_config, epochs=1), lambda step: 1.5,
                                 verbose=0)
