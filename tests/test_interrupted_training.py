"""Training survives being killed: it loses at most one epoch and never a saved checkpoint."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import pytest
import tensorflow as tf

from keras_s2s.config import TrainConfig
from keras_s2s.data import make_dataset
from keras_s2s.model import Seq2Seq
from keras_s2s.training import train
from tests.helpers import ENV


@pytest.mark.subprocess
def test_sigkill_after_the_first_checkpoint_then_the_same_command_resumes(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "keras_s2s", "train", "--task", "dates", "--train-size", "1500",
               "--test-size", "20", "--epochs", "2", "--checkpoint-dir", str(run)]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + 300
        # TensorFlow writes the `checkpoint` state file only once a checkpoint is complete.
        while not (run / "checkpoint").exists() and first.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.1)
        time.sleep(0.5)  # into the second epoch: its steps so far are lost, nothing else
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=60) == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    saved = tf.train.get_checkpoint_state(str(run)).model_checkpoint_path
    assert saved.endswith("ckpt-1")

    second = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = re.search(r"Resumed from (\S+) after epoch (\d+) \(optimizer step (\d+)\)", second.stdout)
    assert resumed, second.stdout[-2000:]
    assert resumed.group(1) == saved and resumed.group(2) == "1"
    steps_per_epoch = int(resumed.group(3))
    assert steps_per_epoch > 0
    assert "Epoch 1/2" not in second.stdout and "Epoch 2/2" in second.stdout
    history = json.loads((run / "history.json").read_text())
    assert [epoch["epoch"] for epoch in history] == [1, 2]
    # The optimizer went on counting from the restored state: two epochs of steps, not one.
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run)))
    iterations = [key for key in final.get_variable_to_shape_map() if key.startswith("optimizer/")
                  and "iteration" in key]
    assert [int(final.get_tensor(key)) for key in iterations] == [2 * steps_per_epoch]
    assert json.loads((run / "results.json").read_text())["validation"]


def rebuilt(run):
    """The model of a run directory, as a new process would rebuild it before resuming."""
    keras.utils.set_random_seed(0)
    return Seq2Seq.from_spec(run)


@pytest.fixture
def two_epochs(tiny_runs, copy_run):
    """A copy of the session's tiny run holding ckpt-1 and ckpt-2 (conftest.py), and its pairs."""
    return copy_run(2), tiny_runs["pairs"]


def resume_to(run, pairs, epochs, capsys=None):
    model = rebuilt(run)
    history = train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=epochs),
                    checkpoint_dir=str(run), verbose=1 if capsys else 0)
    return model, history


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_in_use(two_epochs, capsys):
    run, pairs = two_epochs
    # What a kill in the middle of writing ckpt-3 leaves: TensorFlow's temporary shard
    # folder and a half-written index, with the `checkpoint` state file still at ckpt-2.
    (run / "ckpt-3_temp").mkdir()
    (run / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
    (run / "ckpt-3.index").write_bytes(b"partial")
    _, history = resume_to(run, pairs, 3, capsys)
    assert "after epoch 2" in capsys.readouterr().out
    assert [epoch["epoch"] for epoch in history] == [1, 2, 3]
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-3")
    tf.train.load_checkpoint(str(run / "ckpt-3"))  # rewritten whole by the finished epoch


@pytest.mark.parametrize("damage", ["garbage data", "truncated data", "missing data", "garbage index"])
def test_an_unreadable_newest_checkpoint_is_set_aside_and_the_previous_one_used(
        two_epochs, caplog, capsys, damage):
    run, pairs = two_epochs
    data = next(run.glob("ckpt-2.data-*"))
    if damage == "garbage data":
        data.write_bytes(os.urandom(data.stat().st_size))
    elif damage == "truncated data":
        data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    elif damage == "missing data":
        data.unlink()
    else:
        (run / "ckpt-2.index").write_bytes(os.urandom(200))
    damaged = {path.name: path.read_bytes() for path in run.glob("ckpt-2.*")}

    _, history = resume_to(run, pairs, 3, capsys)
    assert "ckpt-2 cannot be read" in caplog.text
    assert "deprecated" not in caplog.text  # rewriting the state file says nothing of TensorFlow's API
    assert re.search(r"Resumed from \S+ckpt-1 after epoch 1 ", capsys.readouterr().out)
    assert [epoch["epoch"] for epoch in history] == [1, 2, 3]
    # The damaged files were moved aside intact, not deleted and not overwritten.
    aside = {path.name: path.read_bytes() for path in (run / "unreadable").rglob("ckpt-2.*")}
    assert aside == damaged
    state = tf.train.get_checkpoint_state(str(run))
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == [
        "ckpt-1", "ckpt-2", "ckpt-3"]
    for name in ("ckpt-2", "ckpt-3"):  # both written again by this run, and readable
        tf.train.load_checkpoint(str(run / name))


def test_a_lost_state_file_is_not_taken_for_a_fresh_start(two_epochs):
    run, pairs = two_epochs
    (run / "checkpoint").unlink()
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    with pytest.raises(ValueError, match=r"ckpt-1.index, ckpt-2.index.*no readable 'checkpoint'"):
        resume_to(run, pairs, 3)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_no_readable_checkpoint_at_all_is_an_error_that_names_them(two_epochs):
    run, pairs = two_epochs
    for index in run.glob("ckpt-*.index"):
        index.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"No checkpoint in .* can be read: .*ckpt-2.*ckpt-1"):
        resume_to(run, pairs, 3)
    assert not (run / "unreadable").exists()  # nothing is moved when nothing can be used


def test_a_nan_loss_after_a_checkpoint_keeps_every_saved_file(two_epochs):
    run, pairs = two_epochs
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    model = rebuilt(run)
    original_sums = model.teacher_forcing_sums

    def diverging(source_ids, target_ids, training=False):
        loss_sum, token_count, correct = original_sums(source_ids, target_ids, training)
        return loss_sum * float("nan"), token_count, correct

    model.teacher_forcing_sums = diverging
    with pytest.raises(FloatingPointError, match="epoch 3, step 1"):
        train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=3), checkpoint_dir=str(run),
              verbose=0)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
