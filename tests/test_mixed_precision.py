"""A mixed-precision model (bfloat16 compute, float32 weights) trains and decodes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import tasks
from keras_s2s.config import ModelConfig, TrainConfig
from keras_s2s.data import make_dataset
from keras_s2s.model import Seq2Seq
from keras_s2s.training import make_optimizer, train


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


ARCHITECTURES = {"rnn": dict(embedding_dim=16, attention_units=16),
                 "transformer": dict(architecture="transformer", num_layers=1, num_heads=4,
                                     ff_units=32)}


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_mixed_bfloat16_trains_with_both_paths_and_decodes(bfloat16_policy, architecture):
    pairs, held_out = tasks.load_task("dates", 256, 4, seed=3)
    config = ModelConfig(source_tokenizer="char", target_tokenizer="char", units=32,
                         max_target_length=12, **ARCHITECTURES[architecture])
    model = Seq2Seq.from_pairs(pairs, config)
    assert model.encoder.compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in model.weights)
    dataset = make_dataset(pairs, model, 64)
    model.compile(optimizer=make_optimizer(TrainConfig()))
    fit_loss = model.fit(dataset, epochs=1, verbose=0).history["loss"][-1]
    loop_loss = train(model, dataset, TrainConfig(epochs=1), verbose=0)[-1]["loss"]
    assert np.isfinite(fit_loss) and np.isfinite(loop_loss)
    texts = tf.constant([source for source, _ in held_out])
    translator = model.translator()
    for outputs in (translator.greedy(texts), translator.beam(texts, tf.constant(3)),
                    translator.sample(texts, tf.constant(1.0), tf.constant(0), tf.constant(1.0),
                                      tf.constant(7, tf.int64))):
        assert outputs["text"].shape == (4,)
        assert outputs["score"].dtype == tf.float32
        assert np.all(outputs["length"].numpy() <= 12)
