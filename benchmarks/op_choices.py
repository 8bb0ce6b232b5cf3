"""The small measurements behind forms the code chose: each pair of equivalent forms, timed
in turns in one process at the shapes a decoding step gives them.

- greedy's score of its token: log(gather(softmax)) against gather(log_softmax), on the
  (rows, vocab) logits of one step (keras_s2s/search.py `most_likely`);
- one step's attention softmax written out against tf.nn.softmax, on (rows, s) scores
  (keras_s2s/attention.py `attend_step`);
- the context c_t = Σ_s a_s h̄_s as a multiply and a sum against a batched matmul, below and
  above the size where `_weighted_sum` switches form.

Each form runs `--repeats` times inside one tf.function (a graph loop, as in decoding), the
two forms of a pair alternate for `--rounds` rounds, and the table gives the median and the
range of microseconds per call. Run it on an otherwise idle machine:

    python benchmarks/op_choices.py --output benchmarks/results/op-choices.json
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from report import print_report  # noqa: E402


def _looped(form, repeats):
    """A graph that applies `form` `repeats` times, each on a slightly different input (so
    that no call can be folded into the previous one)."""
    @tf.function
    def run(inputs):
        def body(index, total):
            outputs = form(*[tensor + tf.cast(index, tensor.dtype) * 1e-6 for tensor in inputs])
            return index + 1, total + tf.reduce_sum(outputs)
        return tf.while_loop(lambda index, _: index < repeats, body, (0, 0.0))[1]
    return run


def _greedy_score_softmax(logits):
    tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.math.log(tf.gather(tf.nn.softmax(logits), tokens, batch_dims=1))


def _greedy_score_log_softmax(logits):
    tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.gather(tf.nn.log_softmax(logits), tokens, batch_dims=1)


def _softmax_written_out(scores):
    exponentials = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    return exponentials / tf.reduce_sum(exponentials, axis=-1, keepdims=True)


def _multiply_and_sum(weights, values):
    return tf.reduce_sum(weights[:, :, tf.newaxis] * values, axis=1)


def _batched_matmul(weights, values):
    return tf.matmul(weights[:, tf.newaxis, :], values)[:, 0]


def pairs():
    """(name, shapes, form A, form B): A is the form the code uses at these shapes."""
    return [
        ("greedy score: softmax vs log_softmax, 64 x 5000", [(64, 5000)],
         ("softmax", _greedy_score_softmax), ("log_softmax", _greedy_score_log_softmax)),
        ("attention softmax: written out vs tf.nn.softmax, 64 x 21", [(64, 21)],
         ("written out", _softmax_written_out), ("tf.nn.softmax", tf.nn.softmax)),
        ("context: multiply-and-sum vs matmul, 8 x 21 x 256 (168 pairs)", [(8, 21), (8, 21, 256)],
         ("multiply and sum", _multiply_and_sum), ("matmul", _batched_matmul)),
        ("context: matmul vs multiply-and-sum, 64 x 21 x 256 (1344 pairs)", [(64, 21), (64, 21, 256)],
         ("matmul", _batched_matmul), ("multiply and sum", _multiply_and_sum)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000, help="calls per timed graph run")
    parser.add_argument("--rounds", type=int, default=7, help="alternating runs of each form")
    parser.add_argument("--output", help="also write the results here as JSON")
    args = parser.parse_args()

    random = np.random.default_rng(0)
    results = {}
    for name, shapes, *forms in pairs():
        inputs = [tf.constant(random.normal(size=shape).astype("float32")) for shape in shapes]
        runs = {label: _looped(form, args.repeats) for label, form in forms}
        for run in runs.values():
            run(inputs)  # traced and warmed up outside the timing
        microseconds = {label: [] for label in runs}
        for _ in range(args.rounds):
            for label, run in runs.items():
                start = time.perf_counter()
                run(inputs).numpy()
                microseconds[label].append(1e6 * (time.perf_counter() - start) / args.repeats)
        for label, values in microseconds.items():
            results[f"{name} | {label}"] = {
                "median_us": round(float(np.median(values)), 2),
                "min_us": round(min(values), 2), "max_us": round(max(values), 2)}
    report = {"tensorflow": tf.__version__, "repeats": args.repeats, "rounds": args.rounds,
              "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "results": results}
    print_report(report, results, "form", args.output)


if __name__ == "__main__":
    main()
