"""The exported SavedModel: contract, fresh-process reload, session loader, bad input, Korean."""

import json
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import serving
from keras_s2s import translator as translator_lib
from tests.helpers import DATES, ENV


SENTENCES = DATES


def test_signature_contract(any_dates_export):
    loaded = translator_lib.load(any_dates_export)
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["text"]
    outputs = serving(text=tf.constant(SENTENCES))
    expected = {"text": tf.string, "score": tf.float32, "length": tf.int32,
                "attention": tf.float32, "source_tokens": tf.string, "target_tokens": tf.string}
    assert {key: value.dtype for key, value in outputs.items()} == expected
    assert all(value.shape[0] == len(SENTENCES) for value in outputs.values())  # batch first
    batch, steps, source_length = outputs["attention"].shape
    assert outputs["target_tokens"].shape == (batch, steps)
    assert outputs["source_tokens"].shape == (batch, source_length)
    assert sorted(os.listdir(os.path.join(any_dates_export, "assets"))) == [
        "config.json", "source_vocab.txt", "target_vocab.txt"]


@pytest.mark.subprocess
def test_fresh_process_with_only_tensorflow_gives_the_same_translations(any_dates_model, any_dates_export):
    model = any_dates_model[0]
    before = model.translator().translate(tf.constant(SENTENCES))
    script = (
        "import json, sys\n"
        "import tensorflow as tf, tensorflow_text\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "text = tf.constant(json.loads(sys.argv[2]))\n"
        "out = loaded.signatures['serving_default'](text=text)\n"
        "beam = loaded.signatures['beam'](text=text, beam_size=tf.constant(3))\n"
        "greedy = loaded.signatures['greedy'](text=text)\n"
        "sample = loaded.signatures['sample'](text=text, temperature=tf.constant(1.0),"
        " top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(7, tf.int64))\n"
        "decode = lambda t: [x.decode() for x in t.numpy().reshape(-1)]\n"
        "print(json.dumps({'text': decode(out['text']), 'score': out['score'].numpy().tolist(),"
        " 'attention': out['attention'].numpy().tolist(), 'nbest': decode(beam['nbest']),"
        " 'greedy': decode(greedy['text']), 'sample': decode(sample['text'])}))\n"
        "assert 'keras_s2s' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", script, any_dates_export, json.dumps(SENTENCES)],
                            capture_output=True, text=True, env=ENV, cwd="/", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    after = json.loads(result.stdout.strip().splitlines()[-1])
    assert after["text"] == [text.decode() for text in before["text"].numpy()]
    np.testing.assert_allclose(after["score"], before["score"].numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(after["attention"], before["attention"].numpy(), atol=1e-5)
    translator = model.translator()
    beam = translator.beam(tf.constant(SENTENCES), tf.constant(3))["nbest"].numpy().reshape(-1)
    assert after["nbest"] == [text.decode() for text in beam]
    assert after["greedy"] == after["text"]  # the dates preset decodes greedily by default
    sample = translator.sample(tf.constant(SENTENCES), tf.constant(1.0), tf.constant(0),
                               tf.constant(1.0), tf.constant(7, tf.int64))["text"].numpy()
    assert after["sample"] == [text.decode() for text in sample]


def run_with_session_loader(export, signature, text):
    """`saved_model_cli run` on one text (or a list of texts) in a fresh process: the
    session-based loader that TensorFlow Serving uses. Returns the finished process."""
    return serving.saved_model_cli_run(export, signature, text, check=False)


@pytest.mark.subprocess
def test_session_based_loader_runs_the_export(any_dates_model, any_dates_export):
    # It fails with "Could not find variable" when an export does not track its Keras variables.
    result = run_with_session_loader(any_dates_export, "serving_default", "March 3, 2021")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = any_dates_model[0].translate(["March 3, 2021"])[0]
    assert f"[b'{expected}']" in result.stdout


HOSTILE = ["", "   ", "\t\n", "x" * 10000, "🙂🙃 ✨", "مرحبا بالعالم", "Ωμέγα 3 März 2021",
           "\x00\x01\x7f", "March 3, 2021" * 200]


def test_hostile_input_gives_defined_bounded_output(any_dates_model):
    translator = any_dates_model[0].translator()
    outputs = translator.translate(tf.constant(HOSTILE))
    assert outputs["text"].shape == (len(HOSTILE),)
    assert np.all(outputs["length"].numpy() <= translator.max_length)
    assert np.all(np.isfinite(outputs["score"].numpy()))
    # Long input is clipped to the model's maximum source length ([END] included).
    assert outputs["source_tokens"].shape[1] <= any_dates_model[0].model_config.max_source_length
    invalid_utf8 = translator.translate(tf.constant([b"March \xff\xfe 3, 2021", b"\xc3"]))
    assert invalid_utf8["text"].shape == (2,)
    again = translator.translate(tf.constant(HOSTILE))
    assert again["text"].numpy().tolist() == outputs["text"].numpy().tolist()  # deterministic


def test_empty_batch(any_dates_model):
    outputs = any_dates_model[0].translator().translate(tf.constant([], tf.string))
    assert outputs["text"].shape == (0,) and outputs["attention"].shape[0] == 0


def test_batch_and_single_translations_agree(any_dates_model):
    model, _, test_pairs = any_dates_model
    sources = [source for source, _ in test_pairs[:40]]
    assert model.translate(sources) == [model.translate([source])[0] for source in sources]


def test_max_length_bounds_the_output(any_dates_model):
    outputs = any_dates_model[0].translator(max_length=4).translate(tf.constant(SENTENCES))
    assert outputs["attention"].shape[1] <= 4
    assert all(length <= 4 for length in outputs["length"].numpy())  # tokens, [END] included
    if any_dates_model[0].model_config.target_tokenizer == "char":  # a token is a character
        assert all(len(text) <= 4 for text in outputs["text"].numpy())


def test_korean_output_is_composed_hangul(korean_model):
    model, _, test_pairs = korean_model
    sources = [source for source, _ in test_pairs[:50]]
    translations = model.translate(sources + ["I eat an apple"])
    assert translations[-1] == "나는 사과를 먹는다"
    for text in translations:
        assert text and unicodedata.is_normalized("NFC", text)
        assert all("\uac00" <= character <= "\ud7a3" or character == " " for character in text), text
    references = [target for _, target in test_pairs[:50]]
    assert sum(t == r for t, r in zip(translations, references)) >= 45


def test_export_stores_each_weight_once_and_no_optimizer_state(any_dates_model, any_dates_export):
    variables_dir = os.path.join(any_dates_export, "variables")
    stored = sum(os.path.getsize(os.path.join(variables_dir, name)) for name in os.listdir(variables_dir))
    parameter_bytes = 4 * any_dates_model[0].count_params()
    assert parameter_bytes <= stored < 1.1 * parameter_bytes
    names = [name for name, _ in tf.train.list_variables(os.path.join(variables_dir, "variables"))]
    assert not any("optimizer" in name for name in names)


@pytest.mark.subprocess
def test_saved_model_cli_lists_every_signature_with_named_typed_inputs(any_dates_export):
    result = serving.saved_model_cli("show", "--all", "--dir", any_dates_export, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = result.stdout
    for name in translator_lib.SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in shown
    assert "inputs['beam_size'] tensor_info:\n        dtype: DT_INT32\n        shape: ()" in shown
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in shown
    assert "outputs['nbest'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, -1)" in shown
    assert "output_0" not in shown


def test_beam_signature_gives_sorted_nbest_and_beam_one_equals_greedy(any_dates_model):
    translator = any_dates_model[0].translator()
    texts = tf.constant(SENTENCES)
    greedy = translator.greedy(texts)
    one = translator.beam(texts, tf.constant(1))
    assert one["text"].numpy().tolist() == greedy["text"].numpy().tolist()
    four = translator.beam(texts, tf.constant(4))
    assert four["nbest"].shape == (len(SENTENCES), 4) and four["nbest_scores"].shape == (len(SENTENCES), 4)
    assert np.all(np.diff(four["nbest_scores"].numpy(), axis=1) <= 1e-6)
    assert four["text"].numpy().tolist() == four["nbest"].numpy()[:, 0].tolist()
    assert len(set(four["nbest"].numpy()[0].tolist())) == 4  # distinct hypotheses
    assert four["attention"].shape[0] == len(SENTENCES)


def test_sample_signature_is_seeded_per_text(any_dates_model):
    translator = any_dates_model[0].translator()

    def draw(texts, seed, temperature=3.0):
        return translator.sample(tf.constant(texts), tf.constant(temperature), tf.constant(0),
                                 tf.constant(1.0), tf.constant(seed, tf.int64))["text"].numpy().tolist()

    texts = SENTENCES * 4
    assert draw(texts, 1) == draw(texts, 1)
    assert draw(texts, 1) != draw(texts, 2)
    assert draw(texts[:1], 1)[0] == draw(texts, 1)[0] == draw(texts[::-1], 1)[-1]
    assert draw(texts, 1, temperature=0.0) == translator.greedy(tf.constant(texts))["text"].numpy().tolist()


def test_next_version_path_never_reuses_a_version(tmp_path):
    assert translator_lib.next_version_path(str(tmp_path), "dates") == str(tmp_path / "dates" / "1")
    for version in ("1", "2", "10", "notes"):
        (tmp_path / "dates" / version).mkdir(parents=True)
    assert translator_lib.next_version_path(str(tmp_path), "dates") == str(tmp_path / "dates" / "11")
    with pytest.raises(ValueError, match="name"):
        translator_lib.next_version_path(str(tmp_path), "../escape")


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_bfloat16_projection_export_is_smaller_and_translates_alike(rnn_dates_model, rnn_dates_export,
                                                                   tmp_path):
    # An option of the RNN decoder's projection (test_transformer_model: a Transformer refuses it).
    model, plain_export = rnn_dates_model[0], rnn_dates_export
    path = model.export(str(tmp_path / "bf16" / "1"), projection_dtype="bfloat16")
    exact, fast = translator_lib.load(plain_export), translator_lib.load(path)
    texts = tf.constant(SENTENCES)
    for name in ("greedy", "translate"):
        exact_out, fast_out = getattr(exact, name)(texts), getattr(fast, name)(texts)
        assert fast_out["text"].numpy().tolist() == exact_out["text"].numpy().tolist()
        # bfloat16 keeps 8 bits of mantissa: log-probabilities move, a little.
        np.testing.assert_allclose(fast_out["score"], exact_out["score"], atol=0.05)
        assert not np.array_equal(fast_out["score"], exact_out["score"])  # it is not the float32 path
    variables_bytes = {directory: sum(os.path.getsize(os.path.join(directory, "variables", name))
                                      for name in os.listdir(os.path.join(directory, "variables")))
                       for directory in (plain_export, path)}
    projection = model.decoder.output_projection.kernel
    saved = variables_bytes[plain_export] - variables_bytes[path]
    assert abs(saved - 2 * int(np.prod(projection.shape))) < 1024  # W_s: 4 -> 2 bytes a weight
    with pytest.raises(ValueError, match="projection_dtype"):
        translator_lib.Translator(model, projection_dtype="float16")


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_same_weights_give_the_same_variables_file_whatever_the_graph(any_dates_model, any_dates_export,
                                                                     tmp_path):
    # Stored in name order, not in the order the graph happened to capture them ...
    names = [variable.name for variable in translator_lib.load(any_dates_export).serving_variables]
    assert names == sorted(names)
    # ... so another graph (here another max_length) over the same weights stores the same bytes.
    other = any_dates_model[0].export(str(tmp_path / "other" / "1"), max_length=7)
    for name in os.listdir(os.path.join(any_dates_export, "variables")):
        with open(os.path.join(any_dates_export, "variables", name), "rb") as first, \
                open(os.path.join(other, "variables", name), "rb") as second:
            assert first.read() == second.read(), name


def test_forced_attention_on_its_own_translation_is_the_searchs_attention(any_dates_export):
    loaded = translator_lib.load(any_dates_export)
    texts = tf.constant(SENTENCES[:3])
    outputs = loaded.beam(texts, tf.constant(2))
    forced = loaded.forced_attention(texts, outputs["text"])  # not a signature: a function
    assert "forced_attention" not in loaded.signatures
    config = json.load(open(os.path.join(any_dates_export, "assets", "config.json")))["model"]
    # Characters cut a text one way only; SentencePiece may cut the search's output text into
    # other pieces than the search chose, and forced attention then follows those.
    if config["target_tokenizer"] == "char":
        # Either may have more padding columns than the other.
        steps = min(outputs["attention"].shape[1], forced["attention"].shape[1])
        for padded in (outputs, forced):
            assert not padded["target_tokens"].numpy()[:, steps:].any()
        assert forced["target_tokens"].numpy()[:, :steps].tolist() == \
            outputs["target_tokens"].numpy()[:, :steps].tolist()
        np.testing.assert_allclose(forced["attention"].numpy()[:, :steps],
                                   outputs["attention"].numpy()[:, :steps], atol=1e-5)
    batch, layers, heads, length, source_length = forced["heads"].shape
    assert (batch, length, source_length) == (3, forced["target_tokens"].shape[1],
                                              outputs["attention"].shape[2])
    if config["architecture"] == "transformer":
        assert (layers, heads) == (config["num_layers"], config["num_heads"])
    else:
        assert (layers, heads) == (1, 1)
    # Any target, a reference translation or nothing: the rows after its [END] are zeros.
    forced = loaded.forced_attention(tf.constant(SENTENCES[:2]), tf.constant(["2021-03-03", ""]))
    weights = forced["heads"].numpy()  # (batch, layers, heads, t, s)
    empty_row = forced["target_tokens"].numpy()[1].tolist()
    assert empty_row[0] == b"[END]" and not any(empty_row[1:])
    assert np.all(weights[1, :, :, 1:] == 0)
    np.testing.assert_allclose(weights[:, :, :, 0].sum(axis=-1), 1.0, atol=1e-5)
