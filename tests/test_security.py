"""Security: no code from data, no shell, no unsafe deserialisation, no escaping archives.

The crafted-zip tests live in test_download.py beside the helper they check.
"""

import pathlib
import re
import shutil

import keras
import numpy as np
import pytest
from tests.helpers import keras_s2s

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Each of these runs or revives code that a file, a request or a command line could choose.
FORBIDDEN = {
    "pickle": r"\b(c?pickle|dill|joblib|marshal)\b",
    "eval": r"(?<![\w.])eval\(",
    "exec": r"(?<![\w.])exec\(",
    "shell=True": r"shell\s*=\s*True",
    "os.system": r"os\.(system|popen)\(",
    "unsafe Keras loading": r"safe_mode\s*=\s*False",
    "unsafe NumPy loading": r"allow_pickle\s*=\s*True",
}


def python_files():
    for folder in ("keras_s2s", "tests", "benchmarks", "serving"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_code_is_revived_from_data_and_no_shell_is_started():
    this_file = pathlib.Path(__file__).resolve()
    found = []
    for path in python_files():
        if path.resolve() == this_file:  # the patterns themselves are written here
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name, pattern in FORBIDDEN.items():
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {name}: {line.strip()}")
    assert not found, "\n".join(found)
    assert any(True for _ in python_files())  # the scan did look at files


def test_keras_files_with_code_in_them_are_refused(tmp_path):
    # A Lambda layer stores Python bytecode; safe mode (Keras' default, which every
    # load_model call here keeps) refuses to run it.
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.models.load_model(path)
    np.testing.assert_allclose(model.predict(np.ones((1, 2)), verbose=0), [[2.0, 2.0]])


HOSTILE_NAME = "a; touch pwned1 && $(touch pwned2) `touch pwned3` | rm -rf keep ' \" *"


@pytest.mark.subprocess
def test_cli_paths_are_file_names_never_shell(dates_export, tmp_path):
    (tmp_path / "keep").mkdir()
    model_dir = tmp_path / HOSTILE_NAME
    shutil.copytree(dates_export, model_dir)
    sources = tmp_path / f"{HOSTILE_NAME}.txt"
    sources.write_text("March 3, 2021\n", encoding="utf-8")
    result = keras_s2s("translate", "--model", model_dir, "March 3, 2021", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"[\d-]*\n", result.stdout)
    missing = keras_s2s("evaluate", "--model", model_dir, "--source", tmp_path / "$(touch pwned4)",
                        "--reference", sources, cwd=tmp_path)
    assert missing.returncode == 2 and "$(touch pwned4)" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not list(tmp_path.glob("pwned*")) and (tmp_path / "keep").is_dir()
