"""`keras-s2s train`: pairs from a task or a file -> a checkpoint directory that resumes itself.

A checkpoint directory holds config.json, both vocabularies, the checkpoints and
history.json. Running the same command again continues from the newest checkpoint with the
saved configuration and vocabularies, so an interrupted run loses at most one epoch.
"""

import dataclasses
import os

import keras

from keras_s2s import config as config_lib
from keras_s2s import tasks
from keras_s2s.data import make_dataset, read_tsv_pairs, split_pairs
from keras_s2s.metrics import exact_match
from keras_s2s.model import CONFIG_FILE, Seq2Seq
from keras_s2s.training import train
from keras_s2s.translator import translate_in_batches


def load_pairs(task=None, pairs_path=None, train_size=20000, test_size=1000, seed=0,
               source_column=0, target_column=1, validation_fraction=0.05):
    """(train_pairs, validation_pairs) from an embedded task or a TSV file."""
    if (task is None) == (pairs_path is None):
        raise ValueError("Give exactly one of task or pairs_path.")
    if task is not None:
        return tasks.load_task(task, train_size, test_size, seed=seed)
    pair_file = read_tsv_pairs(pairs_path, source_column, target_column)
    print(pair_file.summary())
    if not pair_file.pairs:
        raise ValueError(f"pairs={pairs_path!r} holds no usable sentence pair.")
    return split_pairs(pair_file.pairs, validation_fraction, seed=seed)


def train_run(checkpoint_dir, task=None, pairs_path=None, preset_name=None, epochs=None,
              batch_size=None, train_size=20000, test_size=1000, seed=0, source_column=0,
              target_column=1, export_path=None):
    """Trains (or resumes) a model in `checkpoint_dir`; returns (model, history)."""
    resuming = os.path.exists(os.path.join(checkpoint_dir, CONFIG_FILE))
    if resuming:
        model_config, train_config = config_lib.load_json(os.path.join(checkpoint_dir, CONFIG_FILE))
        train_config = train_config or config_lib.TrainConfig()
    elif preset_name or task:
        model_config, train_config = config_lib.preset(preset_name or task)
    else:
        model_config, train_config = config_lib.ModelConfig(), config_lib.TrainConfig()
    overrides = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size))
                 if value is not None}
    train_config = dataclasses.replace(train_config, **overrides)
    if not resuming:
        train_config = dataclasses.replace(train_config, seed=seed)

    train_pairs, validation_pairs = load_pairs(
        task, pairs_path, train_size, test_size, train_config.seed, source_column,
        target_column, train_config.validation_fraction)
    keras.utils.set_random_seed(train_config.seed)
    if resuming:
        model = Seq2Seq.from_spec(checkpoint_dir)
    else:
        model = Seq2Seq.from_pairs(train_pairs, model_config)
    model.save_spec(checkpoint_dir, train_config)
    print(f"{model.count_params():,} parameters; {len(train_pairs)} training and "
          f"{len(validation_pairs)} validation pairs; checkpoints in {checkpoint_dir}")

    validation = make_dataset(validation_pairs, model, 256, shuffle=False) if validation_pairs else None
    history = train(model, make_dataset(train_pairs, model, train_config.batch_size,
                                        seed=train_config.seed),
                    train_config, validation_dataset=validation, checkpoint_dir=checkpoint_dir)
    if validation_pairs:
        outputs = translate_in_batches(model.translator(), [s for s, _ in validation_pairs])
        score = exact_match(outputs["text"], [t for _, t in validation_pairs])
        print(f"Exact match on {len(validation_pairs)} validation pairs: {score:.2%}")
    if export_path:
        print(f"Exported {model.export(export_path)}")
    return model, history
