"""Training throughput and model FLOPs utilisation of the two training paths.

Trains a preset for N epochs with `model.fit`, then a fresh copy with the custom loop
(`keras_s2s.training.train`), on the same batches, and reports for the last epoch (the
first includes tracing): real target tokens per second (padding excluded), padded target
positions per second, mean step time, and model FLOPs utilisation (MFU):

- `mfu_vs_peak`: model FLOPs/s over the best float32 matmul speed this machine reaches
  (a large square matmul, measured here);
- `matmul_bound_share`: the time every matmul of the step would take at the speed measured
  for its own shape, over the real step time. The rest of the step is element-wise work
  (gates, softmax, Adam), the per-step loop control of the RNNs, and the input pipeline.

Run one benchmark at a time: both paths use every core.

    python benchmarks/training_speed.py --preset spa-en-small --corpus anki-spa-eng \
        --data-dir ../shared/data --train-size 20000 --epochs 2
    python benchmarks/training_speed.py --preset dates --task dates --epochs 2
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from flops import matmul_ceiling, step_flops, training_flops  # noqa: E402
from keras_s2s import tasks  # noqa: E402
from keras_s2s.config import preset  # noqa: E402
from keras_s2s.corpora import load_corpus  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.precision import building_under  # noqa: E402
from keras_s2s.training import make_optimizer, train  # noqa: E402
from report import print_report  # noqa: E402


class _EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch (no per-batch hook: one would make `fit` sync every step)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]


def load_training_pairs(args):
    if args.corpus:
        if args.data_dir and os.path.isdir(args.data_dir):
            return load_corpus(args.corpus, args.data_dir).train[:args.train_size]
        print(f"No corpus folder at --data-dir={args.data_dir!r}; using the embedded task "
              f"'{args.task}' instead.")
    pairs, _ = tasks.load_task(args.task, args.train_size, 10)
    return pairs


def batch_statistics(dataset, model, model_config):
    """Real tokens, padded positions and model FLOPs of one epoch of `dataset`."""
    real = padded = flops = 0
    parts_total = {}
    for source_ids, target_ids in dataset:
        batch, source_length = source_ids.shape
        labels = target_ids.numpy()[:, 1:]
        real_tokens = int(np.sum(labels != 0))
        parts = step_flops(model_config, len(model.source_text.vocabulary),
                           len(model.target_text.vocabulary), batch, source_length,
                           labels.shape[1], real_tokens)
        for name, (part_flops, shape) in parts.items():
            total, shapes = parts_total.get(name, (0, []))
            parts_total[name] = (total + part_flops, shapes + [shape])
        real += real_tokens
        padded += labels.size
        flops += training_flops(parts)
    return real, padded, flops, parts_total


def matmul_bound_seconds(parts_total, ceilings):
    """Seconds the epoch's matmuls take at their shapes' measured speed (training: x3)."""
    seconds = 0.0
    for name, (part_flops, shapes) in parts_total.items():
        key = tuple(max(int(np.median([shape[axis] for shape in shapes])), 1)
                    for axis in range(len(shapes[0])))
        if key not in ceilings:
            ceilings[key] = matmul_ceiling(*key)
        seconds += 3 * part_flops / (ceilings[key] * 1e9)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dates")
    parser.add_argument("--task", default="dates", choices=tasks.TASK_NAMES,
                        help="embedded task (used when no --corpus is given or found)")
    parser.add_argument("--corpus", help="a named corpus in --data-dir, e.g. anki-spa-eng")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--paths", default="fit,custom loop")
    parser.add_argument("--num-buckets", type=int, default=8,
                        help="length buckets of the input pipeline (1: no bucketing)")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"),
                        help="the Keras policy the model is built under (the matmul ceilings "
                        "stay float32's)")
    parser.add_argument("--output", help="also write the results here as JSON")
    args = parser.parse_args()

    model_config, train_config = preset(args.preset)
    pairs = load_training_pairs(args)
    peak = matmul_ceiling(1024, 1024, 1024)
    ceilings, results = {}, {}
    for path in args.paths.split(","):
        keras.utils.set_random_seed(0)
        with building_under(args.precision):
            model = Seq2Seq.from_pairs(pairs, model_config)
        dataset = make_dataset(pairs, model, train_config.batch_size, num_buckets=args.num_buckets)
        real, padded, flops, parts_total = batch_statistics(dataset, model, model_config)
        steps = int(dataset.cardinality())
        epoch_config = train_config.__class__(**{**train_config.__dict__, "epochs": args.epochs})
        if path == "fit":
            model.compile(optimizer=make_optimizer(epoch_config, steps),
                          label_smoothing=train_config.label_smoothing)
            timer = _EpochTimer()
            history = model.fit(dataset, epochs=args.epochs, shuffle=False, verbose=0,
                                callbacks=[timer])
            seconds, loss = timer.seconds, history.history["loss"][-1]
        else:
            history = train(model, dataset, epoch_config, verbose=0)
            seconds, loss = [epoch["seconds"] for epoch in history], history[-1]["loss"]
        last = seconds[-1]
        results[path] = {
            "epoch_seconds": [round(s, 2) for s in seconds],
            "target_tokens_per_second": round(real / last),
            "padded_positions_per_second": round(padded / last),
            "step_ms": round(1000 * last / steps, 1),
            "model_gflops_per_second": round(flops / last / 1e9, 1),
            "mfu_vs_peak": round(flops / last / 1e9 / peak, 3),
            "matmul_bound_share": round(matmul_bound_seconds(parts_total, ceilings) / last, 3),
            "final_loss": round(float(loss), 4),
        }
    report = {"preset": args.preset, "data": args.corpus or args.task, "train_pairs": len(pairs),
              "precision": args.precision,
              "epochs": args.epochs, "batch_size": train_config.batch_size,
              "num_buckets": args.num_buckets,
              "parameters": model.count_params(), "steps_per_epoch": steps,
              "real_target_tokens_per_epoch": real, "padded_target_positions_per_epoch": padded,
              "training_gflops_per_epoch": round(flops / 1e9, 1),
              "peak_matmul_gflops_1024": round(peak, 1),
              "shape_ceilings_gflops": {"x".join(map(str, key)): round(value, 1)
                                        for key, value in sorted(ceilings.items())},
              "results": results}
    print_report(report, results, "path", args.output)


if __name__ == "__main__":
    main()
