"""Reading a cluster from TF_CONFIG, and naming the peers that do not answer (in this process;
tests/test_multi_worker.py runs real workers)."""

import json
import socket
import types

import pytest
import tensorflow as tf

from keras_s2s import multi_worker, peer_watchdog


def tf_config(workers, index, chief=None):
    cluster = {"worker": workers, **({"chief": [chief]} if chief else {})}
    role = {"type": "chief", "index": 0} if index == "chief" else {"type": "worker", "index": index}
    return json.dumps({"cluster": cluster, "task": role})


@pytest.mark.parametrize("text, expected", [
    ("", None),
    (tf_config(["127.0.0.1:1"], 0), None),  # one task is no cluster
    (tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1), "worker"),
])
def test_a_cluster_is_read_from_tf_config(text, expected):
    cluster = multi_worker.cluster_of(text)
    assert (cluster and cluster["task"]["type"]) == expected


@pytest.mark.parametrize("text", ["{not json", '{"cluster": {"worker": ["a:1", "b:2"]}}', "[1, 2]"])
def test_a_malformed_tf_config_is_refused_by_name(text):
    with pytest.raises(ValueError, match="TF_CONFIG=.*is not a cluster TensorFlow reads"):
        multi_worker.cluster_of(text)


@pytest.mark.parametrize("index, chief, position, is_chief", [
    (0, None, (0, 2), True), (1, None, (1, 2), False),
    ("chief", "127.0.0.1:9", (0, 3), True), (0, "127.0.0.1:9", (1, 3), False),
])
def test_the_chief_and_each_workers_place(monkeypatch, index, chief, position, is_chief):
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:7", "127.0.0.1:8"], index, chief))
    # What a MultiWorkerMirroredStrategy exposes of its cluster: its resolver.
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    strategy = types.SimpleNamespace(cluster_resolver=resolver)
    assert multi_worker.worker_position(strategy) == position
    assert multi_worker.is_chief(strategy) == is_chief


def test_a_single_process_is_its_own_chief(tmp_path):
    assert multi_worker.worker_position() == (0, 1) and multi_worker.is_chief()
    with multi_worker.writing_directory(str(tmp_path)) as directory:
        assert directory == str(tmp_path)


def test_the_watchdog_names_only_the_peers_that_do_not_answer():
    listening, closed = socket.socket(), socket.socket()
    listening.bind(("127.0.0.1", 0)), closed.bind(("127.0.0.1", 0))
    listening.listen()
    addresses = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in (listening, closed)]
    closed.close()
    try:
        config = json.loads(tf_config(["127.0.0.1:1"] + addresses, 0))
        assert peer_watchdog.silent_peers(config) == [
            f"worker 2 at {addresses[1]} (TF_CONFIG cluster.worker[2])"]
    finally:
        listening.close()
