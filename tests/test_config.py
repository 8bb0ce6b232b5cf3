import dataclasses

import pytest

from keras_s2s.config import PRESETS, ModelConfig, TrainConfig, load_json, preset, save_json


def test_config_json_round_trip(tmp_path):
    model_config = ModelConfig(cell="lstm", attention=None, num_layers=2, dropout=0.2)
    train_config = TrainConfig(epochs=3, label_smoothing=0.1)
    save_json(tmp_path / "config.json", model=model_config, train=train_config)
    assert load_json(tmp_path / "config.json") == (model_config, train_config)


@pytest.mark.parametrize("changes,argument", [
    ({"cell": "rnn"}, "cell"), ({"attention": "cosine"}, "attention"),
    ({"units": 0}, "units"), ({"max_source_length": 1}, "max_source_length"),
    ({"attention": None, "input_feeding": True}, "input_feeding"), ({"dropout": 1.0}, "dropout"),
])
def test_invalid_model_config_names_the_argument(changes, argument):
    with pytest.raises(ValueError, match=argument):
        ModelConfig(**changes)


def test_invalid_train_config_and_unknown_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    (tmp_path / "config.json").write_text('{"model": {"units": 8, "colour": "red"}}')
    with pytest.raises(ValueError, match="colour"):
        load_json(tmp_path / "config.json")


def test_preset_returns_independent_copies():
    model_config, _ = preset("dates")
    model_config.units = 7
    assert PRESETS["dates"][0].units != 7
    assert dataclasses.asdict(preset("toy-ko")[0])["target_tokenizer"] == "word"
    with pytest.raises(ValueError, match="preset"):
        preset("nope")
