"""Training precision: "auto" reads the CPU, a bfloat16 run resumes in float32, and what is
scored and exported is the float32 model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import precision
from keras_s2s.config import TrainConfig
from keras_s2s.runs import RunOptions, train_run
from keras_s2s.training import load_trained_model


def test_auto_picks_bfloat16_only_where_the_cpu_has_its_instructions(tmp_path):
    assert precision.keras_policy("auto", {"avx2", "avx512f", "avx512_bf16"}) == "mixed_bfloat16"
    assert precision.keras_policy("auto", {"avx2", "amx_bf16", "amx_tile"}) == "mixed_bfloat16"
    assert precision.keras_policy("auto", {"avx2", "avx512f"}) == "float32"
    assert precision.keras_policy("mixed_bfloat16", set()) == "mixed_bfloat16"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_bf16\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()
    with pytest.raises(ValueError, match="precision"):
        precision.keras_policy("bfloat16")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="half")


@pytest.mark.slow  # two short trainings: over 20 s on 2 cores
def test_a_bfloat16_run_exports_float32_and_resumes_in_float32(tmp_path):
    options = RunOptions(checkpoint_dir=str(tmp_path / "run"), task="dates", train_size=300,
                         test_size=20, epochs=1, precision="mixed_bfloat16",
                         export_path=str(tmp_path / "export"))
    model, history, results = train_run(options, verbose=0)
    assert results["precision"] == "mixed_bfloat16" and np.isfinite(history[0]["loss"])
    # Scored and exported in float32, with the weights the bfloat16 training left.
    assert model.compute_dtype == "float32"
    exported = tf.saved_model.load(str(tmp_path / "export"))
    assert all(variable.dtype == tf.float32 for variable in exported.serving_variables)
    texts = tf.constant(["March 3, 2021", "1 jan 1999"])
    restored = load_trained_model(options.checkpoint_dir)
    np.testing.assert_array_equal(exported.greedy(text=texts)["text"],
                                  restored.translator().greedy(texts)["text"])
    # The checkpoint holds float32 weights: the same run goes on in float32.
    resumed = RunOptions(checkpoint_dir=options.checkpoint_dir, task="dates", train_size=300,
                         test_size=20, epochs=2, precision="float32")
    _, history, results = train_run(resumed, verbose=0)
    assert len(history) == 2 and results["precision"] == "float32"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["precision"] == "float32"
