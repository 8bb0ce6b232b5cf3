"""Fuzzing the serving path: any batch of any bytes gives bounded, repeatable translations.

Hypothesis generates batches of hostile strings: empty, whitespace and control characters,
invalid UTF-8, 10,000-character strings, emoji sequences, mixed scripts and right-to-left
text, and batches of zero. For each, the in-process `Translator` and every signature of the
exported SavedModel must return without an exception, produce valid UTF-8 of at most
`max_length` tokens, and give the same output for the same input whatever else is in the
batch. The default run tries a few hundred batches; `pytest -m slow` tries over 10,000 strings.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_s2s import translator as translator_lib


SAMPLES = ["", " ", "\t\n\r\x0b\x0c", "\u00a0\u2003\u3000", "\u200b\u200e\u200f\u202e\ufeff",
           "\x00", "\x1b[31mred\x1b[0m", "March 3, 2021", "🙂", "👩🏽‍💻👨‍👩‍👧", "🇰🇷🇩🇪",
           "مرحبا ١٢ مارس ٢٠٢١", "שלום 3 במרץ", "Ωμέγα 3 März 2021 года", "2021年3月3日 수요일",
           "नमस्ते ३", "e\u0301\u0301\u0301", "\ufffd\ufffe\uffff", "𝔐𝔞𝔯𝔠𝔥 𝟑"]
SCRIPTS = st.sampled_from([
    (0x0000, 0x007F), (0x0080, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0590, 0x05FF),
    (0x0600, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1100, 0x11FF), (0x2000, 0x206F),
    (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xD7A3), (0xFE00, 0xFE0F), (0x1F300, 0x1FAFF),
    (0x1F1E6, 0x1F1FF), (0xE0000, 0xE007F), (0x10FFF0, 0x10FFFF)])


@st.composite
def mixed_scripts(draw):
    """Runs of characters from several scripts, combining marks and emoji blocks mixed."""
    runs = draw(st.lists(SCRIPTS.flatmap(lambda bounds: st.text(
        st.characters(min_codepoint=bounds[0], max_codepoint=bounds[1]), min_size=1, max_size=8)),
        max_size=5))
    return "".join(runs)


def as_bytes(text):
    return text.encode("utf-8", "surrogatepass")  # lone surrogates make invalid UTF-8 too


TEXTS = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(max_size=30),
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=12),
    mixed_scripts(),
    # Long inputs without a long draw: a short piece repeated to exactly 10,000 characters.
    st.builds(lambda piece: (piece * 10000)[:10000], st.text(min_size=1, max_size=4)),
).map(as_bytes) | st.binary(max_size=24) | st.builds(
    lambda head, junk, tail: as_bytes(head) + junk + as_bytes(tail),
    st.sampled_from(SAMPLES), st.binary(min_size=1, max_size=6), st.text(max_size=8))
BATCHES = st.lists(TEXTS, max_size=6)
BEAM_SIZES = st.integers(-3, 12)
TEMPERATURES = st.one_of(st.floats(width=32), st.sampled_from([0.0, -1.0, 1e-30, 1.0, 1e30]))
TOP_KS = st.one_of(st.integers(-5, 50), st.sampled_from([0, 2 ** 31 - 1, -2 ** 31]))
TOP_PS = st.one_of(st.floats(width=32), st.sampled_from([0.0, 1.0, -0.5, 2.0]))
SEEDS = st.integers(-2 ** 63, 2 ** 63 - 1)
SCALARS = st.tuples(BEAM_SIZES, TEMPERATURES, TOP_KS, TOP_PS, SEEDS)
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Checker:
    """Calls one decoding on a batch and checks its outputs; remembers every row it saw."""

    def __init__(self, max_length):
        self.max_length = max_length
        self.seen = {}
        self.strings = 0

    def __call__(self, name, function, texts, *scalars):
        batch = tf.constant(texts, tf.string, shape=[len(texts)])
        outputs = function(batch, *scalars)
        self.strings += len(texts)
        decoded = [text.decode("utf-8") for text in outputs["text"].numpy()]  # valid UTF-8
        assert len(decoded) == len(texts)
        assert all(value.shape[0] == len(texts) for value in outputs.values())  # batch first
        lengths = outputs["length"].numpy()
        assert np.all((lengths >= 1) & (lengths <= self.max_length)) or not len(texts)
        assert outputs["attention"].shape[1] <= self.max_length
        assert outputs["target_tokens"].shape[1] <= self.max_length
        assert not np.any(np.isnan(outputs["score"].numpy()))
        if "nbest" in outputs:
            assert outputs["nbest"].shape == (len(texts), max(int(scalars[0]), 1))
        key_scalars = tuple(float(np.asarray(scalar)) for scalar in scalars)
        for text, translation, length in zip(texts, decoded, lengths):
            key = (name, key_scalars, text)
            # The same input gives the same output, whatever batch it came in.
            assert self.seen.setdefault(key, (translation, length)) == (translation, length), key
        return outputs


def in_batches_both_ways(check, name, function, texts, *scalars):
    check(name, function, texts, *scalars)
    check(name, function, texts[::-1], *scalars)  # another batch composition, same rows


@pytest.fixture(scope="module")
def loaded_export(any_dates_export):
    return translator_lib.load(any_dates_export)


def exported(loaded):
    """The SavedModel's four signatures, called as a server calls them: by input name."""
    signatures = loaded.signatures
    return {
        "serving_default": lambda text: signatures["serving_default"](text=text),
        "greedy": lambda text: signatures["greedy"](text=text),
        "beam": lambda text, beam_size: signatures["beam"](text=text, beam_size=beam_size),
        "sample": lambda text, temperature, top_k, top_p, seed: signatures["sample"](
            text=text, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed),
    }


def scalars_of(beam_size, temperature, top_k, top_p, seed):
    return ((tf.constant(beam_size, tf.int32),),
            (tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
             tf.constant(top_p, tf.float32), tf.constant(seed, tf.int64)))


def fuzz_translator(translator, check, texts, beam_size, temperature, top_k, top_p, seed):
    beam, sample = scalars_of(beam_size, temperature, top_k, top_p, seed)
    in_batches_both_ways(check, "translate", translator.translate, texts)
    check("beam", translator.beam, texts, *beam)
    check("sample", translator.sample, texts, *sample)


def fuzz_export(functions, check, texts, beam_size, temperature, top_k, top_p, seed):
    beam, sample = scalars_of(beam_size, temperature, top_k, top_p, seed)
    in_batches_both_ways(check, "serving_default", functions["serving_default"], texts)
    check("greedy", functions["greedy"], texts)
    check("beam", functions["beam"], texts, *beam)
    check("sample", functions["sample"], texts, *sample)


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_translator_survives_hostile_batches(any_dates_model):
    translator = any_dates_model[0].translator()
    check = Checker(translator.max_length)

    @FUZZ
    @given(BATCHES, SCALARS)
    def run(texts, scalars):
        fuzz_translator(translator, check, texts, *scalars)

    run()
    assert check.strings > 400


def test_word_tokenizer_survives_hostile_batches(korean_model):
    translator = korean_model[0].translator()
    check = Checker(translator.max_length)

    @settings(FUZZ, max_examples=60)
    @given(BATCHES)
    def run(texts):
        in_batches_both_ways(check, "translate", translator.translate, texts)

    run()


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_exported_signatures_survive_hostile_batches(loaded_export, any_dates_model):
    check = Checker(any_dates_model[0].translator().max_length)
    functions = exported(loaded_export)

    @settings(FUZZ, max_examples=80)
    @given(BATCHES, SCALARS)
    def run(texts, scalars):
        fuzz_export(functions, check, texts, *scalars)

    run()


def test_a_batch_of_zero_and_a_batch_of_one_long_string(loaded_export, any_dates_model):
    check = Checker(any_dates_model[0].translator().max_length)
    for functions, fuzz in ((exported(loaded_export), fuzz_export),
                            (any_dates_model[0].translator(), fuzz_translator)):
        for texts in ([], ["x" * 10000], [b"\xff" * 10000]):
            fuzz(functions, check, texts, 4, 1.0, 0, 1.0, 0)


@pytest.mark.slow
def test_ten_thousand_hostile_strings(loaded_export, any_dates_model):
    translator = any_dates_model[0].translator()
    functions = exported(loaded_export)
    in_process, exported_check = Checker(translator.max_length), Checker(translator.max_length)

    @settings(FUZZ, max_examples=170, derandomize=False)
    @given(st.lists(TEXTS, min_size=64, max_size=64), SCALARS)
    def run(texts, scalars):
        fuzz_translator(translator, in_process, texts, *scalars)
        fuzz_export(functions, exported_check, texts, *scalars)

    run()
    # Each string went through every decoding; count it once per decoding path.
    assert in_process.strings // 4 >= 10000 and exported_check.strings // 5 >= 10000
