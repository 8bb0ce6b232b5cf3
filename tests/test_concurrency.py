"""One translator shared by 8 threads gives exactly what serial calls give."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib
from tests.helpers import DATES


THREADS = 8
SENTENCES = DATES + ["", "12 Dec 1999", "July 4th, 1776", "🙂 ١٢ مارس",
             "Friday, 13 August 2027"]
# Batches of different sizes and contents, so that threads run different shapes at once:
# nine, one more than the threads, so every thread has one when they are released.
BATCHES = [SENTENCES[index:index + size] for size in (1, 3, 10) for index in range(0, 10, 4)]


def decode_all(translator, texts, signatures=False):
    """Greedy, beam and seeded sampling of `texts`, as plain Python values."""
    text = tf.constant(texts, tf.string, shape=[len(texts)])
    beam_size, seed = tf.constant(3), tf.constant(11, tf.int64)
    sample_args = (tf.constant(0.8), tf.constant(5), tf.constant(0.9), seed)
    if signatures:
        calls = {"greedy": translator.signatures["serving_default"](text=text),
                 "beam": translator.signatures["beam"](text=text, beam_size=beam_size),
                 "sample": translator.signatures["sample"](
                     text=text, temperature=sample_args[0], top_k=sample_args[1],
                     top_p=sample_args[2], seed=seed)}
    else:
        calls = {"greedy": translator.translate(text), "beam": translator.beam(text, beam_size),
                 "sample": translator.sample(text, *sample_args)}
    return {name: {"text": outputs["text"].numpy().tolist(), "score": outputs["score"].numpy(),
                   "attention": outputs["attention"].numpy()}
            for name, outputs in calls.items()}


def run_concurrently(function, batches):
    """Runs function(batch) for every batch on 8 threads, all released at the same moment."""
    start = threading.Event()

    def job(batch):
        start.wait()
        return function(batch)

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(job, batch) for batch in batches]
        start.set()
        return [future.result(timeout=300) for future in futures]


def assert_same(parallel, serial):
    for got, expected in zip(parallel, serial):
        for name in expected:
            assert got[name]["text"] == expected[name]["text"], name
            np.testing.assert_array_equal(got[name]["score"], expected[name]["score"])
            np.testing.assert_array_equal(got[name]["attention"], expected[name]["attention"])


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
@pytest.mark.parametrize("fresh", [True, False], ids=["first-calls-at-once", "traced"])
def test_translator_shared_by_8_threads(any_dates_model, fresh):
    model = any_dates_model[0]
    # A translator never called before makes the threads race to trace its functions too.
    translator = model.translator(max_length=11 if fresh else None)
    jobs = BATCHES
    if fresh:
        parallel = run_concurrently(lambda batch: decode_all(translator, batch), jobs)
        serial = [decode_all(translator, batch) for batch in jobs]
    else:
        # Traced by serial calls first, so the threads share functions that are traced.
        serial = [decode_all(translator, batch) for batch in jobs]
        parallel = run_concurrently(lambda batch: decode_all(translator, batch), jobs)
    assert_same(parallel, serial)


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_loaded_savedmodel_shared_by_8_threads(any_dates_export):
    loaded = translator_lib.load(any_dates_export)
    jobs = BATCHES
    parallel = run_concurrently(lambda batch: decode_all(loaded, batch, signatures=True), jobs)
    serial = [decode_all(loaded, batch, signatures=True) for batch in jobs]
    assert_same(parallel, serial)
