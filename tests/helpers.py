"""What many test modules share: the environment of a child process, the command line run in
another process or in this one, dates to translate, and small validated model configs."""

import dataclasses
import os
import shutil
import subprocess
import sys

from keras_s2s import cli
from keras_s2s.config import preset

# A child process without TensorFlow's C++ log lines.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# Dates in the forms the dates task reads, the same date among them, for models trained on it.
DATES = ["Wednesday, March 3, 2021", "3rd of March 2021", "03/03/2021", "MAR 3 2021",
         "the 1st of January, 1900"]


def keras_s2s(*args, cwd=None, timeout=600):
    """`keras-s2s ARGS` in a new process: the console script when it is installed, else the
    module (both call cli.main). Returns the CompletedProcess, text captured."""
    installed = shutil.which("keras-s2s")
    command = [installed] if installed else [sys.executable, "-m", "keras_s2s"]
    return subprocess.run(command + [str(arg) for arg in args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=timeout)


def run_cli(capsys, *args):
    """`keras-s2s ARGS` in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def small_config(preset_name="dates", **changes):
    """(ModelConfig, TrainConfig) of a preset with `changes`, through dataclasses.replace so
    that ModelConfig validates them."""
    model_config, train_config = preset(preset_name)
    return dataclasses.replace(model_config, **changes), train_config


def write_apple_pairs(directory):
    """pairs.tsv in `directory`: 60 English -> Korean pairs with one malformed line (line 31)."""
    path = directory / "pairs.tsv"
    lines = [f"I eat {n} apples.\t나는 사과 {n}개를 먹는다." for n in range(60)]
    path.write_text("\n".join(lines[:30] + ["a line without a tab"] + lines[30:]) + "\n",
                    encoding="utf-8")
    return path
