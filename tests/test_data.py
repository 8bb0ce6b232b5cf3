import gzip

import numpy as np
import pytest

from keras_s2s.config import ModelConfig
from keras_s2s.data import make_dataset, read_tsv_pairs, split_pairs
from keras_s2s.model import Seq2Seq


def test_tsv_reader_reports_every_malformed_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(
        "\ufeffGo.\tVe.\tCC-BY\r\n".encode()      # BOM, CRLF, attribution column
        + b"no tab here\n"                        # 2: one column
        + b"\tempty source\n"                     # 3
        + b"empty target\t \n"                    # 4
        + b"bad \xff bytes\tx\n"                  # 5: not UTF-8
        + b"\n"                                   # blank: not a pair, not an error
        + "Hello.\t안녕하세요.\n".encode())
    result = read_tsv_pairs(path)
    assert result.pairs == [("Go.", "Ve."), ("Hello.", "안녕하세요.")]
    assert [number for number, _ in result.malformed] == [2, 3, 4, 5]
    assert "not UTF-8" in result.malformed[3][1]
    assert result.lines == 7
    assert "2 pairs from 7 lines, 4 malformed" in result.summary()


def test_tsv_reader_reads_gzip_and_other_columns(tmp_path):
    path = tmp_path / "pairs.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write("I eat.\t나는 먹는다.\tattribution\n")
    assert read_tsv_pairs(path, source_column=1, target_column=0).pairs == [("나는 먹는다.", "I eat.")]


def test_split_pairs_is_deterministic_and_disjoint():
    pairs = [(str(i), str(i)) for i in range(100)]
    kept, held_out = split_pairs(pairs, 0.1, seed=3)
    assert len(held_out) == 10 and len(kept) == 90
    assert set(kept).isdisjoint(held_out) and set(kept) | set(held_out) == set(pairs)
    assert split_pairs(pairs, 0.1, seed=3) == (kept, held_out)
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_pairs(pairs, 1.0)


@pytest.fixture(scope="module")
def word_model():
    pairs = [(" ".join(["w"] * n), " ".join(["v"] * (n % 7 + 1))) for n in range(1, 60)]
    return Seq2Seq.from_pairs(pairs, ModelConfig(units=8, embedding_dim=4, attention_units=4)), pairs


def test_dataset_yields_every_pair_once_padded_per_bucket(word_model):
    model, pairs = word_model
    dataset = make_dataset(pairs, model, batch_size=8, seed=1)
    batches = list(dataset)
    assert len(batches) == int(dataset.cardinality())
    source_lengths = sorted(int(length) for source, _ in batches
                            for length in np.sum(source.numpy() != 0, axis=1))
    assert source_lengths == sorted(n + 1 for n in range(1, 60))  # each source + [END]
    # Bucketing keeps padding low: no batch is padded to the corpus maximum unless it holds it.
    widths = [source.shape[1] for source, _ in batches]
    assert min(widths) < 20 and max(widths) == 60
    for _, target in batches:
        assert np.all(target.numpy()[:, 0] == 2)  # [START] first


def test_dataset_order_is_seeded(word_model):
    model, pairs = word_model
    first = [source.numpy().tolist() for source, _ in make_dataset(pairs, model, 8, seed=5)]
    again = [source.numpy().tolist() for source, _ in make_dataset(pairs, model, 8, seed=5)]
    assert first == again


def test_empty_pairs_are_refused(word_model):
    with pytest.raises(ValueError, match="empty"):
        make_dataset([], word_model[0])
