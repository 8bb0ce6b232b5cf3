import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s.marian_files import read_marian, read_vocabulary_yaml
from keras_s2s.pretrained import NEVER_PREDICTED, load_marian
from keras_s2s.text import END_ID, PAD_ID, START_ID, UNK_ID
from tests.marian_models import (MAX_LENGTH, SOURCE_SENTENCES, agreement_with_ctranslate2,
                                 source_pieces, write_hugging_face_mirror, write_marian_model)

ctranslate2 = pytest.importorskip("ctranslate2")


# OPUS-MT's layout (post-norm, swish) and the other extreme run by default; the rest are slow.
@pytest.mark.parametrize("pre_norm, activation", [
    (False, "swish"), (True, "gelu"),
    *(pytest.param(*variant, marks=pytest.mark.slow)
      for variant in ((False, "relu"), (False, "gelu"), (True, "swish"), (True, "relu")))])
def test_the_import_translates_as_ctranslate2s_own_conversion(pre_norm, activation, tmp_path):
    directory = str(tmp_path / "marian")
    write_marian_model(directory, pre_norm=pre_norm, activation=activation)
    ours, theirs, our_scores, their_scores = agreement_with_ctranslate2(
        directory, tmp_path, list(SOURCE_SENTENCES[:12]))
    assert ours == theirs
    np.testing.assert_allclose(our_scores, their_scores, atol=1e-4, rtol=0)


def test_both_layouts_import_the_same_model(tmp_path):
    write_marian_model(str(tmp_path / "marian"), activation="relu")
    write_hugging_face_mirror(str(tmp_path / "marian"), str(tmp_path / "hugging-face"))
    assert read_marian(str(tmp_path / "hugging-face")).layout == "hugging-face"
    from_marian = load_marian(str(tmp_path / "marian"), max_length=20)
    from_mirror = load_marian(str(tmp_path / "hugging-face"), max_length=20)
    assert from_marian.model_config == from_mirror.model_config
    assert from_marian.source_text.vocabulary == from_mirror.source_text.vocabulary
    for ours, theirs in zip(from_marian.weights, from_mirror.weights, strict=True):
        path = ours.path.split("/", 1)[1]  # without the model's own name
        assert path == theirs.path.split("/", 1)[1]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=path)


def test_the_special_tokens_take_this_packages_ids(tmp_path):
    directory = str(tmp_path / "marian")
    _, weights, pieces = write_marian_model(directory)
    model = load_marian(directory, max_length=20)
    tokens = model.target_text.vocabulary.tokens
    assert tokens[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"] and len(tokens) == len(pieces) + 2
    embeddings = model.encoder.embedding.embeddings.numpy()
    np.testing.assert_array_equal(embeddings[END_ID], weights["Wemb"][pieces.index("</s>")])
    np.testing.assert_array_equal(embeddings[UNK_ID], weights["Wemb"][pieces.index("<unk>")])
    piece = pieces[7]
    np.testing.assert_array_equal(embeddings[tokens.index(piece)], weights["Wemb"][7])
    assert not embeddings[[PAD_ID, START_ID]].any()
    bias = model.decoder.logits_bias.numpy()
    assert bias[PAD_ID] == bias[START_ID] == NEVER_PREDICTED
    # The decoder starts from a zero vector, whatever [START]'s row holds.
    sentences = tf.constant(list(SOURCE_SENTENCES[:3]))
    before = model.translator().greedy(sentences)["score"].numpy()
    model.encoder.embedding.embedding.embeddings[START_ID].assign(np.ones(16, np.float32))
    np.testing.assert_array_equal(model.translator().greedy(sentences)["score"].numpy(), before)


def test_vocabulary_pieces_that_yaml_would_read_as_other_types_stay_pieces(tmp_path):
    import yaml

    pieces = ["</s>", "<unk>", "no", "on", "null", "~", "yes", "1", "'", '"', "▁true", ":", "#"]
    path = tmp_path / "vocab.yml"
    path.write_text(yaml.safe_dump({piece: index for index, piece in enumerate(pieces)},
                                   allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert read_vocabulary_yaml(str(path)) == pieces
    path.write_text("</s>: 0\n<unk>: 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not number its 2 pieces 0..1 once each"):
        read_vocabulary_yaml(str(path))


@pytest.mark.parametrize("changes, message", [
    ({"type": "s2s"}, "type='s2s': only Transformers are imported"),
    ({"dec-depth": 1}, "dec-depth=1: the decoder must have as many layers as the encoder"),
    ({"transformer-ffn-activation": "tanh"}, "transformer-ffn-activation='tanh'"),
    ({"transformer-postprocess-emb": "nd"}, "transformer-postprocess-emb='nd'"),
    ({"tied-embeddings-all": False}, "tied-embeddings-all=False"),
    ({"transformer-decoder-autoreg": "average-attention"}, "transformer-decoder-autoreg"),
    ({"transformer-tied-layers": [1, 1]}, "transformer-tied-layers"),
    ({"factors-combine": "concat"}, "factors-combine='concat': factored vocabularies"),
])
def test_what_cannot_be_expressed_is_refused_by_name(changes, message, tmp_path):
    directory = tmp_path / "marian"
    write_marian_model(str(directory), **changes)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_marian(str(directory))


def test_damaged_files_are_named(tmp_path):
    directory = tmp_path / "marian"
    write_marian_model(str(directory))
    mirror = tmp_path / "hugging-face"
    write_hugging_face_mirror(str(directory), str(mirror))
    model_file = directory / "model.npz"
    model_file.write_bytes(model_file.read_bytes()[:5000])  # a download cut short
    with pytest.raises(ValueError, match=r"model.npz is not a readable .npz \(damaged or truncated"):
        load_marian(str(directory))
    (directory / "model.npz").unlink()
    with pytest.raises(ValueError, match="model.npz is missing"):
        load_marian(str(directory))
    (directory / "target.spm").unlink()
    with pytest.raises(ValueError, match="target.spm is missing"):
        load_marian(str(directory))
    safetensors = mirror / "model.safetensors"
    safetensors.write_bytes(safetensors.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"model.safetensors cannot be read \(damaged or truncated"):
        load_marian(str(mirror))
    safetensors.rename(mirror / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"there is only pytorch_model.bin"):
        load_marian(str(mirror))
    with pytest.raises(ValueError, match="is not a directory"):
        load_marian(str(tmp_path / "nowhere"))


@pytest.mark.slow  # an export of four signatures, and two conversions
def test_import_exports_a_saved_model_and_converts_back_to_ctranslate2(tmp_path, capsys):
    from keras_s2s import cli
    from keras_s2s.training import load_trained_model

    directory = str(tmp_path / "marian")
    write_marian_model(directory)
    export, run = tmp_path / "export", tmp_path / "run"
    assert cli.main(["import", "--marian", directory, "--output", str(export),
                     "--checkpoint-dir", str(run), "--max-length", "24"]) == 0
    assert f"Exported {export}" in capsys.readouterr().out
    model = load_trained_model(str(run))
    sentences = list(SOURCE_SENTENCES[:6]) + ["", "완전히 새로운 글자: ☃"]
    exported = tf.saved_model.load(str(export))
    assert set(exported.signatures) == {"serving_default", "greedy", "beam", "sample"}
    np.testing.assert_array_equal(exported.greedy(text=tf.constant(sentences))["text"],
                                  model.translator().greedy(tf.constant(sentences))["text"])
    # Back to CTranslate2 from the run: the same greedy pieces as CTranslate2's own conversion.
    assert cli.main(["export", "--format", "ctranslate2", "--checkpoint-dir", str(run),
                     "--output", str(tmp_path / "back")]) == 0
    ctranslate2.converters.MarianConverter(os.path.join(directory, "model.npz"),
                                           [os.path.join(directory, "vocab.yml")]).convert(
        str(tmp_path / "direct"))
    pieces = source_pieces(directory, sentences[:6])
    back, direct = ([result.hypotheses[0] for result in ctranslate2.Translator(
        str(tmp_path / name)).translate_batch(pieces, beam_size=1, max_decoding_length=MAX_LENGTH)]
        for name in ("back", "direct"))
    assert back == direct
    assert cli.main(["import", "--marian", directory]) == 2
    assert "Give --output, --checkpoint-dir or both" in capsys.readouterr().err


@pytest.mark.slow  # two short fine-tuning runs
def test_fine_tuning_lowers_the_loss_and_keeps_the_vocabulary(tmp_path, capsys):
    from keras_s2s import cli, tasks
    from keras_s2s.training import load_trained_model

    directory = str(tmp_path / "marian")
    write_marian_model(directory)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{source}\t{target}\n" for source, target
                             in tasks.generate_pairs("toy-ko", 300, seed=11)), encoding="utf-8")
    common = ["train", "--pairs", str(pairs), "--from-pretrained", directory, "--epochs", "3",
              "--learning-rate", "1e-3"]
    for name, extra in (("all", ["--export", str(tmp_path / "export")]),
                        ("decoder", ["--freeze-encoder"])):
        assert cli.main([*common, "--checkpoint-dir", str(tmp_path / name), *extra]) == 0
    sentences = tf.constant(list(SOURCE_SENTENCES[:5]))
    exported = tf.saved_model.load(str(tmp_path / "export"))  # kept: it owns the variables
    np.testing.assert_array_equal(
        exported.greedy(text=sentences)["text"],
        load_trained_model(str(tmp_path / "all")).translator().greedy(sentences)["text"])
    imported = load_marian(directory)
    for name in ("all", "decoder"):
        history = json.loads((tmp_path / name / "history.json").read_text())
        assert history[-1]["val_loss"] < history[0]["val_loss"]
        tuned = load_trained_model(str(tmp_path / name))
        assert tuned.source_text.vocabulary == imported.source_text.vocabulary
        assert tuned.target_text.vocabulary == imported.target_text.vocabulary
    frozen = load_trained_model(str(tmp_path / "decoder"))
    for ours, theirs in zip(frozen.encoder.layers_in_order[0].weights,
                            imported.encoder.layers_in_order[0].weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.slow  # two epochs of fit
def test_fit_continues_training_an_imported_model(tmp_path):
    import keras

    from keras_s2s import tasks
    from keras_s2s.data import make_dataset

    directory = str(tmp_path / "marian")
    write_marian_model(directory)
    model = load_marian(directory, max_length=32)
    dataset = make_dataset(tasks.generate_pairs("toy-ko", 256, seed=5), model, batch_size=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), label_smoothing=0.1)
    before = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    model.fit(dataset, epochs=2, verbose=0)
    assert model.evaluate(dataset, verbose=0, return_dict=True)["loss"] < before
