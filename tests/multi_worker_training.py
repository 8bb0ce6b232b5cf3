"""One worker of a MultiWorkerMirroredStrategy job (or the single process it is compared with).

tests/test_multi_worker.py starts two of these on 127.0.0.1 with a TF_CONFIG each, and one
without TF_CONFIG as the reference. Every process builds the same tiny dates model from the
same initial weights and trains it on the same global batches, then writes what it saw and
computed to OUTPUT_DIR/<task>.json and the final weights to OUTPUT_DIR/<task>.npz.

    python tests/multi_worker_training.py OUTPUT_DIR PRESET PATH EPOCHS [CHECKPOINT_DIR [PAIRS]]
        PRESET: dates or dates-transformer; PATH: loop (training.train), fit (model.fit),
        or batches (only records which rows each replica of this worker receives);
        CHECKPOINT_DIR "-" for none; PAIRS: training pairs (1,200 by default).
        PEER_TIMEOUT_SECONDS in the environment: how long to wait for the other worker.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_s2s import multi_worker, tasks  # noqa: E402
from keras_s2s.config import TrainConfig, preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.streaming import scan_corpus, stream_dataset  # noqa: E402
from keras_s2s.training import make_optimizer, train  # noqa: E402

GLOBAL_BATCH = 24


def main(output_dir, preset_name, path, epochs, checkpoint_dir="-", pairs_count=1200):
    checkpoint_dir = None if checkpoint_dir == "-" else checkpoint_dir
    timeout = int(os.environ.get("PEER_TIMEOUT_SECONDS", 60))
    strategy = multi_worker.strategy_from_environment(timeout) or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    task = f"worker{resolver.task_id}" if resolver and resolver.task_type else "single"
    pairs, _ = tasks.load_task("dates", int(pairs_count), 10, seed=1)
    model_config, _ = preset(preset_name)
    model_config.units, model_config.embedding_dim, model_config.attention_units = 16, 8, 16
    model_config.ff_units = 32  # read by the Transformer preset only
    train_config = TrainConfig(epochs=int(epochs), batch_size=GLOBAL_BATCH, learning_rate=3e-3,
                               clip_norm=0.5)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = Seq2Seq.from_pairs(pairs, model_config)
    result = {"task": task, "replicas": strategy.num_replicas_in_sync,
              "chief": multi_worker.is_chief(strategy)}
    if path == "batches":
        result.update(rows_seen(strategy, model, pairs, output_dir))
    elif path == "loop":
        history = train(model, make_dataset(pairs, model, GLOBAL_BATCH, shuffle=False), train_config,
                        checkpoint_dir=checkpoint_dir, verbose=0, strategy=strategy)
        result["losses"] = [epoch["loss"] for epoch in history]
    else:
        with strategy.scope():
            model.compile(optimizer=make_optimizer(train_config))
        callbacks = [multi_worker.ChiefBackupAndRestore(checkpoint_dir)] if checkpoint_dir else []
        fitted = model.fit(make_dataset(pairs, model, GLOBAL_BATCH, shuffle=False),
                           epochs=train_config.epochs, shuffle=False, verbose=0, callbacks=callbacks)
        result["losses"] = fitted.history["loss"]
    if path != "batches":
        optimizer = model.optimizer if path == "fit" else None
        result["optimizer_steps"] = int(optimizer.iterations.numpy()) if optimizer else None
        np.savez(os.path.join(output_dir, f"{task}.npz"), *model.get_weights())
    with open(os.path.join(output_dir, f"{task}.json"), "w", encoding="utf-8") as file:
        json.dump(result, file)


def rows_seen(strategy, model, pairs, output_dir):
    """The source rows every replica of this worker receives in one epoch: of the in-memory
    pairs (sharded by data), and of two streamed files (sharded by file)."""
    files = []
    for index, part in enumerate((pairs[:600], pairs[600:])):
        files.append(os.path.join(output_dir, f"part{index}.tsv"))
        with open(files[-1], "w", encoding="utf-8") as file:
            file.write("".join(f"{source}\t{target}\n" for source, target in part))
    datasets = {"in_memory": make_dataset(pairs, model, GLOBAL_BATCH, shuffle=False),
                "streamed_files": stream_dataset(scan_corpus(files), model, GLOBAL_BATCH, shuffle=False,
                                                      strategy=strategy)}
    seen = {}
    for name, dataset in datasets.items():
        seen[name] = []
        for source_ids, _ in strategy.experimental_distribute_dataset(dataset):
            for replica_rows in strategy.experimental_local_results(source_ids):
                seen[name] += [" ".join(map(str, row[row > 0])) for row in replica_rows.numpy()]
    return seen


if __name__ == "__main__":
    main(*sys.argv[1:])
