"""Shared fixtures: small models trained once per test session with real TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from keras_s2s import tasks  # noqa: E402
from keras_s2s.config import preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.training import make_optimizer  # noqa: E402


def train_small(task, train_size, epochs, seed=0, **config_changes):
    """A preset model fitted on a small sample of an embedded task; returns (model, history, test pairs)."""
    model_config, train_config = preset(task)
    for key, value in config_changes.items():
        setattr(model_config, key, value)
    train_pairs, test_pairs = tasks.load_task(task, train_size, 200, seed=seed)
    keras.utils.set_random_seed(seed)
    model = Seq2Seq.from_pairs(train_pairs, model_config)
    model.compile(optimizer=make_optimizer(train_config))
    history = model.fit(make_dataset(train_pairs, model, 64, seed=seed), epochs=epochs, verbose=0)
    return model, history, test_pairs


@pytest.fixture(scope="session")
def dates_model():
    """A dates model trained for a few seconds: (model, history, held-out pairs)."""
    return train_small("dates", train_size=4000, epochs=4)


@pytest.fixture(scope="session")
def korean_model():
    """A toy-ko (English -> Korean) model trained for a few seconds."""
    return train_small("toy-ko", train_size=4000, epochs=4)


@pytest.fixture(scope="session")
def dates_export(dates_model, tmp_path_factory):
    """The dates model exported as a SavedModel; returns its directory."""
    return dates_model[0].export(str(tmp_path_factory.mktemp("export") / "dates" / "1"))
