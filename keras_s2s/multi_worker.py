"""Training across processes or machines: MultiWorkerMirroredStrategy from TF_CONFIG.

Every worker runs the same program. TensorFlow reads the cluster from the `TF_CONFIG`
environment variable, e.g. for the second of two workers on one machine:

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]},
                "task": {"type": "worker", "index": 1}}'

The replicas then train as `keras_s2s.distribute` describes, one per worker. What this
module adds is what a job of several processes needs around that:
- a worker whose peer never answers stops within `timeout_seconds`, naming the address and
  its TF_CONFIG entry (TensorFlow itself waits for every worker without end);
- one worker, the chief, writes the run's files; the others write where nothing is kept
  (`writing_directory`), and all of them resume from the chief's checkpoints, which is why
  the workers must share the checkpoint directory (one machine, or a shared file system);
- `fit` resumes after a lost worker with `ChiefBackupAndRestore`.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import keras
import tensorflow as tf


def cluster_of(tf_config=None):
    """The TF_CONFIG (a dict) of a job of several tasks, or None when there is no such job."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text:
        return None
    try:
        config = json.loads(text)
        tasks = [address for addresses in config["cluster"].values() for address in addresses]
        config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG={text!r:.200} is not a cluster TensorFlow reads "
                         f"({type(error).__name__}: {error}); see docs/scaling.md.") from None
    return config if len(tasks) > 1 else None


def strategy_from_environment(timeout_seconds=120):
    """A `MultiWorkerMirroredStrategy` for the cluster in TF_CONFIG, or None without one.

    A worker whose peers have not all joined within `timeout_seconds` is ended, with a
    message naming the tasks that do not answer (`keras_s2s.peer_watchdog`). The
    strategy's collective operations give up after `timeout_seconds` too, so a worker lost
    during training stops the others with an error instead of leaving them waiting.
    """
    if cluster_of() is None:
        return None
    watchdog = subprocess.Popen([sys.executable, "-m", "keras_s2s.peer_watchdog", str(os.getpid()),
                                 str(timeout_seconds)])
    try:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        watchdog.kill()
        watchdog.wait()


def is_chief(strategy=None):
    """Whether this worker writes the run's files: the chief, worker 0 without one, or the
    only process."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def worker_position(strategy=None):
    """(this worker's index, number of workers) of the cluster; (0, 1) in a single process."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1
    roles = resolver.cluster_spec().as_dict()
    chiefs = len(roles.get("chief", []))
    index = resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)
    return index, chiefs + len(roles.get("worker", []))


@contextlib.contextmanager
def writing_directory(directory, strategy=None):
    """`directory` for the chief; for any other worker a scratch directory deleted on exit.

    Every worker saves (saving may take part in the replicas' collective operations), but
    two writers of one directory would overwrite each other.
    """
    if directory is None or is_chief(strategy):
        yield directory
        return
    scratch = tempfile.mkdtemp(prefix="keras-s2s-worker-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_same_on_every_worker(strategy, text, what):
    """Raises ValueError unless every worker passes the same `text` (e.g. its vocabulary):
    workers that built different models would train nonsense without an error."""
    if worker_position(strategy)[1] == 1:
        return
    # 52 bits of a digest, exact in a float64, which every collective reduces.
    digest = float(int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:13], 16))
    every = strategy.gather(strategy.run(lambda: tf.constant([digest], tf.float64)), axis=0)
    if len(set(every.numpy().tolist())) > 1:
        raise ValueError(f"The workers built different {what}; every worker must read the same "
                         "data with the same options.")


class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for several workers: every worker restores from
    `backup_dir`, only the chief writes to it (the others' copies would race with its own)."""

    def _save_model(self):
        if is_chief(self.model.distribute_strategy):
            super()._save_model()

    def on_train_end(self, logs=None):
        if is_chief(self.model.distribute_strategy):
            super().on_train_end(logs)
