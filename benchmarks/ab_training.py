"""Two forms of the training step timed in turns, in one process, on the same batches.

This machine's speed drifts by more from one minute to the next than a change to the step
moves it, so separate `training_speed.py` runs cannot show a gain of a few percent. Here
the two steps run the same batches round after round, A and B in turns (which goes first
alternates); each figure is the median over the rounds.

    --compare loss        A: the textbook loss (softmax cross-entropy kernel, a second
                          log-sum-exp for label smoothing, argmax for accuracy); B: the
                          package's one-pass `losses.token_sums`. One model and optimizer.
    --compare gradient    A: the one-pass loss differentiated automatically; B: the
                          package's `losses.token_sums`, the same forward pass with its
                          gradient written out. One model and optimizer.
    --compare precision   A: float32; B: the same initial weights under Keras'
                          "mixed_bfloat16" policy (bfloat16 compute, float32 weights). Each
                          trains its own copy on the same batches, so the losses of the two
                          rows are two training curves from one start.

    python benchmarks/ab_training.py --compare loss --preset multi30k-de-en-transformer \
        --corpus multi30k-de-en --data-dir ../shared/data --train-size 6400 --steps 40 --rounds 5
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_s2s import losses  # noqa: E402
from keras_s2s import model as model_module  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.text import not_padding  # noqa: E402
from keras_s2s.training import make_optimizer  # noqa: E402
from training_trace import (add_data_arguments, model_and_batches, save_report,  # noqa: E402
                            training_step)


def textbook_token_sums(labels, logits, label_smoothing=0.0):
    """The training step's sums as `masked_cross_entropy` and `masked_correct` compute them."""
    loss_sum, token_count = losses.masked_cross_entropy(labels, logits, label_smoothing)
    return loss_sum, token_count, losses.masked_correct(labels, logits)


def autodiff_token_sums(labels, logits, label_smoothing=0.0):
    """`losses.token_sums`' forward pass, its gradient left to automatic differentiation."""
    mask = tf.cast(not_padding(labels), tf.float32)
    per_token, correct, _, _ = losses.one_pass_terms(labels, tf.cast(logits, tf.float32), mask,
                                                     label_smoothing)
    return tf.reduce_sum(per_token), tf.reduce_sum(mask), tf.reduce_sum(correct)


def traced_step(model, train_config, batches, token_sums=None):
    """A traced training step of `model` (with its own optimizer), computing the loss with
    `token_sums` (the package's own when None); traced on the first batch."""
    optimizer = make_optimizer(train_config, steps_per_epoch=1000)
    optimizer.build(model.trainable_variables)
    model.label_smoothing = train_config.label_smoothing
    step = training_step(model, optimizer)
    package_token_sums = model_module.token_sums
    model_module.token_sums = token_sums or package_token_sums
    try:
        step(*batches[0])  # traces with this loss; later calls run the traced graph
    finally:
        model_module.token_sums = package_token_sums
    return step


def run(step, batches):
    """(seconds a step, mean loss per token) over the batches."""
    start, loss_sum, tokens = time.perf_counter(), 0.0, 0.0
    for batch in batches:
        batch_loss, batch_tokens, _ = step(*batch)
        loss_sum, tokens = loss_sum + float(batch_loss), tokens + float(batch_tokens)
    return (time.perf_counter() - start) / len(batches), loss_sum / tokens


def cpu_flags():
    with open("/proc/cpuinfo", encoding="utf-8") as file:
        flags = next((line.split(":", 1)[1].split() for line in file if line.startswith("flags")), [])
    return [flag for flag in flags if flag.startswith(("avx512", "amx", "avx2"))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=("loss", "gradient", "precision"), required=True)
    add_data_arguments(parser, steps=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    model, train_config, batches = model_and_batches(args)
    model_config = model.model_config
    if args.compare == "loss":
        steps = {"A textbook loss": traced_step(model, train_config, batches, textbook_token_sums),
                 "B one-pass token_sums": traced_step(model, train_config, batches)}
    elif args.compare == "gradient":
        steps = {"A automatic gradient": traced_step(model, train_config, batches, autodiff_token_sums),
                 "B written-out gradient": traced_step(model, train_config, batches)}
    else:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            low_precision = Seq2Seq(model_config, model.source_text.vocabulary,
                                    model.target_text.vocabulary)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        low_precision.set_weights(model.get_weights())
        steps = {"A float32": traced_step(model, train_config, batches),
                 "B mixed_bfloat16": traced_step(low_precision, train_config, batches)}
    seconds = {name: [] for name in steps}
    curve = {name: [] for name in steps}
    for round_index in range(args.rounds):
        for name, step in list(steps.items())[::-1 if round_index % 2 else 1]:
            step_seconds, loss = run(step, batches)
            seconds[name].append(step_seconds)
            curve[name].append(round(loss, 4))
    medians = {name: 1000 * statistics.median(values) for name, values in seconds.items()}
    (name_a, ms_a), (name_b, ms_b) = medians.items()
    report = {"tensorflow": tf.__version__, "cpu_flags": cpu_flags(), "compare": args.compare,
              "preset": args.preset, "steps_a_round": len(batches), "rounds": args.rounds,
              "median_step_ms": {name: round(value, 1) for name, value in medians.items()},
              "b_over_a_time": round(ms_b / ms_a, 3),
              "step_ms_each_round": {name: [round(1000 * value, 1) for value in values]
                                     for name, values in seconds.items()},
              "mean_loss_each_round": curve}
    print(f"{args.compare}: {name_a} {ms_a:.1f} ms/step, {name_b} {ms_b:.1f} ms/step "
          f"(B/A {ms_b / ms_a:.3f}; medians of {args.rounds} rounds of {len(batches)} steps)")
    for name in steps:
        print(f"  {name:24} loss each round {curve[name]}")
    print(f"  CPU flags: {' '.join(report['cpu_flags'])}; TensorFlow {tf.__version__}")
    save_report(args.output, report)


if __name__ == "__main__":
    main()
