"""The shipped models' outputs through the package's own code, as digests to compare.

A refactoring of the decoder, the searches or the Translator must not change what the
shipped models translate. Each model in `saved_models/` (its newest version) is rebuilt from
its SavedModel (`keras_s2s.restore`), wrapped in a fresh `Translator`, and decodes its test
set three ways: greedy, beam search with the model's default beam (or 4 when its default is
greedy) and seeded sampling. Run it before and after a change and compare the two files:

    python benchmarks/shipped_outputs.py --output before.json      # on the old commit
    python benchmarks/shipped_outputs.py --output after.json       # on the new one
    python benchmarks/shipped_outputs.py --compare before.json after.json

Each entry holds the number of sentences, a SHA-256 of the translations, a SHA-256 of the
float32 scores' bytes, and the scores themselves, so that `--compare` reports both "the
same text" and the largest score difference.
"""

import argparse
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA_DIR = os.path.join(ROOT, "..", "shared", "data")
# Model name -> the corpus whose test split it is scored on (saved_models/README.md).
TEST_SETS = {"multi30k-de-en": "multi30k-de-en", "multi30k-de-en-transformer": "multi30k-de-en",
             "spa-en-small": "anki-spa-eng", "ko-chatbot": "ko-chatbot"}
SAMPLING = dict(temperature=0.8, top_k=20, top_p=0.95, seed=7)
BATCH_SIZE = 64


def newest_version(name):
    folder = os.path.join(ROOT, "saved_models", name)
    return os.path.join(folder, str(max(int(entry) for entry in os.listdir(folder) if entry.isdigit())))


def decode_all(function, sources):
    texts, scores = [], []
    for start in range(0, len(sources), BATCH_SIZE):
        outputs = function(tf.constant(sources[start:start + BATCH_SIZE]))
        texts += [text.decode("utf-8") for text in outputs["text"].numpy()]
        scores += [float(score) for score in outputs["score"].numpy()]
    return texts, scores


def digest(texts, scores):
    return {"sentences": len(texts),
            "text_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
            "score_sha256": hashlib.sha256(np.asarray(scores, np.float32).tobytes()).hexdigest(),
            "scores": scores}


def model_outputs(name, data_dir, limit):
    from keras_s2s.corpora import load_corpus
    from keras_s2s.restore import load_model_from_saved_model
    from keras_s2s.translator import Translator

    model = load_model_from_saved_model(newest_version(name))
    translator = Translator(model)
    sources = [source for source, _ in load_corpus(TEST_SETS[name], data_dir).test][:limit]
    beam_size = tf.constant(max(model.model_config.beam_size, 4))
    sampling = {key: tf.constant(value, dtype) for (key, value), dtype in zip(
        SAMPLING.items(), (tf.float32, tf.int32, tf.float32, tf.int64))}
    decodings = {"greedy": translator.greedy,
                 "beam": lambda text: translator.beam(text, beam_size),
                 "sample": lambda text: translator.sample(text, **sampling)}
    return {decoding: digest(*decode_all(function, sources))
            for decoding, function in decodings.items()}


def compare(before_path, after_path):
    with open(before_path, encoding="utf-8") as file:
        before = json.load(file)
    with open(after_path, encoding="utf-8") as file:
        after = json.load(file)
    same = True
    if sorted(before) != sorted(after):
        print(f"The files hold different models: {sorted(before)} and {sorted(after)}.")
        return 1
    for name in sorted(before):
        for decoding, old in before[name].items():
            new = after[name][decoding]
            text_same = old["text_sha256"] == new["text_sha256"]
            score_gap = max((abs(a - b) for a, b in zip(old["scores"], new["scores"])), default=0.0)
            same &= (text_same and old["sentences"] == new["sentences"]
                     and old["score_sha256"] == new["score_sha256"])
            scores = ("bit-identical" if old["score_sha256"] == new["score_sha256"]
                      else f"max diff {score_gap:.2e}")
            print(f"{name:28} {decoding:7} {old['sentences']:5} sentences  text "
                  f"{'identical' if text_same else 'DIFFERENT'}  scores {scores}")
    return 0 if same else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", help="write the digests to this JSON file")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--models", default=",".join(TEST_SETS))
    parser.add_argument("--data-dir", default=DATA_DIR, help="the corpora (default: ../shared/data)")
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences only")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    sys.path.insert(0, ROOT)
    results = {name: model_outputs(name, args.data_dir, args.limit) for name in args.models.split(",")}
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file)
    for name, decodings in results.items():
        print(name, {decoding: entry["text_sha256"][:12] for decoding, entry in decodings.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
