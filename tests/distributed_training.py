"""Trains one tiny model on one device and on two replicas; prints both runs' numbers as JSON.

tests/test_distribute.py runs this in a fresh process, because the CPU must be split into
two logical devices before TensorFlow first touches it. Both paths are run: the custom loop
(`training.train`) and `model.fit`, each from the same initial weights on the same batches.

    python tests/distributed_training.py CHECKPOINT_DIR [PRESET]   (dates or dates-transformer)
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_s2s import tasks  # noqa: E402
from keras_s2s.config import TrainConfig, preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.training import make_optimizer, restore_weights, train  # noqa: E402


def main(checkpoint_dir, preset_name="dates"):
    pairs, _ = tasks.load_task("dates", 300, 10, seed=1)
    model_config, _ = preset(preset_name)
    model_config.units, model_config.embedding_dim, model_config.attention_units = 16, 8, 16
    model_config.ff_units = 32  # read by the Transformer preset only
    # A small clipping norm, so that the clipping of the summed gradient is exercised too.
    train_config = TrainConfig(epochs=2, batch_size=24, learning_rate=3e-3, clip_norm=0.5)
    keras.utils.set_random_seed(0)
    initial = Seq2Seq.from_pairs(pairs, model_config).get_weights()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    default = tf.distribute.get_strategy()

    def fresh(strategy):
        with strategy.scope():
            model = Seq2Seq.from_pairs(pairs, model_config)
        model.set_weights(initial)
        return model

    def batches(model):
        return make_dataset(pairs, model, train_config.batch_size, shuffle=False)

    results = {"replicas": mirrored.num_replicas_in_sync,
               "batch_rows": sorted({int(source.shape[0]) for source, _ in batches(fresh(default))})}
    weights = {}
    for name, strategy in (("single", default), ("mirrored", mirrored)):
        model = fresh(strategy)
        history = train(model, batches(model), train_config, checkpoint_dir=(
            checkpoint_dir if name == "mirrored" else None), verbose=0, strategy=strategy)
        results[f"loop_{name}"] = [epoch["loss"] for epoch in history]
        weights[f"loop_{name}"] = model.get_weights()

        model = fresh(strategy)
        with strategy.scope():
            model.compile(optimizer=make_optimizer(train_config))
        fitted = model.fit(batches(model), epochs=train_config.epochs, shuffle=False, verbose=0)
        results[f"fit_{name}"] = fitted.history["loss"]
        weights[f"fit_{name}"] = model.get_weights()
    for path in ("loop", "fit"):
        results[f"{path}_weight_difference"] = largest_difference(weights[f"{path}_single"],
                                                                  weights[f"{path}_mirrored"])
    try:
        train(fresh(default), batches(fresh(default)), train_config, verbose=0, strategy=mirrored)
    except ValueError as error:
        results["outside_scope_error"] = str(error)
    # A checkpoint written under the strategy restores into a single-device model.
    restored = fresh(default)
    restore_weights(restored, checkpoint_dir)
    results["restored_difference"] = largest_difference(restored.get_weights(),
                                                        weights["loop_mirrored"])
    print(json.dumps(results))


def largest_difference(weights, others):
    return max(float(np.max(np.abs(first - second))) for first, second in zip(weights, others))


if __name__ == "__main__":
    main(*sys.argv[1:3])
