"""A trained Transformer under the package's one API: fit, the custom loop, every search, the fast paths."""

import dataclasses
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import tasks
from keras_s2s.config import TrainConfig, preset
from keras_s2s.data import make_dataset
from keras_s2s.metrics import exact_match
from keras_s2s.text import END_ID
from keras_s2s.model import Seq2Seq
from keras_s2s.training import make_optimizer, train
from keras_s2s.translator import Translator


def test_the_trained_transformer_translates_held_out_dates(transformer_dates_model):
    model, history, held_out = transformer_dates_model
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 3
    sources, references = zip(*held_out)
    translations = model.translate(list(sources))
    # Five epochs on 4,000 pairs: the format is learnt first, the digits of the year last
    # (the misses are '2080' for '2008'), and how far a run gets varies with the CPU's arithmetic.
    well_formed = [re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()) is not None for text in translations]
    assert np.mean(well_formed) > 0.9
    assert exact_match(translations, list(references)) > 0.3


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_fit_and_the_custom_loop_give_the_same_losses():
    pairs, _ = tasks.load_task("dates", 256, 4, seed=2)
    model_config, _ = preset("dates-transformer")
    model_config = dataclasses.replace(model_config, units=16, ff_units=32, dropout=0.0)
    train_config = TrainConfig(epochs=2, batch_size=64, learning_rate=3e-3)
    keras.utils.set_random_seed(0)
    initial = Seq2Seq.from_pairs(pairs, model_config)
    losses = {}
    for path in ("fit", "loop"):
        model = Seq2Seq.from_pairs(pairs, model_config)
        model.set_weights(initial.get_weights())
        batches = make_dataset(pairs, model, 64, shuffle=False)
        if path == "fit":
            model.compile(optimizer=make_optimizer(train_config))
            losses[path] = model.fit(batches, epochs=2, verbose=0).history["loss"]
        else:
            losses[path] = [epoch["loss"] for epoch in train(model, batches, train_config, verbose=0)]
    np.testing.assert_allclose(losses["fit"], losses["loop"], rtol=1e-4)
    assert losses["fit"][1] < losses["fit"][0]


def test_beam_of_one_is_greedy_and_rows_do_not_depend_on_their_batch(transformer_dates_model):
    model, _, held_out = transformer_dates_model
    translator = model.translator()
    texts = tf.constant([source for source, _ in held_out[:24]])
    greedy = translator.greedy(texts)
    beam = translator.beam(texts, tf.constant(1))
    np.testing.assert_array_equal(greedy["text"], beam["text"])
    np.testing.assert_array_equal(greedy["length"], beam["length"])
    alone = [translator.greedy(texts[index:index + 1])["text"][0] for index in (0, 7, 23)]
    np.testing.assert_array_equal(alone, tf.gather(greedy["text"], [0, 7, 23]))
    reversed_batch = translator.greedy(texts[::-1])
    np.testing.assert_array_equal(reversed_batch["text"][::-1], greedy["text"])


def test_attention_output_is_the_last_layer_average_of_the_per_head_weights(transformer_dates_model):
    model, _, held_out = transformer_dates_model
    texts = [source for source, _ in held_out[:4]]
    outputs = model.translator().greedy(tf.constant(texts))
    heads = model.attention_heads(texts)  # (batch, layers, heads, t, s)
    config = model.model_config
    batch, t, s = outputs["attention"].shape
    assert heads.shape == (batch, config.num_layers, config.num_heads, t, s)
    real = (outputs["target_tokens"] != b"").numpy()
    averaged = tf.reduce_mean(heads[:, -1], axis=1).numpy()
    np.testing.assert_allclose(averaged[real], outputs["attention"].numpy()[real], atol=1e-5)
    # Rows after a target's [END] read padding: zeros, as the searches leave them.
    source_ids = model.source_text.encode(tf.constant(texts[:2])).to_tensor()
    target_ids = tf.constant([[7, 8, END_ID, 0], [7, 8, 9, END_ID]])
    forced = model.translator().forced_heads(source_ids, target_ids).numpy()  # (2, layers, heads, 4, s)
    assert np.all(forced[0, :, :, 3] == 0.0) and np.all(forced[1, :, :, 3].sum(-1) > 0.99)


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_the_fast_paths_translate_as_the_textbook_path(transformer_dates_model):
    model, _, held_out = transformer_dates_model
    texts = tf.constant([source for source, _ in held_out[:16]])
    expected = model.translator().greedy(texts)["text"]
    for options in ({"jit_compile": True}, {"shards": 2}):
        translator = Translator(model, **options)
        np.testing.assert_array_equal(translator.greedy(texts[:3])["text"], expected[:3])
        np.testing.assert_array_equal(translator.greedy(texts)["text"], expected)
    with pytest.raises(ValueError, match="projection_dtype"):
        Translator(model, projection_dtype="bfloat16")


def test_source_longer_than_max_source_length_is_clipped_before_attention(transformer_dates_model):
    model, _, _ = transformer_dates_model
    outputs = model.translator().greedy(tf.constant(["3 March 2021 " * 2000]))
    assert outputs["attention"].shape[2] == model.model_config.max_source_length
    assert outputs["length"][0] <= model.model_config.max_target_length
