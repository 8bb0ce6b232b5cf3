"""Shared fixtures: small models trained once per test session with real TensorFlow."""

import os
import pathlib
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from keras_s2s import tasks  # noqa: E402
from keras_s2s.config import TrainConfig  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.training import make_optimizer, train  # noqa: E402
from tests.helpers import small_config  # noqa: E402


# Fixtures that train (or export) a model the first time a session asks for one.
TRAINING_FIXTURES = {"rnn_dates_model", "dates_model", "korean_model", "transformer_dates_model",
                     "rnn_dates_export", "dates_export", "transformer_dates_export", "tiny_runs",
                     "copy_run", "any_dates_model", "any_dates_export", "marian_dates_model",
                     "marian_dates_export"}


def pytest_collection_modifyitems(items):
    """Marks the tests that wait for a trained model `trained`; a test that starts another
    process or a notebook kernel is also `slow` (seconds of start-up each, minutes in all),
    so the default run stays in this process."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trained)
        if item.get_closest_marker("subprocess") or item.get_closest_marker("notebooks"):
            item.add_marker(pytest.mark.slow)


def train_small(task, train_size, epochs, seed=0, preset_name=None, **config_changes):
    """A preset model (the task's own unless `preset_name`) fitted on a small sample of an
    embedded task; returns (model, history, test pairs)."""
    model_config, train_config = small_config(preset_name or task, **config_changes)
    train_pairs, test_pairs = tasks.load_task(task, train_size, 200, seed=seed)
    keras.utils.set_random_seed(seed)
    model = Seq2Seq.from_pairs(train_pairs, model_config)
    model.compile(optimizer=make_optimizer(train_config))
    # shuffle=False: the dataset shuffles itself (Keras ignores the flag for one, and says so).
    history = model.fit(make_dataset(train_pairs, model, 64, seed=seed), epochs=epochs, verbose=0,
                        shuffle=False)
    return model, history, test_pairs


@pytest.fixture(scope="session")
def rnn_dates_model():
    """A dates model trained for a few seconds: (model, history, held-out pairs)."""
    return train_small("dates", train_size=4000, epochs=4)


@pytest.fixture(scope="session")
def dates_model(rnn_dates_model):
    """The RNN dates model (`any_dates_model` gives each architecture in turn)."""
    return rnn_dates_model


@pytest.fixture(scope="session")
def korean_model():
    """A toy-ko (English -> Korean) model trained for a few seconds."""
    return train_small("toy-ko", train_size=4000, epochs=4)


@pytest.fixture(scope="session")
def rnn_dates_export(rnn_dates_model, tmp_path_factory):
    """The dates model exported as a SavedModel; returns its directory."""
    return rnn_dates_model[0].export(str(tmp_path_factory.mktemp("export") / "dates" / "1"))


@pytest.fixture(scope="session")
def dates_export(rnn_dates_export):
    """The RNN dates export (`any_dates_export` gives each architecture in turn)."""
    return rnn_dates_export


@pytest.fixture(scope="session")
def transformer_dates_model():
    """The dates task with a small Transformer, trained for a few seconds."""
    return train_small("dates", train_size=4000, epochs=5, preset_name="dates-transformer")


@pytest.fixture(scope="session")
def transformer_dates_export(transformer_dates_model, tmp_path_factory):
    """The Transformer dates model exported as a SavedModel; returns its directory."""
    return transformer_dates_model[0].export(
        str(tmp_path_factory.mktemp("export") / "dates-transformer" / "1"))


@pytest.fixture(scope="session")
def marian_dates_model(tmp_path_factory):
    """A random Marian Transformer (post-norm, swish; its SentencePiece models learned from
    dates pairs) imported by `load_marian`, then fitted on the dates task for a few seconds:
    what a user's fine-tuned OPUS-MT model is, at the dates task's size."""
    from keras_s2s.pretrained import load_marian
    from tests.marian_models import write_marian_model

    train_pairs, test_pairs = tasks.load_task("dates", 4000, 200, seed=0)
    directory = tmp_path_factory.mktemp("marian")
    # The size and training of the dates-transformer preset; greedy by default, as it is.
    write_marian_model(str(directory), pairs=train_pairs, units=64, heads=4, ff_units=128)
    keras.utils.set_random_seed(0)
    model = load_marian(str(directory), max_length=24, beam_size=1)
    _, train_config = small_config("dates-transformer")
    model.compile(optimizer=make_optimizer(train_config))
    history = model.fit(make_dataset(train_pairs, model, 64), epochs=5, verbose=0, shuffle=False)
    return model, history, test_pairs


@pytest.fixture(scope="session")
def marian_dates_export(marian_dates_model, tmp_path_factory):
    """The imported and fine-tuned Marian dates model, exported as a SavedModel."""
    return marian_dates_model[0].export(str(tmp_path_factory.mktemp("export") / "marian" / "1"))


# The imported Marian model takes the same hostile-input, concurrency, serving and export
# tests as the two architectures trained here; slow, as it adds a third pass to each.
@pytest.fixture(scope="module", params=["rnn", "transformer",
                                        pytest.param("marian", marks=pytest.mark.slow)])
def architecture(request):
    """Runs a module's tests once per architecture: those of every test that asks for it,
    or for `any_dates_model` or `any_dates_export`."""
    return request.param


@pytest.fixture(scope="module")
def any_dates_model(architecture, request):
    """The dates model of each architecture in turn: `rnn_dates_model`, `transformer_dates_model`."""
    return request.getfixturevalue(f"{architecture}_dates_model")


@pytest.fixture(scope="module")
def any_dates_export(architecture, request):
    """The dates export of each architecture in turn."""
    return request.getfixturevalue(f"{architecture}_dates_export")


def tiny_dates_model(pairs, seed=0):
    """A dates model of 16 units: what tests of checkpoints and resumption need, built in a second."""
    model_config, _ = small_config("dates", units=16, embedding_dim=8, attention_units=8)
    keras.utils.set_random_seed(seed)
    return Seq2Seq.from_pairs(pairs, model_config)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Checkpoint directories as `keras-s2s train` leaves them, of one tiny dates model trained
    on 200 pairs: {1: after one epoch (ckpt-1), 2: resumed for a second (ckpt-1, ckpt-2),
    "pairs": its training pairs}. Tests that change a directory change a copy (`copy_run`)."""
    pairs, _ = tasks.load_task("dates", 200, 10)
    model = tiny_dates_model(pairs)
    runs = {"pairs": pairs}
    for epochs in (1, 2):
        runs[epochs] = tmp_path_factory.mktemp(f"tiny_run_{epochs}")
        if epochs > 1:  # the second starts from a copy of the first, as a resumed run does
            shutil.copytree(runs[epochs - 1], runs[epochs], dirs_exist_ok=True)
        model.save_spec(runs[epochs], TrainConfig(epochs=epochs))
        train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=epochs),
              checkpoint_dir=str(runs[epochs]), verbose=0)
    return runs


@pytest.fixture
def copy_run(tiny_runs, tmp_path):
    """copy_run(epochs) -> a fresh copy of the tiny run after `epochs` (1 or 2), as tmp_path / "run"."""
    def copy(epochs):
        return pathlib.Path(shutil.copytree(tiny_runs[epochs], tmp_path / "run"))
    return copy
