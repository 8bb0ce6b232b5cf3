"""Where a training step's time goes, op by op: a few steps under TensorFlow's profiler.

Builds a preset on a corpus (or an embedded task), keeps a fixed set of batches in memory
(so that the input pipeline is not timed), runs the package's training step
(`distribute.train_on_batch` over `Seq2Seq.teacher_forcing_sums`, the step of `fit` and of
the custom loop) on them once untraced to warm up, then once more under the profiler, and
prints the op time by op type, summed over every thread, with the matmuls' share of it.
Tracing adds a little to every op, so shares are a better guide than absolute times.

    python benchmarks/training_trace.py --preset multi30k-de-en-transformer \
        --corpus multi30k-de-en --data-dir ../shared/data --train-size 6400 --steps 30
"""

import argparse
import collections
import glob
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from keras_s2s import distribute  # noqa: E402
from keras_s2s.config import preset  # noqa: E402
from keras_s2s.data import make_dataset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.training import make_optimizer  # noqa: E402
from training_speed import load_training_pairs  # noqa: E402

def is_matmul(op_type):
    """Matmul work: every MatMul kernel (oneDNN's, fused with a bias or an activation, batched)."""
    return "MatMul" in op_type or op_type == "Einsum"


def training_step(model, optimizer):
    """The package's training step as one traced function of (source_ids, target_ids)."""
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
    def step(source_ids, target_ids):
        return distribute.train_on_batch(model, optimizer, lambda: model.teacher_forcing_sums(
            source_ids, target_ids, training=True))
    return step


def add_data_arguments(parser, steps):
    """The options that say what is trained: preset, corpus (or embedded task), batches."""
    parser.add_argument("--preset", default="multi30k-de-en-transformer")
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--task", default="dates")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-size", type=int, default=6400)
    parser.add_argument("--steps", type=int, default=steps, help="batches (a round's, for A/B)")
    parser.add_argument("--output", help="write the figures as JSON here")


def model_and_batches(args):
    """(model, train_config, batches): a new model of the preset, seeded, and `args.steps`
    batches of its data held in memory, so that the input pipeline is not timed."""
    model_config, train_config = preset(args.preset)
    pairs = load_training_pairs(args)
    keras.utils.set_random_seed(0)
    model = Seq2Seq.from_pairs(pairs, model_config)
    batches = [(tf.cast(source, tf.int32), tf.cast(target, tf.int32)) for source, target in
               make_dataset(pairs, model, train_config.batch_size, seed=0).take(args.steps)]
    return model, train_config, batches


def op_times(log_dir):
    """{op type: (microseconds, count)} of the TensorFlow ops in a profile written to log_dir."""
    path = glob.glob(os.path.join(log_dir, "plugins", "profile", "*", "*.xplane.pb"))[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    totals = collections.defaultdict(lambda: [0.0, 0])
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TensorFlow's executor names an op's event "node name:op type".
                if ":" not in name or name.count(":") != 1:
                    continue
                op_type = name.rsplit(":", 1)[1]
                if not op_type or not op_type[0].isalpha() and op_type[0] != "_":
                    continue
                totals[op_type][0] += event.duration_ps / 1e6
                totals[op_type][1] += 1
    return {op_type: tuple(value) for op_type, value in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, steps=30)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    model, train_config, batches = model_and_batches(args)
    optimizer = make_optimizer(train_config, steps_per_epoch=1000)
    optimizer.build(model.trainable_variables)
    model.label_smoothing = train_config.label_smoothing
    step = training_step(model, optimizer)
    for batch in batches:  # traces once (open shapes), warms every shape up
        step(*batch)
    start = time.perf_counter()
    for batch in batches:
        loss_sum = step(*batch)[0]
    loss_sum.numpy()
    seconds = (time.perf_counter() - start) / len(batches)
    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir, options=tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=2, python_tracer_level=0, device_tracer_level=0))
        for batch in batches:
            step(*batch)[0].numpy()
        tf.profiler.experimental.stop()
        times = op_times(log_dir)
    total = sum(micros for micros, _ in times.values())
    matmul = sum(micros for op_type, (micros, _) in times.items() if is_matmul(op_type))
    report = {"tensorflow": tf.__version__, "preset": args.preset, "steps": len(batches),
              "step_ms_untraced": round(1000 * seconds, 1),
              "op_ms_per_step": round(total / 1000 / len(batches), 1),
              "matmul_share_of_op_time": round(matmul / total, 3),
              "by_type": {op_type: {"ms_per_step": round(micros / 1000 / len(batches), 2),
                                    "share": round(micros / total, 3),
                                    "runs_per_step": count // len(batches)}
                          for op_type, (micros, count)
                          in sorted(times.items(), key=lambda item: -item[1][0])}}
    print(f"{args.preset}: {len(batches)} steps, {report['step_ms_untraced']} ms a step untraced, "
          f"{report['op_ms_per_step']} ms of op time a step (both cores), "
          f"matmuls {100 * report['matmul_share_of_op_time']:.1f} % of it")
    print(f"{'op type':28} {'ms/step':>8} {'share':>7} {'runs/step':>9}")
    for op_type, row in list(report["by_type"].items())[:args.top]:
        print(f"{op_type:28} {row['ms_per_step']:8.2f} {100 * row['share']:6.1f}% {row['runs_per_step']:9d}")
    save_report(args.output, report)


def save_report(path, report):
    """Writes the report as JSON to `path` (if given)."""
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()
