"""MultiWorkerMirroredStrategy really run: two worker processes on 127.0.0.1 train as one
process does, shard their input without overlap, survive a killed worker, and give up on
a peer that never answers with its address named.

Each worker is tests/multi_worker_training.py in a process of its own, with a TF_CONFIG.
"""

import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import ENV

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

SCRIPT = Path(__file__).with_name("multi_worker_training.py")
SINGLE_ENV = {key: value for key, value in ENV.items() if key != "TF_CONFIG"}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(arguments, workers=2, started=None, ports=None, env=None, command=None):
    """Starts the workers of one cluster (all of them, or those in `started`), each running
    the worker script with `arguments`, or `command`."""
    command = command or [sys.executable, str(SCRIPT), *map(str, arguments)]
    ports = ports or free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = {}
    for index in started if started is not None else range(workers):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes[index] = subprocess.Popen(
            command, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**SINGLE_ENV, "TF_CONFIG": tf_config, **(env or {})})
    return processes, ports


def finish(processes, timeout=600):
    for process in processes.values():
        _, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr[-3000:]


def run_single(arguments):
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)],
                            capture_output=True, text=True, env=SINGLE_ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def outputs(directory, task):
    weights = np.load(directory / f"{task}.npz")
    return (json.loads((directory / f"{task}.json").read_text()),
            [weights[f"arr_{index}"] for index in range(len(weights.files))])


def largest_difference(weights, others):
    return max(float(np.max(np.abs(first - second))) for first, second in zip(weights, others))


@pytest.mark.parametrize("path", ["loop", "fit"])
@pytest.mark.parametrize("preset", ["dates", "dates-transformer"])
def test_two_workers_train_as_one_process_on_the_same_global_batches(tmp_path, preset, path):
    cluster, single = tmp_path / "cluster", tmp_path / "single"
    cluster.mkdir(), single.mkdir()
    # 300 pairs, 13 steps an epoch, as in the two-replica test in one process: over more
    # steps Adam magnifies the rounding of summed gradients further in the Transformer.
    finish(start_workers([cluster, preset, path, 2, "-", 300])[0])
    run_single([single, preset, path, 2, "-", 300])
    (chief, chief_weights), (other, other_weights) = outputs(cluster, "worker0"), outputs(cluster, "worker1")
    reference, reference_weights = outputs(single, "single")
    assert chief["replicas"] == 2 and chief["chief"] and not other["chief"]
    assert len(chief["losses"]) == 2 and chief["losses"][1] < chief["losses"][0]
    # The tolerances of the two-replica test in one process (tests/test_distribute.py).
    rnn = preset == "dates"
    print(f"{preset} {path}: losses {chief['losses']} against {reference['losses']}, largest "
          f"weight difference {largest_difference(chief_weights, reference_weights):.2e}")
    np.testing.assert_allclose(chief["losses"][0], reference["losses"][0], rtol=1e-4)
    np.testing.assert_allclose(chief["losses"][1], reference["losses"][1], rtol=1e-4 if rnn else 3e-3)
    assert largest_difference(chief_weights, reference_weights) < (1e-3 if rnn else 5e-2)
    assert largest_difference(chief_weights, other_weights) == 0.0  # the replicas stay in sync


def test_workers_share_the_batches_and_read_files_of_their_own(tmp_path):
    cluster, single = tmp_path / "cluster", tmp_path / "single"
    cluster.mkdir(), single.mkdir()
    finish(start_workers([cluster, "dates", "batches", 1])[0])
    run_single([single, "dates", "batches", 1])
    first, second = (json.loads((cluster / f"worker{index}.json").read_text()) for index in (0, 1))
    everything = json.loads((single / "single.json").read_text())
    for name in ("in_memory", "streamed_files"):
        # No row is seen twice, none is missed: every global batch is split between the two.
        assert not Counter(first[name]) & Counter(second[name])
        assert Counter(first[name]) + Counter(second[name]) == Counter(everything[name])
    # With several files each worker reads files of its own: the first 600 pairs, or the rest.
    assert len(first["streamed_files"]) == len(second["streamed_files"]) == 600
    assert set(first["streamed_files"]).isdisjoint(second["streamed_files"])


def checkpoint_steps(checkpoint_dir):
    """The optimizer's step count in the newest checkpoint of a custom-loop run."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    name = next(name for name, _ in tf.train.list_variables(latest) if "optimizer/_iterations" in name)
    return int(tf.train.load_variable(latest, name))


@pytest.mark.parametrize("path", ["loop", "fit"])
def test_a_job_that_lost_a_worker_resumes_where_it_stopped(tmp_path, path):
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    for directory in (uninterrupted, interrupted):
        directory.mkdir()
    epochs = 4
    finish(start_workers([uninterrupted, "dates", path, epochs, uninterrupted / "run"])[0])

    run = interrupted / "run"
    processes, _ = start_workers([interrupted, "dates", path, epochs, run])
    marker = run / ("ckpt-2.index" if path == "loop" else "training_metadata.json")
    deadline = time.monotonic() + 300
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the job never saved its first epochs"
    time.sleep(0.3)  # into the next epoch
    processes[1].send_signal(signal.SIGKILL)
    # The survivor stops with an error (its peer is gone) instead of waiting for ever.
    killed = time.monotonic()
    _, stderr = processes[0].communicate(timeout=240)
    assert processes[0].returncode != 0
    print(f"the survivor stopped {time.monotonic() - killed:.1f} s after the kill: "
          f"{stderr.strip().splitlines()[-1][:300]}")
    assert not (interrupted / "worker0.npz").exists()

    finish(start_workers([interrupted, "dates", path, epochs, run])[0])  # the same job, again
    resumed, resumed_weights = outputs(interrupted, "worker0")
    expected, expected_weights = outputs(uninterrupted, "worker0")
    assert len(resumed["losses"]) < epochs or path == "loop"
    if path == "loop":
        # The whole history is kept, the epochs before the loss from the checkpoint's run.
        np.testing.assert_allclose(resumed["losses"], expected["losses"], rtol=1e-4)
        assert checkpoint_steps(run) == checkpoint_steps(uninterrupted / "run")
    else:
        assert resumed["optimizer_steps"] == expected["optimizer_steps"]  # no step twice
    assert largest_difference(resumed_weights, expected_weights) < 1e-4


def test_a_worker_whose_peer_never_answers_names_it_and_gives_up(tmp_path):
    started = time.monotonic()
    processes, ports = start_workers([tmp_path, "dates", "loop", 1], started=[0],
                                     env={"PEER_TIMEOUT_SECONDS": "5"})
    _, stderr = processes[0].communicate(timeout=120)
    assert processes[0].returncode == -9  # ended by its watchdog, the only way out of the wait
    assert (f"worker 1 at 127.0.0.1:{ports[1]} (TF_CONFIG cluster.worker[1])" in stderr)
    assert time.monotonic() - started < 60


def test_keras_s2s_train_takes_the_cluster_from_tf_config(tmp_path):
    """Two `keras-s2s train` processes of one job: only the chief writes the run's folder."""
    run, export = tmp_path / "run", tmp_path / "export"
    command = [sys.executable, "-m", "keras_s2s", "train", "--task", "dates", "--train-size", "600",
               "--test-size", "50", "--epochs", "2", "--checkpoint-dir", str(run), "--export", str(export)]
    scratch = tmp_path / "scratch"  # the other worker's temporary folder
    scratch.mkdir()
    finish(start_workers([], command=command, env={"TMPDIR": str(scratch)})[0])
    assert not list(scratch.iterdir())  # its scratch copy of the run is gone
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    assert sorted(path.name for path in run.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    assert "validation" in json.loads((run / "results.json").read_text())
    assert (export / "saved_model.pb").exists()
