"""Corpus readers and named corpora: small local files always, the real corpora when present."""

import gzip
import os
import unicodedata

import pytest
import tensorflow as tf

from keras_s2s.corpora import CORPORA, load_corpus
from keras_s2s.data import read_csv_pairs, read_parallel_files
from keras_s2s.text import Tokenizer, build_vocabulary, make_tokenizer

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
needs_shared_data = pytest.mark.skipif(
    not os.path.isdir(SHARED_DATA),
    reason="the real corpora live in ../shared/data beside the project; this checkout has none")


def write_gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.writelines(line + "\n" for line in lines)


def test_parallel_files_pair_line_by_line_and_report_gaps(tmp_path):
    write_gz(tmp_path / "a.de.gz", ["Ein Hund.", "", "Zwei Katzen."])
    write_gz(tmp_path / "a.en.gz", ["A dog.", "A gap.", "Two cats."])
    result = read_parallel_files(tmp_path / "a.de.gz", tmp_path / "a.en.gz")
    assert result.pairs == [("Ein Hund.", "A dog."), ("Zwei Katzen.", "Two cats.")]
    assert result.malformed == [(2, "empty source")]
    write_gz(tmp_path / "short.en.gz", ["A dog."])
    with pytest.raises(ValueError, match="has 3 lines"):
        read_parallel_files(tmp_path / "a.de.gz", tmp_path / "short.en.gz")


def test_csv_pairs_handle_quotes_and_report_empty_fields(tmp_path):
    path = tmp_path / "chat.csv"
    path.write_text('\ufeffQ,A,label\n"안녕, 반가워",나도 반가워,0\n빈 대답,,0\n배고파,"밥 먹자, 지금",0\n',
                    encoding="utf-8")
    result = read_csv_pairs(path)
    assert result.pairs == [("안녕, 반가워", "나도 반가워"), ("배고파", "밥 먹자, 지금")]
    assert [reason for _, reason in result.malformed] == ["empty target"]
    with pytest.raises(ValueError, match="no column"):
        read_csv_pairs(path, "question", "answer")


def fake_data_dir(folder):
    (folder / "multi30k").mkdir(parents=True)
    for split, count in (("train", 6), ("val", 2), ("test_2016_flickr", 3)):
        write_gz(folder / "multi30k" / f"{split}.de.gz", [f"satz {split} {i}" for i in range(count)])
        write_gz(folder / "multi30k" / f"{split}.en.gz", [f"sentence {split} {i}" for i in range(count)])
    (folder / "anki").mkdir()
    write_gz(folder / "anki" / "kor-eng.txt.gz",
             [f"I eat {i}.\t나는 {i}를 먹는다.\tCC-BY" for i in range(1000)])
    (folder / "ko-chatbot").mkdir()
    (folder / "ko-chatbot" / "ChatbotData.csv").write_text(
        "Q,A,label\n" + "".join(f"질문 {i},대답 {i},0\n" for i in range(1200)), encoding="utf-8")
    return folder


def test_named_corpora_load_with_fixed_disjoint_splits(tmp_path):
    data_dir = str(fake_data_dir(tmp_path / "data"))
    multi30k = load_corpus("multi30k-de-en", data_dir)
    assert [len(split) for split in multi30k] == [6, 2, 3]
    assert multi30k.test[0] == ("satz test_2016_flickr 0", "sentence test_2016_flickr 0")
    for name, sizes in (("anki-kor-eng", (200, 300, 500)), ("anki-eng-kor", (200, 300, 500)),
                        ("ko-chatbot", (200, 500, 500))):
        splits = load_corpus(name, data_dir)
        assert tuple(len(split) for split in splits) == sizes, name
        assert set(splits.train).isdisjoint(splits.test) and set(splits.validation).isdisjoint(splits.test)
        assert load_corpus(name, data_dir) == splits  # seeded
    assert load_corpus("anki-kor-eng", data_dir).train[0][1].startswith("I eat")
    assert load_corpus("anki-eng-kor", data_dir).train[0][1].startswith("나는")
    with pytest.raises(ValueError, match="Unknown corpus"):
        load_corpus("wmt", data_dir)
    (tmp_path / "data" / "ko-chatbot" / "ChatbotData.csv").write_text(
        "Q,A,label\n" + "".join(f"질문 {i},대답 {i},0\n" for i in range(900)), encoding="utf-8")
    with pytest.raises(ValueError, match="too few"):
        load_corpus("ko-chatbot", data_dir)
    with pytest.raises(ValueError, match="data_dir"):
        load_corpus("ko-chatbot", str(tmp_path / "missing"))


@needs_shared_data
@pytest.mark.parametrize("name,train,validation,test", [
    ("multi30k-de-en", 29000, 1014, 1000), ("anki-spa-eng", None, 1000, 2000),
    ("anki-kor-eng", None, 300, 500), ("ko-chatbot", None, 500, 500)])
def test_real_corpora_load(name, train, validation, test):
    splits = load_corpus(name, SHARED_DATA)
    assert (len(splits.validation), len(splits.test)) == (validation, test)
    assert len(splits.train) == train if train else len(splits.train) > 3000


@needs_shared_data
@pytest.mark.parametrize("name,side", [("anki-kor-eng", 0), ("anki-eng-kor", 1), ("ko-chatbot", 0),
                                       ("ko-chatbot", 1)])
def test_korean_sentencepiece_round_trips_to_composed_hangul(name, side):
    texts = [pair[side] for pair in load_corpus(name, SHARED_DATA).train]
    vocabulary = build_vocabulary(texts, "sentencepiece", max_size=4000)
    tokenizer = make_tokenizer("sentencepiece", True, "NFKC", vocabulary)
    pieces = tokenizer.split(tf.constant(texts))
    joined = [text.decode("utf-8") for text in tokenizer.join(pieces).numpy()]
    normalized = [text.decode("utf-8") for text in Tokenizer("word").normalize(tf.constant(texts)).numpy()]
    assert sum(a == b for a, b in zip(joined, normalized)) / len(texts) > 0.999
    assert all(unicodedata.is_normalized("NFC", text) for text in joined)
    assert b"[UNK]" not in pieces.flat_values.numpy()  # every training character is covered
    assert len(vocabulary) <= 4000


def test_every_named_corpus_has_a_loader():
    assert sorted(CORPORA) == ["anki-eng-kor", "anki-eng-spa", "anki-kor-eng", "anki-spa-eng",
                               "ko-chatbot", "multi30k-de-en", "multi30k-en-de"]


@needs_shared_data
def test_monolingual_text_never_holds_a_scored_sentence():
    from keras_s2s.corpora import monolingual_text

    texts, counts = monolingual_text(SHARED_DATA)
    scored = {text.strip() for corpus in ("anki-kor-eng", "anki-eng-kor")
              for split in load_corpus(corpus, SHARED_DATA)[1:] for pair in split for text in pair}
    assert scored and not scored & {text.strip() for text in texts}
    assert sum(count["sentences"] for count in counts.values()) == len(texts)
    # English sentences repeat across Tatoeba's pairs, so some leave the Spanish side too.
    assert counts["Anki spa-eng English"]["held_out_left_out"] > 0
    assert any(unicodedata.name(character, "").startswith("HANGUL") for character in texts[-1])
