"""MirroredStrategy over 2 logical CPU devices trains exactly as one device does.

The runs happen in a fresh process (tests/distributed_training.py): logical devices can
only be configured before TensorFlow initialises, which this test session already did.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from tests.helpers import ENV

pytestmark = pytest.mark.subprocess  # the runs happen in one fresh process

SCRIPT = pathlib.Path(__file__).with_name("distributed_training.py")


@pytest.fixture(scope="module", params=["dates", "dates-transformer"])
def runs(tmp_path_factory, request):
    """The runs of one architecture: the RNN's dates preset, then the Transformer's."""
    checkpoints = tmp_path_factory.mktemp("mirrored")
    result = subprocess.run([sys.executable, str(SCRIPT), str(checkpoints), request.param],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "preset": request.param}


def test_two_replicas_split_batches_of_every_size(runs):
    assert runs["replicas"] == 2
    assert min(runs["batch_rows"]) < 24 < max(runs["batch_rows"]) + 1  # uneven last batches too


@pytest.mark.parametrize("path", ["loop", "fit"])
def test_losses_and_weights_equal_the_single_device_run(runs, path):
    single, mirrored = runs[f"{path}_single"], runs[f"{path}_mirrored"]
    assert len(single) == len(mirrored) == 2 and single[1] < single[0]
    np.testing.assert_allclose(mirrored[0], single[0], rtol=1e-4)
    # After an epoch of Adam updates the rounding of the replicas' summed gradients has grown:
    # layer normalisation's small-variance directions magnify it more in the Transformer.
    rnn = runs["preset"] == "dates"
    np.testing.assert_allclose(mirrored[1], single[1], rtol=1e-4 if rnn else 3e-3)
    # Adam divides by the root of tiny second moments, which magnifies float rounding a little
    # (the Transformer's largest weight difference after two epochs was 0.017 when measured).
    assert runs[f"{path}_weight_difference"] < (1e-3 if rnn else 5e-2)


def test_custom_loop_and_fit_agree_under_the_strategy(runs):
    np.testing.assert_allclose(runs["loop_mirrored"], runs["fit_mirrored"], rtol=1e-4)


def test_a_checkpoint_written_by_replicas_restores_on_one_device(runs):
    assert runs["restored_difference"] == 0.0


def test_a_model_built_outside_the_scope_is_refused(runs):
    assert "scope" in runs["outside_scope_error"]
