"""A Transformer converted to CTranslate2 decodes and scores as the TensorFlow model does."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import cli, ctranslate2_export
from keras_s2s.config import ModelConfig
from keras_s2s.model import Seq2Seq
from keras_s2s.restore import load_model_from_saved_model

ctranslate2 = pytest.importorskip("ctranslate2")


def pieces(text_processor, texts):
    """Raw strings -> each one's tokens, clipped as the model clips them ([END] left out)."""
    rows = text_processor.tokenize(tf.constant(texts)).to_list()
    return [[token.decode("utf-8") for token in row] for row in rows]


def ctranslate2_greedy(directory, model, source_pieces):
    translator = ctranslate2.Translator(str(directory), intra_threads=1)
    results = translator.translate_batch(
        source_pieces, beam_size=1, max_decoding_length=model.model_config.max_target_length,
        min_decoding_length=0, max_input_length=0, return_scores=True)
    return translator, [result.hypotheses[0] for result in results]


def test_converted_model_gives_the_same_greedy_outputs_and_scores(transformer_dates_model, tmp_path):
    model, _, test_pairs = transformer_dates_model
    sources = [source for source, _ in test_pairs[:64]]
    directory = ctranslate2_export.convert_model(model, str(tmp_path / "ct2"))
    source_pieces = pieces(model.source_text, sources)
    translator, outputs = ctranslate2_greedy(directory, model, source_pieces)
    ours = model.translator().greedy(tf.constant(sources))
    ours_text = [text.decode("utf-8") for text in ours["text"].numpy()]
    theirs_text = [text.decode("utf-8")
                   for text in model.target_text.tokenizer.join(tf.ragged.constant(outputs)).numpy()]
    assert theirs_text == ours_text
    # Both engines give each output the same log-probability ([END] included).
    scored = translator.score_batch(source_pieces, outputs)
    theirs_scores = [sum(result.log_probs) for result in scored]
    np.testing.assert_allclose(theirs_scores, ours["score"].numpy(), atol=1e-3, rtol=1e-4)


def _random_transformer(**changes):
    """An untrained Transformer whose every weight (norms and biases too) is random, so that
    a weight put in the wrong place changes the scores."""
    config = ModelConfig(source_tokenizer="char", target_tokenizer="char", max_source_length=12,
                         max_target_length=10, architecture="transformer", units=16,
                         num_layers=2, num_heads=4, ff_units=32, **changes)
    pairs = [("abc def", "xyz"), ("fed cba", "zyx yy"), ("aa bb", "x")]
    keras.utils.set_random_seed(1)
    model = Seq2Seq.from_pairs(pairs, config)
    for variable in model.weights:
        variable.assign(np.random.default_rng(len(variable.path)).normal(
            0, 0.5, variable.shape).astype("float32"))
    return model, pairs


@pytest.mark.parametrize("changes", [
    {"norm_first": True},
    {"norm_first": False, "positional": "learned"},
    {"norm_first": True, "share_embeddings": True},
    # Marian's options, as an imported OPUS-MT model has them (keras_s2s.pretrained).
    {"norm_first": False, "share_embeddings": True, "ff_activation": "swish", "output_bias": True,
     "decoder_start": "zeros", "positional": "stored"},
    {"norm_first": True, "share_embeddings": True, "ff_activation": "gelu-sigmoid",
     "output_bias": True, "decoder_start": "zeros"},
    {"ff_activation": "gelu"},
], ids=["pre-norm", "post-norm-learned", "shared-tied", "marian-post-norm-swish",
        "marian-pre-norm-gelu-sigmoid", "gelu"])
def test_every_weight_lands_in_its_place(changes, tmp_path):
    model, pairs = _random_transformer(**changes)
    directory = ctranslate2_export.convert_model(model, str(tmp_path / "ct2"))
    source_pieces = pieces(model.source_text, [source for source, _ in pairs])
    target_pieces = pieces(model.target_text, [target for _, target in pairs])
    scored = ctranslate2.Translator(directory).score_batch(source_pieces, target_pieces)
    np.testing.assert_allclose([sum(result.log_probs) for result in scored],
                               ctranslate2_export.log_probabilities(model, source_pieces, target_pieces),
                               atol=1e-3, rtol=1e-4)


def test_scoring_pieces_longer_than_the_model_takes_is_refused():
    model, _ = _random_transformer()  # max_source_length 12, max_target_length 10
    with pytest.raises(ValueError, match=r"A source of 12 tokens is longer than the model takes \(11"):
        ctranslate2_export.token_log_probabilities(model, [["a"] * 12], [["x"]])
    with pytest.raises(ValueError, match=r"A target of 11 tokens is longer than the model takes \(10"):
        ctranslate2_export.log_probabilities(model, [["a"]], [["x"] * 11])


def test_a_saved_model_converts_alone(transformer_dates_model, transformer_dates_export, tmp_path):
    from_model = ctranslate2_export.convert_model(transformer_dates_model[0], str(tmp_path / "a"))
    from_export = ctranslate2_export.convert_saved_model(transformer_dates_export, str(tmp_path / "b"))
    for name in ("model.bin", "keras_s2s_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert from_model != from_export


def test_the_command_converts_a_saved_model(transformer_dates_export, tmp_path, capsys):
    output = tmp_path / "ct2"
    assert cli.main(["export", "--format", "ctranslate2", "--from-saved-model",
                     transformer_dates_export, "--output", str(output)]) == 0
    assert f"Exported {output}" in capsys.readouterr().out
    assert {"model.bin", "config.json", "keras_s2s_config.json"} <= {p.name for p in output.iterdir()}


def test_the_restored_model_translates_as_the_export(transformer_dates_model, transformer_dates_export):
    model = load_model_from_saved_model(transformer_dates_export)
    sources = [source for source, _ in transformer_dates_model[2][:8]]
    assert model.translate(sources) == transformer_dates_model[0].translate(sources)


def test_what_ctranslate2_cannot_express_is_refused(tmp_path):
    rnn = Seq2Seq.from_pairs([("ab", "cd")], ModelConfig(source_tokenizer="char",
                                                         target_tokenizer="char", units=8,
                                                         embedding_dim=8, attention_units=8))
    with pytest.raises(ValueError, match="architecture='rnn'"):
        ctranslate2_export.convert_model(rnn, str(tmp_path / "rnn"))
    model, _ = _random_transformer()
    model.decoder.layers_in_order[0].cross_attention_norm.epsilon = 1e-3
    with pytest.raises(ValueError, match="epsilon"):
        ctranslate2_export.convert_model(model, str(tmp_path / "epsilon"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        ctranslate2_export.convert_model(model, str(tmp_path / "full"))


def test_a_missing_extra_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # what `import` sees without it
    with pytest.raises(ImportError, match=r"pip install 'keras_s2s\[ctranslate2\]'"):
        ctranslate2_export.import_ctranslate2()
    assert cli.main(["export", "--format", "ctranslate2", "--from-saved-model", str(tmp_path),
                     "--output", str(tmp_path / "out")]) == 2
    assert "keras_s2s[ctranslate2]" in capsys.readouterr().err


@pytest.mark.subprocess  # the benchmark script, and its child process per thread count and compute type
def test_the_comparison_benchmark_reports_agreement_bleu_and_time_ratios(
        transformer_dates_model, transformer_dates_export, tmp_path):
    import json
    import subprocess
    from pathlib import Path

    from .helpers import ENV

    pairs = transformer_dates_model[2][:16]
    source, reference = tmp_path / "source.txt", tmp_path / "reference.txt"
    source.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    reference.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "ctranslate2_compare.py", "--model", transformer_dates_export,
         "--source", str(source), "--reference", str(reference), "--output", str(report_path),
         "--sentences", "16", "--batch-1-sentences", "2", "--threads", "1", "--rounds", "1",
         "--warmup-batches", "1"],
        cwd=Path(__file__).resolve().parents[1] / "benchmarks", capture_output=True, text=True,
        env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["identical_greedy"] == 1.0 and report["identical_pieces"] == 1.0
    assert report["bleu"]["keras_s2s"] == report["bleu"]["ctranslate2 float32"]
    assert len(report["time_ratio"]) == 8  # greedy and beam 4, batch 1 and 64, float32 and int8
    assert all(ratio > 0 for ratio in report["time_ratio"].values())
