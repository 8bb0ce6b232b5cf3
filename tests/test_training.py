import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2s import tasks
from keras_s2s.config import TrainConfig
from keras_s2s.data import make_dataset
from keras_s2s.model import Seq2Seq
from keras_s2s.training import load_trained_model, restore_weights, train
from tests.helpers import small_config


def fresh(pairs, directory=None):
    keras.utils.set_random_seed(0)
    if directory is not None and (directory / "config.json").exists():
        return Seq2Seq.from_spec(directory)
    model_config, _ = small_config("dates", units=32)
    return Seq2Seq.from_pairs(pairs, model_config)


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_training_resumes_from_its_checkpoint(tmp_path, capsys):
    pairs, validation = tasks.load_task("dates", 200, 20)
    model = fresh(pairs)
    model.save_spec(tmp_path)
    steps_per_epoch = int(make_dataset(pairs, model, 32).cardinality())
    first = train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=1, batch_size=32),
                  validation_dataset=make_dataset(validation, model, 64, shuffle=False),
                  checkpoint_dir=str(tmp_path), verbose=0)
    assert len(first) == 1 and "val_loss" in first[0]

    # A new process would rebuild the model from the directory; so does this.
    resumed_model = fresh(pairs, tmp_path)
    history = train(resumed_model, make_dataset(pairs, resumed_model, 32),
                    TrainConfig(epochs=3, batch_size=32), checkpoint_dir=str(tmp_path), verbose=1)
    assert "Resumed from" in capsys.readouterr().out
    assert [epoch["epoch"] for epoch in history] == [1, 2, 3]
    assert history[0] == first[0]
    assert json.loads((tmp_path / "history.json").read_text()) == history
    # The optimizer state came back: three epochs of steps in all, not two.
    reloaded = load_trained_model(str(tmp_path))
    for saved, trained in zip(reloaded.get_weights(), resumed_model.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, trained)
    optimizer = keras.optimizers.Adam()
    optimizer.build(reloaded.trainable_variables)
    tf.train.Checkpoint(optimizer=optimizer).restore(
        tf.train.latest_checkpoint(str(tmp_path))).expect_partial()
    assert int(optimizer.iterations.numpy()) == 3 * steps_per_epoch


def test_finished_training_does_nothing_more(tiny_runs, copy_run):
    run = copy_run(2)  # the session's tiny run, two epochs done (conftest.py)
    model = fresh(None, run)
    restore_weights(model, str(run))
    weights = [weight.copy() for weight in model.get_weights()]
    history = train(model, make_dataset(tiny_runs["pairs"], model, 32), TrainConfig(epochs=2),
                    checkpoint_dir=str(run), verbose=0)
    assert len(history) == 2
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-2")  # no epoch was added


def test_exploding_loss_stops_with_a_clear_error(tmp_path):
    pairs, _ = tasks.load_task("dates", 200, 10)
    model = fresh(pairs)
    # A NaN in the weights makes every loss NaN, as a diverged run would.
    embeddings = model.decoder.embedding.embeddings
    embeddings.assign(np.full(embeddings.shape, np.nan, np.float32))
    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=1),
              checkpoint_dir=str(tmp_path), verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path)) is None  # nothing was saved


def test_average_checkpoints_is_the_mean_of_the_last_ones(tiny_runs):
    from keras_s2s.training import average_checkpoints

    run = str(tiny_runs[2])  # ckpt-1 and ckpt-2 of the session's tiny run (conftest.py); read only
    model = fresh(None, tiny_runs[2])
    snapshots = []
    for path in tf.train.get_checkpoint_state(run).all_model_checkpoint_paths:
        tf.train.Checkpoint(model=model).restore(path).expect_partial()
        snapshots.append([weight.numpy() for weight in model.weights])
    # The last one alone is the newest checkpoint, not the first ...
    assert [os.path.basename(path) for path in average_checkpoints(model, run, last=1)] == ["ckpt-2"]
    for weight, newest in zip(model.weights, snapshots[1]):
        np.testing.assert_array_equal(weight.numpy(), newest)
    # ... and the last two are averaged.
    averaged = average_checkpoints(model, run, last=2)
    assert [os.path.basename(path) for path in averaged] == ["ckpt-1", "ckpt-2"]
    for weight, first, second in zip(model.weights, *snapshots):
        np.testing.assert_allclose(weight.numpy(), (first + second) / 2, rtol=1e-6, atol=1e-7)


def test_cosine_schedule_decays_to_a_tenth_over_all_epochs():
    from keras_s2s.training import make_optimizer

    config = TrainConfig(epochs=4, learning_rate=1e-3, learning_rate_decay="cosine")
    schedule = make_optimizer(config, steps_per_epoch=10).learning_rate
    optimizer = make_optimizer(config, steps_per_epoch=10)
    assert float(optimizer._learning_rate(0)) == pytest.approx(1e-3)
    assert float(optimizer._learning_rate(40)) == pytest.approx(1e-4)
    assert float(optimizer._learning_rate(20)) == pytest.approx(5.5e-4, rel=1e-3)
    del schedule
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_optimizer(config)


def test_datasets_that_cannot_train_are_refused_clearly():
    pairs, _ = tasks.load_task("dates", 100, 10)
    model = fresh(pairs)
    strings = tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs])).batch(8)
    with pytest.raises(ValueError, match="integer batches"):
        train(model, strings, TrainConfig(epochs=1), verbose=0)
    with pytest.raises(ValueError, match="infinite"):
        train(model, make_dataset(pairs, model, 32).repeat(), TrainConfig(epochs=1), verbose=0)
    with pytest.raises(ValueError, match="no batch"):
        train(model, make_dataset(pairs, model, 32).take(0), TrainConfig(epochs=1), verbose=0)


def tensorboard_scalars(log_dir):
    """{(folder, tag): [(step, value), ...]} from the TensorBoard event files under log_dir."""
    scalars = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(str(log_dir), "*", "events.out.tfevents.*"))):
        folder = os.path.basename(os.path.dirname(path))
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))  # TF2 summaries hold tensors
                scalars.setdefault((folder, value.tag), []).append((event.step, number))
    return scalars


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_fit_writes_tensorboard_logs_with_the_keras_callback(tmp_path):
    pairs, validation = tasks.load_task("dates", 200, 20)
    model = fresh(pairs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(make_dataset(pairs, model, 32), epochs=2, verbose=0, shuffle=False,
                        validation_data=make_dataset(validation, model, 64, shuffle=False),
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    scalars = tensorboard_scalars(tmp_path)
    assert [value for _, value in scalars["train", "epoch_loss"]] == pytest.approx(history.history["loss"])
    assert [value for _, value in scalars["validation", "epoch_loss"]] == pytest.approx(
        history.history["val_loss"])


@pytest.mark.slow  # over 15 s on 2 cores: CI runs it with the long tests
def test_custom_loop_writes_the_scalars_fit_writes_for_tensorboard(tmp_path):
    pairs, validation = tasks.load_task("dates", 200, 20)
    model = fresh(pairs)
    history = train(model, make_dataset(pairs, model, 32), TrainConfig(epochs=2, batch_size=32),
                    validation_dataset=make_dataset(validation, model, 64, shuffle=False),
                    verbose=0, log_dir=str(tmp_path))
    scalars = tensorboard_scalars(tmp_path)
    # The names and steps keras.callbacks.TensorBoard uses: "epoch_" + metric, step = epoch - 1.
    assert set(scalars) == {("train", "epoch_loss"), ("train", "epoch_accuracy"),
                            ("train", "epoch_learning_rate"), ("validation", "epoch_loss"),
                            ("validation", "epoch_accuracy")}
    for (folder, tag), points in scalars.items():
        key = ("val_" if folder == "validation" else "") + tag[len("epoch_"):]
        assert [step for step, _ in points] == [0, 1]
        expected = [TrainConfig().learning_rate] * 2 if key == "learning_rate" else [
            epoch[key] for epoch in history]
        assert [value for _, value in points] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow  # two short runs of the dates task
def test_a_run_keeps_what_averaging_needs_and_the_vocabulary_size_asked(tmp_path):
    import dataclasses

    from keras_s2s.runs import RunOptions, train_run

    options = RunOptions(checkpoint_dir=str(tmp_path / "run"), task="dates", train_size=64,
                         test_size=8, epochs=4, average_last=4,  # the dates preset keeps 3
                         vocab_size=30)
    model, _, results = train_run(options, verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["keep_checkpoints"] == 4
    assert saved["model"]["max_source_vocab"] == saved["model"]["max_target_vocab"] == 30
    assert len(model.source_text.vocabulary) <= 30
    with pytest.raises(ValueError, match="'max_source_vocab': 30"):
        train_run(dataclasses.replace(options, vocab_size=40, epochs=5), verbose=0)
    assert sorted(path.name for path in (tmp_path / "run").glob("ckpt-*.index")) == [
        f"ckpt-{epoch}.index" for epoch in (1, 2, 3, 4)]
    assert results["averaged_checkpoints"] == [f"ckpt-{epoch}" for epoch in (1, 2, 3, 4)]
