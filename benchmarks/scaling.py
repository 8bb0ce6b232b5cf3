"""How the cost of training and decoding grows with sentence length, batch size and vocabulary.

Each point builds the preset's model with synthetic vocabularies of the requested size (the
weights do not change the cost), then times
- decoding: the encoder plus `greedy_search` over the model's decoder step, for exactly L
  output tokens (the end token is never accepted, so every row runs L steps), in one graph;
- training: one teacher-forced step (forward, backward, Adam) with source and target of L tokens.
Times are per sentence, best of a few repeats after a warm-up. Writes a JSON report and a
three-panel PNG plot.

    python benchmarks/scaling.py --preset spa-en-small --output scaling.json --plot scaling.png
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_s2s.config import preset  # noqa: E402
from keras_s2s.model import Seq2Seq  # noqa: E402
from keras_s2s.search import greedy_search  # noqa: E402
from keras_s2s.source_memory import encode_source  # noqa: E402
from keras_s2s.text import SPECIAL_TOKENS, START_ID, Vocabulary  # noqa: E402
from keras_s2s.training import make_optimizer  # noqa: E402


def synthetic_model(model_config, vocab_size, max_length):
    tokens = list(SPECIAL_TOKENS) + [f"w{index}" for index in range(vocab_size - len(SPECIAL_TOKENS))]
    # The benchmark feeds token ids, so the tokenizer kind does not matter; words need no
    # learned SentencePiece model.
    config = dataclasses.replace(model_config, max_source_length=max_length,
                                 max_target_length=max_length, source_tokenizer="word",
                                 target_tokenizer="word")
    keras.utils.set_random_seed(0)
    return Seq2Seq(config, Vocabulary(tokens), Vocabulary(tokens))


def best_seconds(function, *args, repeats=3):
    function(*args)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda tensor: tensor.numpy(), function(*args))
        best = min(best, time.perf_counter() - start)
    return best


def decode_seconds(model, batch, length):
    """Seconds to encode `batch` random sentences of `length` tokens and decode `length` tokens each."""
    vocab = len(model.source_text.vocabulary)
    source_ids = tf.random.stateless_uniform([batch, length], [0, 1], len(SPECIAL_TOKENS), vocab, tf.int32)

    @tf.function
    def decode(source_ids):
        memory = encode_source(model.encoder, model.decoder, source_ids)

        def next_step(tokens, state):
            return model.decoder.step(tokens, state, memory)

        # end_id -1 never occurs: every row decodes exactly `length` tokens.
        result = greedy_search(next_step, model.decoder.search_state(memory, length),
                               tf.fill([batch], START_ID), -1, length)
        return result.tokens

    return best_seconds(decode, source_ids)


def training_seconds(model, batch, length, train_config):
    vocab = len(model.target_text.vocabulary)
    ids = tf.random.stateless_uniform([batch, length + 1], [0, 2], len(SPECIAL_TOKENS), vocab, tf.int32)
    optimizer = make_optimizer(train_config, steps_per_epoch=1000)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(source_ids, target_ids):
        with tf.GradientTape() as tape:
            loss_sum, count, _ = model.teacher_forcing_sums(source_ids, target_ids, training=True)
            loss = loss_sum / count
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return best_seconds(step, ids[:, :length], ids)


def sweep(model_config, train_config, name, values, batch, length, vocab):
    points = []
    for value in values:
        settings = {"batch": batch, "length": length, "vocab": vocab, name: value}
        model = synthetic_model(model_config, settings["vocab"], max(settings["length"], 8) + 2)
        decode = decode_seconds(model, settings["batch"], settings["length"])
        train = training_seconds(model, settings["batch"], settings["length"], train_config)
        point = {**settings,
                 "decode_ms_per_sentence": round(1000 * decode / settings["batch"], 3),
                 "train_ms_per_sentence": round(1000 * train / settings["batch"], 3)}
        print(json.dumps(point))
        points.append(point)
    return points


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 3, figsize=(13, 3.8))
    for axis, (name, label) in zip(axes, (("length", "sentence length (tokens in and out)"),
                                          ("batch", "batch size"),
                                          ("vocab", "vocabulary size"))):
        points = report["sweeps"][name]
        xs = [point[name] for point in points]
        for key, legend in (("decode_ms_per_sentence", "greedy decoding"),
                            ("train_ms_per_sentence", "training step")):
            axis.plot(xs, [point[key] for point in points], marker="o", label=legend)
        axis.set_xlabel(label)
        axis.set_ylabel("ms per sentence")
        if name == "batch":
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(f"Cost per sentence, preset {report['preset']} "
                    f"(defaults: batch {report['defaults']['batch']}, length "
                    f"{report['defaults']['length']}, vocabulary {report['defaults']['vocab']})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="spa-en-small")
    parser.add_argument("--lengths", default="10,25,50,100,200")
    parser.add_argument("--batches", default="1,4,16,64,256")
    parser.add_argument("--vocabs", default="1000,5000,20000,50000")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the other sweeps")
    parser.add_argument("--length", type=int, default=20, help="length of the other sweeps")
    parser.add_argument("--vocab", type=int, default=5000, help="vocabulary of the other sweeps")
    parser.add_argument("--output", help="write the report here as JSON")
    parser.add_argument("--plot", help="write the plot here (PNG)")
    args = parser.parse_args()

    model_config, train_config = preset(args.preset)
    model_config = dataclasses.replace(model_config, dropout=0.0)
    defaults = {"batch": args.batch, "length": args.length, "vocab": args.vocab}
    report = {"preset": args.preset, "defaults": defaults, "sweeps": {}}
    for name, values in (("length", args.lengths), ("batch", args.batches), ("vocab", args.vocabs)):
        report["sweeps"][name] = sweep(model_config, train_config, name,
                                       [int(value) for value in values.split(",")], **defaults)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
    if args.plot:
        plot(report, args.plot)


if __name__ == "__main__":
    main()
