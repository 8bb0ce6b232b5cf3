"""Ends a worker that waits too long for its cluster, naming the peers that do not answer.

`multi_worker.strategy_from_environment` starts this in a process of its own before it
creates the strategy, and stops it once the strategy exists. TensorFlow waits for every
worker of a MultiWorkerMirroredStrategy inside one call that keeps Python's interpreter
lock, so no thread or signal handler of the waiting process runs until the wait ends;
a second process can still act. Only the standard library is imported, so it starts at once.

    python -m keras_s2s.peer_watchdog WORKER_PID SECONDS   (TF_CONFIG in the environment)
"""

import json
import os
import signal
import socket
import sys
import time


def silent_peers(tf_config):
    """'worker 1 at host:port (TF_CONFIG cluster.worker[1])' for each other task that
    accepts no connection."""
    own = (tf_config["task"]["type"], int(tf_config["task"]["index"]))
    return [f"{role} {index} at {address} (TF_CONFIG cluster.{role}[{index}])"
            for role, addresses in tf_config["cluster"].items()
            for index, address in enumerate(addresses)
            if (role, index) != own and not answers(address)]


def answers(address, seconds=2.0):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False


def main(worker_pid, seconds):
    time.sleep(seconds)
    if os.getppid() != worker_pid:  # the worker is gone already
        return
    tf_config = json.loads(os.environ["TF_CONFIG"])
    task = tf_config["task"]
    peers = "; ".join(silent_peers(tf_config)) or "every peer accepts connections, but one never joined"
    sys.stderr.write(f"keras-s2s: {task['type']} {task['index']} waited {seconds:g} s for the "
                     f"cluster in TF_CONFIG and stops: {peers}. Start every task of the "
                     "cluster, or correct the address.\n")
    sys.stderr.flush()
    os.kill(worker_pid, signal.SIGKILL)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
