"""Corpora streamed from files give the batches the in-memory pipeline gives, with bounded memory."""

import gzip
import json

import pytest
from tests.conftest import tiny_dates_model
from tests.helpers import keras_s2s, write_apple_pairs

from keras_s2s import tasks
from keras_s2s.data import make_dataset, read_tsv_pairs
from keras_s2s.streaming import scan_corpus, stream_dataset


def as_lists(dataset):
    return [(source.numpy().tolist(), target.numpy().tolist()) for source, target in dataset]


def rows(dataset):
    """Every (source, target) row of every batch, padding removed, in order."""
    return [(tuple(s for s in source if s), tuple(t for t in target if t))
            for sources, targets in as_lists(dataset) for source, target in zip(sources, targets)]


@pytest.fixture(scope="module")
def dates_pairs():
    pairs, _ = tasks.load_task("dates", 400, 10, seed=3)
    return pairs


def write_tsv(path, lines):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as file:
        file.write("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def awkward_file(dates_pairs, tmp_path_factory):
    """The dates pairs with what real files hold: a byte-order mark, CRLF endings, Unicode
    spaces around a side, blank lines and two malformed lines."""
    lines = [f"{source}\t{target}\textra column" for source, target in dates_pairs]
    lines[0] = "\ufeff" + lines[0]
    lines[1] += "\r"
    lines[5] = "\u3000" + lines[5].replace("\t", "\u00a0\t", 1)
    lines[20:20] = ["", "a line without a tab", "  \t", "\tan empty source"]
    return write_tsv(tmp_path_factory.mktemp("streaming") / "pairs.tsv.gz", lines)


def test_the_scan_reports_what_the_in_memory_reader_reports(awkward_file, dates_pairs):
    pair_file = read_tsv_pairs(awkward_file)
    scan = scan_corpus(awkward_file, sample_size=10_000)
    assert scan.pairs == len(pair_file.pairs) == len(dates_pairs)
    assert scan.lines == pair_file.lines
    assert [(number, reason) for _, number, reason in scan.malformed] == pair_file.malformed
    assert [number for _, number, _ in scan.malformed] == [22, 24]  # line 23 is blank: spaces and a tab
    assert sorted(scan.sample) == sorted(pair_file.pairs)


def test_streamed_batches_equal_the_in_memory_ones(awkward_file, dates_pairs):
    model = tiny_dates_model(dates_pairs)
    scan = scan_corpus(awkward_file, sample_size=10_000)
    expected = as_lists(make_dataset(read_tsv_pairs(awkward_file).pairs, model, 32, shuffle=False))
    assert as_lists(stream_dataset(scan, model, 32, shuffle=False)) == expected
    assert len(expected) > 12  # several buckets, several batches each


def test_shuffled_files_stream_every_pair_once_and_none_held_out(dates_pairs, tmp_path):
    model = tiny_dates_model(dates_pairs)
    files = [write_tsv(tmp_path / "first.tsv", [f"{s}\t{t}" for s, t in dates_pairs[:150]]),
             write_tsv(tmp_path / "second.tsv.gz", [f"{s}\t{t}" for s, t in dates_pairs[150:]])]
    scan = scan_corpus(files, sample_size=100, held_out_size=30, seed=1)
    assert len(scan.sample) <= 100 and len(scan.held_out) == 30
    assert not set(scan.sample) & set(scan.held_out)
    streamed = rows(stream_dataset(scan, model, 16, shuffle=True, shuffle_buffer=64, seed=2))
    everything = rows(make_dataset(dates_pairs, model, 16, shuffle=False))
    held_out = rows(make_dataset(scan.held_out, model, 16, shuffle=False))
    assert len(streamed) == len(set(streamed)) == len(dates_pairs) - 30
    assert sorted(streamed + held_out) == sorted(everything)
    assert streamed != sorted(streamed, key=everything.index)  # shuffled


def test_the_samples_are_bounded_and_drawn_from_the_whole_file(dates_pairs, tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", [f"{s}\t{t}" for s, t in dates_pairs])
    scan = scan_corpus(path, sample_size=50, seed=4)
    assert len(scan.sample) == 50
    positions = sorted(dates_pairs.index(pair) for pair in scan.sample)
    assert positions[-1] > 300 and positions[0] < 100  # not just the first 50 lines
    assert scan_corpus(path, sample_size=50, seed=4).sample == scan.sample


@pytest.mark.parametrize("content, message", [
    ("only one column\n\n", "no usable sentence pair"),
    ("\ufeffsource\ttarget\n".encode("utf-16"), "UTF-16"),
])
def test_unusable_files_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(ValueError, match=message):
        scan_corpus(path)


@pytest.mark.subprocess
def test_train_streams_a_pair_file_and_holds_out_validation(tmp_path):
    pairs = write_apple_pairs(tmp_path)
    result = keras_s2s("train", "--pairs", pairs, "--stream", "--epochs", "2",
                       "--checkpoint-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 file(s): 60 pairs from 61 lines, 1 malformed, 3 held out; streamed" in result.stdout
    assert "57 training and 3 validation pairs" in result.stdout
    assert "line 31" in result.stderr
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    assert "validation" in json.loads((tmp_path / "run" / "results.json").read_text())
