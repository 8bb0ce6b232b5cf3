"""Time per output token of Transformer decoding, with the key/value cache and without it.

Without a cache every step re-runs the decoder over the whole prefix (as TensorFlow's
Transformer tutorial decodes), so a token costs more the longer the output already is; with
the cache a step projects only its own token and reads the earlier keys and values from
buffers of fixed size. Both loops are graph `tf.while_loop`s over the same decoder weights,
fed the argmax token (greedy), for outputs of several lengths; the step counts are fixed, so
the comparison is not affected by when a random model would emit [END].

    python benchmarks/cache_speed.py --lengths 8,16,32,64 --batch-size 16 --rounds 3
    python benchmarks/cache_speed.py --checkpoint-dir runs/multi30k-de-en-transformer

Prints a table of milliseconds per token and writes JSON with `--output`.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_s2s.config import preset  # noqa: E402
from keras_s2s.source_memory import SourceMemory  # noqa: E402
from keras_s2s.text import START_ID, Vocabulary  # noqa: E402
from keras_s2s.transformer import TransformerDecoder  # noqa: E402


def make_decoder(args):
    """The decoder of a trained checkpoint's spec, or of the Multi30k preset's size at random."""
    if args.checkpoint_dir:
        from keras_s2s.training import load_trained_model

        return load_trained_model(args.checkpoint_dir).decoder
    model_config, _ = preset("multi30k-de-en-transformer")
    vocabulary = Vocabulary(["[PAD]", "[UNK]", "[START]", "[END]"] +
                            [f"piece{index}" for index in range(args.vocab_size - 4)])
    decoder = TransformerDecoder(len(vocabulary), model_config.units,
                                 num_layers=model_config.num_layers,
                                 num_heads=model_config.num_heads, ff_units=model_config.ff_units,
                                 max_length=max(args.lengths) + 1, dropout=0.0)
    decoder.build((None, None))
    return decoder


def cached_loop(decoder, memory, steps):
    """Greedy decoding for `steps` tokens with `decoder.step` and its (fixed) cache."""
    state = decoder.search_state(memory, steps)
    tokens = tf.fill([tf.shape(memory.encoder_outputs)[0]], START_ID)

    def body(step, tokens, state):
        logits, state, _ = decoder.step(tokens, state, memory)
        return step + 1, tf.argmax(logits, -1, output_type=tf.int32), state

    _, tokens, _ = tf.while_loop(lambda step, *_: step < steps, body, (0, tokens, state))
    return tokens


def recomputing_loop(decoder, memory, steps):
    """Greedy decoding for `steps` tokens, re-running the decoder over the prefix each step."""
    batch = tf.shape(memory.encoder_outputs)[0]
    prefix = tf.fill([batch, 1], START_ID)

    def body(step, prefix):
        logits, _ = decoder(prefix, memory)  # (batch, step + 1, vocab)
        next_tokens = tf.argmax(logits[:, -1], -1, output_type=tf.int32)
        return step + 1, tf.concat([prefix, next_tokens[:, tf.newaxis]], 1)

    _, prefix = tf.while_loop(lambda step, _: step < steps, body, (0, prefix),
                              shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None])))
    return prefix[:, -1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint-dir", help="a Transformer training run (default: random "
                        "weights at the multi30k-de-en-transformer preset's size)")
    parser.add_argument("--lengths", default="8,16,32,64")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--source-length", type=int, default=16)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args()
    args.lengths = [int(length) for length in args.lengths.split(",")]
    decoder = make_decoder(args)
    encoder_outputs = tf.random.stateless_normal(
        [args.batch_size, args.source_length, decoder.units], seed=[1, 2])
    source_mask = tf.ones([args.batch_size, args.source_length], tf.bool)
    memory = SourceMemory(encoder_outputs, source_mask, decoder.compute_keys(encoder_outputs), [])
    loops = {"cache": tf.function(cached_loop), "no cache": tf.function(recomputing_loop)}
    results = []
    for length in args.lengths:
        for loop in loops.values():  # one call each to trace, outside the timing
            loop(decoder, memory, tf.constant(length))
        seconds = {name: [] for name in loops}
        for _ in range(args.rounds):  # in turns, so that drift in the machine's speed hits both
            for name, loop in loops.items():
                started = time.perf_counter()
                loop(decoder, memory, tf.constant(length)).numpy()
                seconds[name].append(time.perf_counter() - started)
        row = {"length": length, **{f"{name} ms/token": 1000 * float(np.median(times)) / length
                                    for name, times in seconds.items()}}
        results.append(row)
        print(f"{length:>4} tokens   cache {row['cache ms/token']:7.2f} ms/token   "
              f"no cache {row['no cache ms/token']:7.2f} ms/token")
    payload = {"tensorflow": tf.__version__, "batch_size": args.batch_size,
               "source_length": args.source_length, "rows": results}
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2)
    return payload


if __name__ == "__main__":
    main()
