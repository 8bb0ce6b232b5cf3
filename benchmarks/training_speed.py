"""Training throughput of the two training paths on an embedded task.

Trains the task's preset for N epochs with `model.fit`, then a fresh copy with the custom
loop (`keras_s2s.training.train`), and reports real target tokens per second (padding
excluded), mean step time and the final loss of each. Run one benchmark at a time: both
paths use every core.

    python benchmarks/training_speed.py --task dates --epochs 2
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_s2s import tasks  # noqa: E402
from keras_s2s.config import preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.training import make_optimizer, train  # noqa: E402
from report import print_report  # noqa: E402


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="dates", choices=tasks.TASK_NAMES)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--output", help="also write the results here as JSON")
    args = parser.parse_args()

    model_config, train_config = preset(args.task)
    pairs, _ = tasks.load_task(args.task, args.train_size, 10)
    results = {}
    for path in ("fit", "custom loop"):
        keras.utils.set_random_seed(0)
        model = Seq2Seq.from_pairs(pairs, model_config)
        dataset = make_dataset(pairs, model, train_config.batch_size)
        tokens = float(sum(np.sum(target.numpy()[:, 1:] != 0) for _, target in dataset))
        steps = int(dataset.cardinality())
        if path == "fit":
            model.compile(optimizer=make_optimizer(train_config))
            timer = _EpochTimer()
            history = model.fit(dataset, epochs=args.epochs, shuffle=False, verbose=0,
                                callbacks=[timer])
            seconds, loss = timer.seconds, history.history["loss"][-1]
        else:
            history = train(model, dataset, train_config.__class__(
                **{**train_config.__dict__, "epochs": args.epochs}), verbose=0)
            seconds, loss = [epoch["seconds"] for epoch in history], history[-1]["loss"]
        # The first epoch includes tracing; the last is the steady state.
        results[path] = {"epoch_seconds": [round(s, 2) for s in seconds],
                         "target_tokens_per_second": round(tokens / seconds[-1]),
                         "step_ms": round(1000 * seconds[-1] / steps, 1),
                         "final_loss": round(float(loss), 5)}
    report = {"task": args.task, "train_pairs": len(pairs), "epochs": args.epochs,
              "batch_size": train_config.batch_size, "parameters": model.count_params(),
              "results": results}
    print_report(report, results, "path", args.output)


if __name__ == "__main__":
    main()
