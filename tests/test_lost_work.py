"""Nothing a user does by mistake loses work or ends in a traceback: one writer per folder,
exports that appear whole, resumption by the data's content, invalid UTF-8 translated, and
one-line errors (exit 2 for bad input, 1 for the environment) for damaged files.

Every damaged file here is made by the test from a real one: truncated, overwritten,
deleted; the full disk is a small tmpfs, where one can be mounted.
"""

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from keras_s2s import cli, locks, runs, tasks
from keras_s2s.config import MAX_BEAM_SIZE, TrainConfig
from keras_s2s.data import make_dataset, read_tsv_pairs
from keras_s2s.training import train
from keras_s2s.translator import load, next_version_path, translate_in_batches
from tests.conftest import tiny_dates_model
from tests.helpers import ENV, run_cli

PAIRS = "March 3, 2021\t2021-03-03\nMay 5, 2020\t2020-05-05\n"


def one_line_error(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- one writer per folder -----------------------------------------------------------------

def hold_lock(folder, what="checkpoint_dir"):
    """A second process that holds `folder`'s lock until it is killed; returns it once it does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom keras_s2s.locks import exclusive\n"
         f"with exclusive({str(folder)!r}, {what!r}):\n    print('held', flush=True)\n"
         "    time.sleep(600)\n"], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.subprocess
def test_a_second_writer_fails_at_once_naming_the_holder_and_a_crash_leaves_no_lock(tmp_path):
    holder = hold_lock(tmp_path / "run")
    try:
        started = time.perf_counter()
        with pytest.raises(locks.FolderInUseError,
                           match=rf"checkpoint_dir='.*run' is in use by process {holder.pid}\b"):
            with locks.exclusive(str(tmp_path / "run"), "checkpoint_dir"):
                pass
        assert time.perf_counter() - started < 1.0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with locks.exclusive(str(tmp_path / "run"), "checkpoint_dir"):  # the kill released it
        pass


@pytest.mark.subprocess
def test_two_trainings_and_two_exports_at_once_the_second_stops_and_nothing_is_replaced(tmp_path):
    run = tmp_path / "run"
    pairs = tmp_path / "pairs.tsv"
    # Long enough that the first still trains when the second has started up.
    pairs.write_text(PAIRS * 500, encoding="utf-8")
    first = subprocess.Popen(
        [sys.executable, "-m", "keras_s2s", "train", "--pairs", str(pairs), "--preset", "dates",
         "--checkpoint-dir", str(run), "--epochs", "2", "--seed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    while not (run / ".lock").exists() or not (run / ".lock").read_text().strip():
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "keras_s2s", "train", "--pairs", str(pairs), "--preset", "dates",
         "--checkpoint-dir", str(run), "--epochs", "2", "--seed", "1"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert second.returncode == 1
    assert one_line_error(second.stderr) == (
        f"keras-s2s train: error: checkpoint_dir={str(run)!r} is in use by process {first.pid}, "
        "which is writing to it; wait for it to finish, or choose another folder.")
    assert first.wait(timeout=600) == 0, first.communicate()
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0

    exports = [subprocess.Popen(
        [sys.executable, "-m", "keras_s2s", "export", "--checkpoint-dir", str(run), "--name",
         "dates", "--base-dir", str(tmp_path / "models")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(process.wait(timeout=600), *process.communicate()) for process in exports]
    written = sorted(os.listdir(tmp_path / "models" / "dates"))
    exported = [out for code, out, _ in results if code == 0]
    refused = [err for code, _, err in results if code == 1]
    # Either the second started while the first held the name (refused), or after it had
    # finished (the next version): never the same version twice, never a partial folder.
    assert len(exported) + len(refused) == 2 and len(set(exported)) == len(exported)
    assert written == [str(version) for version in range(1, len(exported) + 1)]
    for err in refused:
        assert "name=" in one_line_error(err) and "is in use by process" in err


def lock_is_free(path):
    """Whether another open file description could lock `path` now (what another process sees)."""
    import fcntl

    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


def test_threads_share_a_folders_lock_and_the_last_one_out_releases_it(tmp_path):
    first_in, first_out, second_in = (threading.Event() for _ in range(3))

    def first():
        with locks.exclusive(str(tmp_path), "checkpoint_dir"):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with locks.exclusive(str(tmp_path), "checkpoint_dir"):
        second_in.set()
        first_out.wait(10)
        assert not lock_is_free(tmp_path / locks.LOCK_FILE)  # still held for this thread
    thread.join(10)
    assert lock_is_free(tmp_path / locks.LOCK_FILE)


def test_an_export_appears_whole_and_never_over_another(dates_model, tmp_path):
    model = dates_model[0]
    target = tmp_path / "dates" / "1"
    target.mkdir(parents=True)
    (target / "keep.txt").write_text("an earlier export")
    with pytest.raises(ValueError, match=r"path='.*1' exists and is not empty"):
        model.export(str(target))
    assert os.listdir(target) == ["keep.txt"]
    # A crashed writer's staging folder is cleared; the export lands whole; nothing is left.
    (tmp_path / "dates" / ".2.partial-99999").mkdir()
    model.export(str(tmp_path / "dates" / "2"))
    assert sorted(os.listdir(tmp_path / "dates")) == ["1", "2"]
    exported = load(str(tmp_path / "dates" / "2"))  # held: its functions need its variables
    assert exported.translate(tf.constant(["May 5, 2020"]))["text"].shape == [1]

    def another_export_wins_the_race(folder):
        os.makedirs(folder)
        (tmp_path / "dates" / "3").mkdir()
        (tmp_path / "dates" / "3" / "saved_model.pb").write_bytes(b"the other export")
    with pytest.raises(ValueError, match="written by another export meanwhile"):
        locks.write_whole(str(tmp_path / "dates" / "3"), another_export_wins_the_race)
    assert (tmp_path / "dates" / "3" / "saved_model.pb").read_bytes() == b"the other export"


def test_versions_are_ascii_digits_only(tmp_path):
    for name in ("1", "2", "²", "10x"):
        (tmp_path / "dates" / name).mkdir(parents=True)
    assert next_version_path(str(tmp_path), "dates") == str(tmp_path / "dates" / "3")


# --- resuming by content ---------------------------------------------------------------------

def test_the_same_file_by_another_path_resumes_and_a_changed_file_does_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("files")
    with open("files/x.tsv", "w", encoding="utf-8") as file:
        file.write(PAIRS)
    runs.check_data_source("run", runs.data_source_of(pairs_path="./files/x.tsv"), resuming=False)
    runs.check_data_source("run", runs.data_source_of(pairs_path=str(tmp_path / "files" / "x.tsv")),
                           resuming=True)
    with open("files/x.tsv", "w", encoding="utf-8") as file:
        file.write("안녕하세요\tHello\n")
    with pytest.raises(ValueError, match=rf"holds a run on other data \(the data changed since the "
                       rf"run began: it had {len(PAIRS)} bytes with SHA-256 \w{{12}}…, it has \d+ bytes"):
        runs.check_data_source("run", runs.data_source_of(pairs_path="files/x.tsv"), resuming=True)


def test_a_run_recorded_by_path_alone_still_resumes_under_another_spelling(tmp_path):
    (tmp_path / "x.tsv").write_text(PAIRS, encoding="utf-8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / runs.DATA_SOURCE_FILE).write_text(json.dumps(
        {"task": None, "pairs": str(tmp_path / "x.tsv"), "corpus": None, "train_size": None,
         "test_size": None}))
    runs.check_data_source(str(tmp_path / "run"), runs.data_source_of(
        pairs_path=str(tmp_path / "." / "x.tsv")), resuming=True)


# --- invalid UTF-8 and bad arguments --------------------------------------------------------

def test_translate_repairs_invalid_utf8_on_stdin_and_argv_and_translates_every_line(
        dates_export, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        b"March 3, 2021\n\xff stray byte\nMay 5, 2020\n")))
    code, out, err = run_cli(capsys, "translate", "--model", dates_export, "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == ["March 3, 2021", "\ufffd stray byte", "May 5, 2020"]
    expected = translate_in_batches(load(dates_export), ["March 3, 2021", "May 5, 2020"])["text"]
    assert [lines[0]["text"], lines[2]["text"]] == expected
    # An argument that is not UTF-8 reaches Python as a surrogate, and is repaired the same way.
    code, out, err = run_cli(capsys, "translate", "--model", dates_export, "\udcff", "May 5, 2020")
    assert code == 0 and out.splitlines()[1] == expected[1], err


def test_the_python_api_names_a_bad_argument(dates_model):
    model = dates_model[0]
    with pytest.raises(ValueError, match=r"texts\[1\] is NoneType"):
        model.translate(["March 3, 2021", None])
    with pytest.raises(ValueError, match=r"pairs\[0\] must be a \(source, target\) pair"):
        make_dataset([("a",)], model)
    assert model.translate([b"\xff"]) == model.translate(["\ufffd"])


def test_beam_sizes_beyond_the_limit_are_refused_or_clamped(dates_export, capsys, tmp_path):
    (tmp_path / "source.txt").write_text("March 3, 2021\n")
    with pytest.raises(SystemExit) as refused:  # argparse's own exit, with its usage line
        cli.main(["evaluate", "--model", dates_export, "--source", str(tmp_path / "source.txt"),
                  "--reference", str(tmp_path / "source.txt"), "--beam-size", "100000"])
    assert refused.value.code == 2
    assert (f"error: argument --beam-size: the beam size must be from 1 to {MAX_BEAM_SIZE}; "
            "got 100000.") in capsys.readouterr().err
    with pytest.raises(ValueError, match="beam_size must be from 1"):
        translate_in_batches(load(dates_export), ["March 3, 2021"], beam_size=100000)
    # A served signature cannot raise to its client: it clamps, as it does below 1.
    exported = load(dates_export)
    nbest = exported.beam(tf.constant(["March 3, 2021"]), tf.constant(100000))["nbest"]
    assert nbest.shape == [1, MAX_BEAM_SIZE]


def test_evaluate_refuses_to_write_over_its_inputs(dates_export, capsys, tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("March 3, 2021\n")
    (tmp_path / "reference.txt").write_text("2021-03-03\n")
    for target in (source, tmp_path / "reference.txt"):
        code, _, err = run_cli(capsys, "evaluate", "--model", dates_export, "--source", source,
                               "--reference", tmp_path / "reference.txt", "--hypotheses", target)
        assert code == 2 and "would destroy it" in one_line_error(err)
    assert source.read_text() == "March 3, 2021\n"


# --- damaged files: one line each ------------------------------------------------------------

def damaged_gzip_files(folder):
    data = gzip.compress(PAIRS.encode() * 200)
    files = {"truncated.tsv.gz": data[:len(data) // 2],
             "corrupt.tsv.gz": data[:40] + bytes(byte ^ 0xFF for byte in data[40:80]) + data[80:],
             "plain.tsv.gz": PAIRS.encode()}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


def test_a_damaged_gzip_file_is_named_in_one_line(tmp_path, capsys):
    files = damaged_gzip_files(tmp_path)
    messages = {"truncated.tsv.gz": "is truncated: its gzip data ends after line",
                "corrupt.tsv.gz": "is damaged before its first line (Error -3 while decompressing",
                "plain.tsv.gz": "is not gzip data (it starts with b'March 3,')"}
    for name, path in files.items():
        with pytest.raises(ValueError) as error:
            read_tsv_pairs(path)
        assert str(path) in str(error.value) and messages[name] in str(error.value)
        code, _, err = run_cli(capsys, "train", "--pairs", path, "--checkpoint-dir",
                               tmp_path / f"run-{name}")
        assert code == 2 and messages[name] in one_line_error(err)


def test_evaluate_names_a_truncated_source(dates_export, tmp_path, capsys):
    files = damaged_gzip_files(tmp_path)
    code, _, err = run_cli(capsys, "evaluate", "--model", dates_export, "--source",
                           files["truncated.tsv.gz"], "--reference", files["truncated.tsv.gz"])
    assert code == 2 and "truncated.tsv.gz is truncated" in one_line_error(err)


def damage(export, tmp_path, kind):
    """A copy of `export` with one kind of damage."""
    path = tmp_path / kind
    shutil.copytree(export, path)
    data = next((path / "variables").glob("variables.data-*"))
    if kind == "no variables folder":
        shutil.rmtree(path / "variables")
    elif kind == "no variables.index":
        (path / "variables" / "variables.index").unlink()
    elif kind == "truncated variables":
        data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    elif kind == "truncated saved_model.pb":
        pb = path / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:pb.stat().st_size // 2])
    elif kind == "random saved_model.pb":
        (path / "saved_model.pb").write_bytes(os.urandom(5000))
    return path


DAMAGE = ["no variables folder", "no variables.index", "truncated variables",
          "truncated saved_model.pb", "random saved_model.pb"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_savedmodel_is_named_in_one_line(dates_export, tmp_path, capsys, kind):
    path = damage(dates_export, tmp_path, kind)
    code, _, err = run_cli(capsys, "export", "--from-saved-model", path, "--output",
                           tmp_path / "re-exported")
    assert code == 2 and f"saved_model={str(path)!r} is not a readable SavedModel" in one_line_error(err)
    assert not (tmp_path / "re-exported").exists()
    code, _, err = run_cli(capsys, "translate", "--model", path, "March 3, 2021")
    assert code == 2 and f"model={str(path)!r} is not a readable SavedModel" in one_line_error(err)


def test_a_savedmodel_of_another_kind_is_named_in_one_line(tmp_path, capsys):
    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def echo(self, text):
            return text

    tf.saved_model.save(Echo(), str(tmp_path / "other"))
    (tmp_path / "lines.txt").write_text("a\n")
    for argv in (["translate", "--model", tmp_path / "other", "a"],
                 ["evaluate", "--model", tmp_path / "other", "--source", tmp_path / "lines.txt",
                  "--reference", tmp_path / "lines.txt"],
                 ["plot", "--model", tmp_path / "other", "a", "--output", tmp_path / "a.png"],
                 ["export", "--from-saved-model", tmp_path / "other", "--output", tmp_path / "x"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "is a SavedModel but not a keras_s2s export" in one_line_error(err)


# --- a full disk ----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: a disk that can really fill."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        # A disk that really fills needs a mount, which needs root (CAP_SYS_ADMIN); CI runs as
        # root and runs these tests. Faking the error instead would not test TensorFlow's.
        pytest.skip("mounting a 16 MiB tmpfs needs root here; mount said: "
                    f"{result.stderr.strip()[:200]}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder):
    """Writes into `folder` until the disk is full; returns the file written."""
    path = folder / "filler"
    with open(path, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    return path


@pytest.mark.slow  # trainings onto a filling disk: over 10 s each on 2 cores
def test_a_full_disk_stops_training_with_what_survived_and_it_resumes_once_freed(small_disk, capsys):
    pairs, _ = tasks.load_task("dates", 200, 10)
    run = small_disk / "run"
    model = tiny_dates_model(pairs)
    dataset = make_dataset(pairs, model, 32)
    train(model, dataset, TrainConfig(epochs=1), checkpoint_dir=str(run), verbose=0)
    filler = fill(small_disk)
    with pytest.raises(OSError, match=r"^No space left on the disk while saving epoch 2's checkpoint"
                       r" in .*; the checkpoints of earlier epochs are intact") as error:
        train(model, dataset, TrainConfig(epochs=2), checkpoint_dir=str(run), verbose=0)
    assert cli._exit_code(error.value) == 1
    filler.unlink()
    history = train(tiny_dates_model(pairs), dataset, TrainConfig(epochs=2),
                         checkpoint_dir=str(run), verbose=0)
    assert [epoch["epoch"] for epoch in history] == [1, 2]
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-2")


# --- registration ---------------------------------------------------------------------------

@pytest.mark.subprocess
@pytest.mark.parametrize("imports", ["import keras_s2s, keras", "import keras, keras_s2s",
                                     "import keras_s2s.text, keras"])
def test_import_keras_s2s_alone_lets_keras_load_a_saved_model(dates_model, tmp_path, imports):
    # In the last order TensorFlow Text loads Keras while keras_s2s.text is half made: the
    # registration waits for that import to finish.
    model = dates_model[0]
    model.save(str(tmp_path / "dates.keras"))
    script = (f"{imports}\n"
              f"model = keras.saving.load_model({str(tmp_path / 'dates.keras')!r})\n"
              "print(type(model).__name__, model.translate(['March 3, 2021'])[0])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["Seq2Seq", model.translate(["March 3, 2021"])[0]]


@pytest.mark.slow  # trainings onto a filling disk: over 10 s each on 2 cores
def test_the_command_line_says_what_a_full_disk_left_intact(small_disk, capsys):
    pairs, _ = tasks.load_task("dates", 200, 10)
    (small_disk / "pairs.tsv").write_text("".join(f"{source}\t{target}\n" for source, target in pairs))
    argv = ["train", "--pairs", small_disk / "pairs.tsv", "--preset", "dates", "--checkpoint-dir",
            small_disk / "run"]
    assert run_cli(capsys, *argv, "--epochs", "1")[0] == 0
    filler = fill(small_disk)
    code, _, err = run_cli(capsys, *argv, "--epochs", "2")
    assert code == 1 and one_line_error(err).startswith(
        "keras-s2s train: error: No space left on the disk while writing config.json in ")
    assert json.loads((small_disk / "run" / "config.json").read_text())["train"]["epochs"] == 1
    filler.unlink()
    code, out, err = run_cli(capsys, *argv, "--epochs", "2")
    assert code == 0 and "Resumed from" in out and "after epoch 1" in out, err
