"""Bad data and bad state stop with an error that names the file, line or step.

Malformed corpus lines are counted and reported (test_data.py covers BOM, CRLF, missing
tab, empty sides and a stray non-UTF-8 line); here: whole files in other encodings, empty
corpora, vocabularies that do not match a checkpoint, damaged checkpoints, and settings that
would overwrite what a run saved.
"""

import os

import pytest

from keras_s2s import runs, tasks
from keras_s2s.config import TrainConfig
from keras_s2s.data import make_dataset, read_lines, read_parallel_files, read_tsv_pairs
from keras_s2s.model import Seq2Seq
from keras_s2s.training import UnreadableCheckpointError, load_trained_model, restore_weights, train
from tests.helpers import small_config


def test_a_latin1_file_is_read_where_it_can_be_and_every_other_line_is_reported(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Go.\tVe.\nI'm sorry.\tLo siento.\nThanks.\tGracias, señor.\n"
                     "Where?\t¿Dónde?\n".encode("latin-1"))
    result = read_tsv_pairs(path)
    assert result.pairs == [("Go.", "Ve."), ("I'm sorry.", "Lo siento.")]
    assert [number for number, _ in result.malformed] == [3, 4]
    assert all("not UTF-8" in reason for _, reason in result.malformed)
    assert "2 pairs from 4 lines, 2 malformed" in result.summary()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_are_refused_by_name(tmp_path, encoding):
    path = tmp_path / "wide.tsv"
    path.write_text("Go.\tVe.\nHello.\tHola.\n", encoding=encoding)  # with a byte-order mark
    for read in (read_tsv_pairs, read_lines):
        with pytest.raises(ValueError, match=f"wide.tsv is {encoding.upper()} text"):
            read(path)
    with pytest.raises(ValueError, match="UTF-"):
        read_parallel_files(path, path)


def test_utf16_without_a_byte_order_mark_gives_malformed_lines_not_pairs(tmp_path):
    path = tmp_path / "wide.tsv"
    path.write_bytes("Go.\tVe.\nHello.\tHola.\n".encode("utf-16-le"))
    result = read_tsv_pairs(path)
    assert result.pairs == [] and len(result.malformed) == result.lines == 3  # "\\x00" last
    assert all(reason == "NUL character" for _, reason in result.malformed)


def test_a_bom_and_crlf_do_not_reach_the_pairs(tmp_path):
    path = tmp_path / "windows.tsv"
    path.write_bytes("\ufeffGo.\tVe.\r\nHi.\tHola.\r\n".encode("utf-8"))
    assert read_tsv_pairs(path).pairs == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert read_lines(path) == ["Go.\tVe.", "Hi.\tHola."]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"no tab\nstill none\n"])
def test_a_corpus_with_no_usable_pair_stops_training_naming_the_file(tmp_path, content):
    path = tmp_path / "empty.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="empty.tsv.*no usable sentence pair"):
        runs.train_run(runs.RunOptions(str(tmp_path / "run"), pairs_path=str(path), epochs=1))
    assert not tf_checkpoint_files(tmp_path / "run")


def tf_checkpoint_files(directory):
    return list(directory.glob("ckpt-*")) if directory.exists() else []


# The runs are the session's tiny one-epoch run (conftest.py: tiny_runs, copy_run).
def test_a_vocabulary_that_does_not_match_the_checkpoint_is_named_with_both_sizes(tiny_runs, copy_run):
    run = copy_run(1)
    tokens = (run / "source_vocab.txt").read_text(encoding="utf-8").splitlines()
    (run / "source_vocab.txt").write_text("\n".join(tokens + ["§", "¶"]) + "\n", encoding="utf-8")
    message = (rf"ckpt-1 was trained with a source vocabulary of {len(tokens)} tokens, but the "
               rf"model has {len(tokens) + 2}: the vocabulary files in '.*run'")
    with pytest.raises(ValueError, match=message):
        load_trained_model(str(run))
    # Resuming training refuses the same way, and leaves the checkpoint as it was.
    before = (run / "ckpt-1.index").read_bytes()
    model = Seq2Seq.from_spec(run)
    with pytest.raises(ValueError, match=message):
        train(model, make_dataset(tiny_runs["pairs"], model, 32), TrainConfig(epochs=2),
              checkpoint_dir=str(run), verbose=0)
    assert (run / "ckpt-1.index").read_bytes() == before and not (run / "unreadable").exists()


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_transformers_vocabulary_that_does_not_match_its_checkpoint_is_named(tmp_path, side):
    """The Transformer's token table sits one level deeper (in its PositionalEmbedding); the
    same check finds it, on either side."""
    pairs, _ = tasks.load_task("dates", 200, 10)
    model_config, _ = small_config("dates-transformer", units=16, num_heads=2, ff_units=32,
                                   num_layers=1)
    model = Seq2Seq.from_pairs(pairs, model_config)
    run = tmp_path / "run"
    model.save_spec(run, TrainConfig(epochs=1))
    train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=1), checkpoint_dir=str(run),
          verbose=0)
    tokens = (run / f"{side}_vocab.txt").read_text(encoding="utf-8").splitlines()
    (run / f"{side}_vocab.txt").write_text("\n".join(tokens[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"ckpt-1 was trained with a {side} vocabulary of "
                       rf"{len(tokens)} tokens, but the model has {len(tokens) - 1}"):
        load_trained_model(str(run))


def test_a_model_of_another_shape_is_refused_with_the_checkpoint_named(tiny_runs):
    pairs = tiny_runs["pairs"]
    model_config, _ = small_config("dates", units=24, embedding_dim=8, attention_units=8)
    with pytest.raises(ValueError, match="ckpt-1 does not fit this model"):
        restore_weights(Seq2Seq.from_pairs(pairs, model_config), str(tiny_runs[1]))


@pytest.mark.parametrize("damaged", ["index", "data"])
def test_a_corrupt_checkpoint_is_reported_by_file_name(copy_run, damaged):
    run = copy_run(1)
    path = next(run.glob(f"ckpt-1.{damaged}*"))
    path.write_bytes(os.urandom(path.stat().st_size))
    with pytest.raises(UnreadableCheckpointError, match=r"Checkpoint \S+ckpt-1 cannot be read"):
        load_trained_model(str(run))


def test_cli_export_of_a_corrupt_checkpoint_exits_2_with_the_file_named(copy_run, tmp_path):
    from keras_s2s.cli import main

    run = copy_run(1)
    (run / "ckpt-1.index").write_bytes(b"\x00" * 64)
    assert main(["export", "--checkpoint-dir", str(run), "--output", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_resuming_with_another_preset_is_refused(copy_run):
    run = copy_run(1)
    message = r"other settings than preset 'dates' \(.*; units: 16 here, 128 in the preset;"
    with pytest.raises(ValueError, match=message):
        runs.train_run(runs.RunOptions(str(run), task="dates", preset_name="dates", epochs=2,
                                       train_size=200, test_size=10))


def test_train_refuses_an_export_path_that_holds_something(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"an earlier export")
    with pytest.raises(ValueError, match="exists and is not empty"):
        runs.train_run(runs.RunOptions(str(tmp_path / "run"), task="dates",
                                       export_path=str(tmp_path / "export")))
    assert (tmp_path / "export" / "saved_model.pb").read_bytes() == b"an earlier export"
    assert not (tmp_path / "run").exists()
