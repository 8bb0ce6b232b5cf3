"""Pretrained word vectors: real files written by gensim, read back into real models."""

import dataclasses
import gzip
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

gensim = pytest.importorskip("gensim", reason="the [embeddings] extra is not installed")

from keras_s2s import tasks, word_vectors  # noqa: E402
from keras_s2s import translator as translator_lib  # noqa: E402
from keras_s2s.config import ModelConfig, TrainConfig, preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.text import SPECIAL_TOKENS, Tokenizer, Vocabulary  # noqa: E402
from keras_s2s.training import train  # noqa: E402
from keras_s2s.word2vec import learn_from_files, learn_word_vectors  # noqa: E402
from tests.helpers import keras_s2s  # noqa: E402

FORMATS = ("text.txt", "binary.bin", "fasttext.vec")


@pytest.fixture(scope="module")
def pairs():
    return tasks.load_task("toy-ko", 200, 10)[0]


@pytest.fixture(scope="module")
def vector_files(pairs, tmp_path_factory):
    """{format: path}: English vectors of the toy task's source side in each file format.

    word2vec text and binary from a skip-gram model; .vec from a fastText model, as fastText
    itself writes it (a word2vec text file of its whole-word vectors).
    """
    folder = tmp_path_factory.mktemp("vectors")
    sentences = [[token.decode() for token in line]
                 for line in Tokenizer("word").split(tf.constant([s for s, _ in pairs])).to_list()]
    skip_gram = gensim.models.Word2Vec(sentences, vector_size=12, min_count=1, sg=1, epochs=2,
                                       seed=0, workers=1)
    skip_gram.wv.save_word2vec_format(str(folder / "text.txt"))
    skip_gram.wv.save_word2vec_format(str(folder / "binary.bin"), binary=True)
    fasttext = gensim.models.FastText(sentences, vector_size=12, min_count=1, epochs=2, seed=0,
                                      workers=1)
    fasttext.wv.save_word2vec_format(str(folder / "fasttext.vec"))
    return {name: folder / name for name in FORMATS}


def tiny_config(**fields):
    """The toy-ko preset at 16 units and 8-wide embeddings: built in about a second."""
    model_config, _ = preset("toy-ko")
    return dataclasses.replace(model_config, units=16, embedding_dim=8, attention_units=8,
                               **fields)


def build(pairs, **fields):
    keras.utils.set_random_seed(0)
    return Seq2Seq.from_pairs(pairs, tiny_config(**fields))


def trains(model, variable):
    """Whether `variable` is among the model's trainable variables (by identity)."""
    return any(trainable is variable for trainable in model.trainable_variables)


def write_text(path, lines, encoding="utf-8"):
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path


# Reading the formats


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_reads_back_what_gensim_wrote(vector_files, name):
    vectors, duplicates, not_utf8 = word_vectors.read_vectors(str(vector_files[name]))
    source = "fasttext.vec" if name == "fasttext.vec" else "text.txt"
    expected = gensim.models.KeyedVectors.load_word2vec_format(str(vector_files[source]))
    assert (duplicates, not_utf8) == (0, 0)
    assert vectors.index_to_key == expected.index_to_key
    np.testing.assert_allclose(vectors.vectors, expected.vectors, atol=1e-5)


def test_gzipped_text_vectors_are_read(vector_files, tmp_path):
    packed = tmp_path / "text.txt.gz"
    packed.write_bytes(gzip.compress(vector_files["text.txt"].read_bytes()))
    assert len(word_vectors.read_vectors(str(packed))[0]) == len(
        word_vectors.read_vectors(str(vector_files["text.txt"]))[0])


# Aligning to a vocabulary


def test_sentencepiece_pieces_find_words_without_the_marker_and_lower_cased(tmp_path):
    path = write_text(tmp_path / "v.vec", ["3 2", "thank 1 0", "you 0 1", "s 1 1"])
    vectors, _, _ = word_vectors.read_vectors(str(path))
    tokens = list(SPECIAL_TOKENS) + ["▁Thank", "▁you", "s", "▁zzz"]
    ids, rows, by_rule, missing = word_vectors.align(vectors, tokens)
    assert ids.tolist() == [4, 5, 6]
    np.testing.assert_array_equal(rows, [[1, 0], [0, 1], [1, 1]])
    assert by_rule == {"exact": 1, "without ▁": 1, "lower-cased": 1}
    assert missing == ["▁zzz"]


def test_coverage_counts_the_vocabulary_entries_that_found_a_vector(pairs, vector_files):
    model = build(pairs, source_vectors=str(vector_files["text.txt"]))
    coverage = model.vector_coverage["source"]
    assert coverage.total == len(model.source_text.vocabulary) - len(SPECIAL_TOKENS)
    assert coverage.found == coverage.total  # the vectors were learned from these sentences
    assert "100.0 %" in coverage.summary()
    assert "target" not in model.vector_coverage


def test_rows_with_a_vector_take_its_direction_and_the_rest_keep_the_initialiser(pairs, tmp_path):
    vocabulary_model = build(pairs)
    tokens = vocabulary_model.source_text.vocabulary.tokens
    found = tokens[4:14]  # ten words with a vector; the others keep their random rows
    rng = np.random.default_rng(0)
    file_rows = rng.standard_normal((len(found), 8)).astype(np.float32) * 3
    write_text(tmp_path / "v.vec", [f"{len(found)} 8"] + [
        word + " " + " ".join(f"{value:.6f}" for value in row) for word, row in zip(found, file_rows)])
    model = build(pairs, source_vectors=str(tmp_path / "v.vec"))
    initial = vocabulary_model.encoder.embedding.embeddings.numpy()
    matrix = model.encoder.embedding.embeddings.numpy()
    np.testing.assert_array_equal(matrix[:4], initial[:4])  # special tokens
    np.testing.assert_array_equal(matrix[14:], initial[14:])  # no vector
    scale = matrix[4:14] / file_rows
    np.testing.assert_allclose(scale, scale[0, 0], rtol=1e-4)  # one factor for the whole matrix
    np.testing.assert_allclose(np.std(matrix[4:14]), np.std(initial), rtol=1e-4)


def test_vectors_of_another_width_are_projected(pairs, vector_files):
    rows = np.random.default_rng(1).standard_normal((30, 6)).astype(np.float32)
    wider = word_vectors.project(rows, 8)  # orthonormal rows: every dot product kept
    np.testing.assert_allclose(wider @ wider.T, rows @ rows.T, atol=1e-4)
    narrower = word_vectors.project(np.random.default_rng(2).standard_normal((30, 12)), 8)
    assert narrower.shape == (30, 8)
    model = build(pairs, source_vectors=str(vector_files["text.txt"]))  # 12 wide into 8
    assert model.encoder.embedding.embeddings.shape == (len(model.source_text.vocabulary), 8)


# Using them in models


def test_frozen_vectors_stay_fixed_through_training_checkpoints_and_keras_files(
        pairs, vector_files, tmp_path):
    model = build(pairs, source_vectors=str(vector_files["text.txt"]), freeze_vectors=True)
    frozen = model.encoder.embedding.embeddings
    assert not trains(model, frozen)
    assert trains(model, model.decoder.embedding.embeddings)  # no target file
    before = frozen.numpy()
    model.save_spec(tmp_path / "run", TrainConfig(epochs=1))
    train(model, make_dataset(pairs[:64], model, 32), TrainConfig(epochs=1),
          checkpoint_dir=str(tmp_path / "run"), verbose=0)
    np.testing.assert_array_equal(frozen.numpy(), before)
    resumed = Seq2Seq.from_spec(tmp_path / "run")
    assert not trains(resumed, resumed.encoder.embedding.embeddings)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert not trains(loaded, loaded.encoder.embedding.embeddings)
    np.testing.assert_array_equal(loaded.encoder.embedding.embeddings.numpy(), before)


def test_fine_tuned_vectors_train(pairs, vector_files):
    model = build(pairs, source_vectors=str(vector_files["binary.bin"]))
    assert trains(model, model.encoder.embedding.embeddings)


def test_transformer_with_one_shared_embedding_takes_one_file(pairs, vector_files):
    model = build(pairs, architecture="transformer", share_embeddings=True, num_heads=2,
                  ff_units=16, num_layers=1, source_vectors=str(vector_files["fasttext.vec"]),
                  freeze_vectors=True)
    assert list(model.vector_coverage) == ["shared"]
    assert model.encoder.embedding is model.decoder.embedding
    assert not trains(model, model.encoder.embedding.embeddings)
    # The English words of the shared vocabulary found a vector, the Korean ones did not.
    coverage = model.vector_coverage["shared"]
    assert 0 < coverage.found < coverage.total


@pytest.mark.slow  # an export: over 15 s on 2 cores
def test_export_carries_the_vectors_and_reads_no_file(pairs, vector_files, tmp_path):
    path = shutil.copy(vector_files["text.txt"], tmp_path / "vectors.txt")
    model = build(pairs, source_vectors=str(path))
    expected = model.translate([source for source, _ in pairs[:4]])
    exported = model.export(str(tmp_path / "export"))
    os.remove(path)
    translator = translator_lib.load(exported)
    outputs = translator.translate(tf.constant([source for source, _ in pairs[:4]]))
    assert [text.decode() for text in outputs["text"].numpy()] == expected


# Bad input


def test_a_missing_file_is_named(pairs, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build(pairs, source_vectors=str(tmp_path / "nowhere.vec"))


def test_a_file_in_none_of_the_formats_is_refused(tmp_path):
    path = write_text(tmp_path / "notes.txt", ["these are plain notes", "not vectors"])
    with pytest.raises(ValueError, match="not a word vector file.*first line"):
        word_vectors.read_vectors(str(path))


def test_a_dimension_that_differs_from_the_header_is_refused(tmp_path):
    path = write_text(tmp_path / "short.vec", ["2 3", "one 1 2 3", "two 1 2"])
    with pytest.raises(ValueError, match="header announces 2 words of 3 dimensions"):
        word_vectors.read_vectors(str(path))


def test_a_truncated_binary_file_is_refused(vector_files, tmp_path):
    data = vector_files["binary.bin"].read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="header announces"):
        word_vectors.read_vectors(str(tmp_path / "cut.bin"))


def test_words_that_are_not_utf8_are_counted_and_left_out(tmp_path):
    path = tmp_path / "latin1.vec"
    path.write_bytes(b"3 2\ncaf\xe9 1 0\nthe 0 1\nbig 1 1\n")
    vectors, _, not_utf8 = word_vectors.read_vectors(str(path))
    assert not_utf8 == 1 and sorted(vectors.index_to_key) == ["big", "the"]


def test_duplicate_words_are_counted_and_the_first_vector_kept(tmp_path):
    path = write_text(tmp_path / "twice.vec", ["3 2", "the 1 0", "big 0 1", "the 5 5"])
    vectors, duplicates, _ = word_vectors.read_vectors(str(path))
    assert duplicates == 1
    np.testing.assert_array_equal(vectors["the"], [1, 0])
    tokens = list(SPECIAL_TOKENS) + ["the", "big"]
    _, coverage = word_vectors.embedding_matrix(str(path), tokens, np.zeros((6, 2)) + 0.01)
    assert coverage.duplicates == 1 and "1 duplicate words ignored" in coverage.summary()


def test_vectors_with_no_word_of_the_vocabulary_are_an_error(pairs, tmp_path):
    path = write_text(tmp_path / "other.vec", ["2 2", "zebra 1 0", "quokka 0 1"])
    with pytest.raises(ValueError, match="No entry of the .*vocabulary has a vector in"):
        build(pairs, target_vectors=str(path))  # Korean target, English-only vectors


def test_config_refuses_freezing_nothing_and_two_files_for_one_embedding():
    with pytest.raises(ValueError, match="freeze_vectors=True needs"):
        ModelConfig(freeze_vectors=True)
    with pytest.raises(ValueError, match="one vector file"):
        ModelConfig(architecture="transformer", share_embeddings=True, source_vectors="a.vec",
                    target_vectors="b.vec")


def test_missing_gensim_names_the_extra(monkeypatch, tmp_path):
    path = write_text(tmp_path / "v.vec", ["1 2", "the 1 0"])
    monkeypatch.setitem(sys.modules, "gensim.models", None)  # what an absent package gives
    with pytest.raises(ImportError, match=r"keras_s2s\[embeddings\]"):
        word_vectors.read_vectors(str(path))


# Learning them


def test_learned_vectors_use_the_models_tokens(tmp_path):
    pairs_file = write_text(tmp_path / "pairs.tsv", ["Hello, World!\tHallo, Welt!"] * 20)
    vectors = learn_from_files([str(pairs_file)], str(tmp_path / "target.vec"), side="target",
                               dim=4, min_count=1, epochs=1)
    assert sorted(vectors.index_to_key) == ["!", ",", "hallo", "welt"]
    assert word_vectors.read_vectors(str(tmp_path / "target.vec"))[0].vector_size == 4


def test_learned_vectors_are_the_same_for_the_same_seed(tmp_path):
    texts = ["the cat sat on the mat", "the dog sat on the log"] * 10
    first = learn_word_vectors(texts, Tokenizer("word"), tmp_path / "a.vec", dim=4, epochs=1)
    second = learn_word_vectors(texts, Tokenizer("word"), tmp_path / "b.vec", dim=4, epochs=1)
    np.testing.assert_array_equal(first.vectors, second.vectors)


def test_learning_on_sentencepiece_pieces_covers_the_whole_vocabulary(pairs, tmp_path):
    model = build(pairs, source_tokenizer="sentencepiece", max_source_vocab=60)
    model.source_text.vocabulary.save(tmp_path / "source_vocab.txt")
    text = write_text(tmp_path / "source.txt", [source for source, _ in pairs])
    learn_from_files([str(text)], str(tmp_path / "pieces.vec"),
                     vocabulary=str(tmp_path / "source_vocab.txt"), dim=8, min_count=1, epochs=1)
    tokens = Vocabulary.load(tmp_path / "source_vocab.txt").tokens
    _, coverage = word_vectors.embedding_matrix(str(tmp_path / "pieces.vec"), tokens,
                                                np.full((len(tokens), 8), 0.01))
    # Every piece the model cuts the text into has a vector under its own name; a unigram
    # model may keep a piece it never uses, and only such a piece can lack one.
    used = {piece.decode() for piece in model.source_text.tokenizer.split(
        tf.constant([source for source, _ in pairs])).flat_values.numpy()}
    assert coverage.found == coverage.by_rule["exact"] == len(used - set(SPECIAL_TOKENS))
    assert not used & set(coverage.missing)


def test_learning_from_a_missing_file_names_it(tmp_path):
    with pytest.raises(ValueError, match="nowhere.txt.*does not exist"):
        learn_from_files([str(tmp_path / "nowhere.txt")], str(tmp_path / "out.vec"))


# The command line


@pytest.mark.subprocess
def test_cli_learns_vectors_then_trains_with_them_and_prints_the_coverage(pairs, tmp_path):
    write_text(tmp_path / "pairs.tsv", [f"{source}\t{target}" for source, target in pairs])
    result = keras_s2s("embeddings", "--input", tmp_path / "pairs.tsv", "--side", "source",
                       "--output", tmp_path / "english.vec", "--dim", "64", "--min-count", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Wrote" in result.stdout and (tmp_path / "english.vec").exists()
    result = keras_s2s("train", "--pairs", tmp_path / "pairs.tsv", "--preset", "toy-ko",
                       "--epochs", "1", "--checkpoint-dir", tmp_path / "run",
                       "--source-vectors", tmp_path / "english.vec", "--freeze-vectors")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "source vectors: " in result.stdout and "found a vector" in result.stdout
    result = keras_s2s("train", "--pairs", tmp_path / "pairs.tsv", "--checkpoint-dir",
                       tmp_path / "other", "--source-vectors", tmp_path / "missing.vec")
    assert result.returncode == 2 and "missing.vec' does not exist" in result.stderr
