"""Pretrained word vectors against random embeddings on the Anki Korean<->English sets.

1. Gathers the monolingual text beside the project (`keras_s2s.corpora.monolingual_text`):
   Multi30k English, the English side of Anki spa-eng, both sides of the Anki kor-eng
   training split, the Korean chatbot's questions and answers, without any sentence of the
   kor-eng validation and test splits.
2. Learns skip-gram word2vec on it, tokenised as the presets tokenise (`keras-s2s
   embeddings` does the same): word vectors, which meet the models' SentencePiece
   vocabularies through the piece marker and case rules of `keras_s2s.word_vectors`.
3. Trains each direction's preset twice (or three times with --frozen), same seed and a
   fixed number of epochs: random embeddings, then embeddings from the vectors on both
   sides (fine-tuned; frozen with --frozen). Reports validation loss per epoch, test BLEU
   and chrF (greedy and the preset's beam), and the vectors' coverage.

    python benchmarks/word_vectors_compare.py --data-dir ../shared/data --epochs 20
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from keras_s2s.config import preset  # noqa: E402
from keras_s2s.corpora import monolingual_text  # noqa: E402
from keras_s2s.runs import RunOptions, train_run  # noqa: E402
from keras_s2s.text import Tokenizer  # noqa: E402
from keras_s2s.word2vec import learn_word_vectors  # noqa: E402

DIRECTIONS = ("anki-kor-eng", "anki-eng-kor")


def run(corpus, arm, vectors, args, work_dir):
    options = {}
    if arm != "random":
        options = dict(source_vectors=vectors, target_vectors=vectors,
                       freeze_vectors=arm == "vectors, frozen")
    start = time.perf_counter()
    _, history, results = train_run(RunOptions(
        os.path.join(work_dir, f"{corpus}-{arm.replace(', ', '-')}"), corpus=corpus,
        data_dir=args.data_dir, epochs=args.epochs, seed=args.seed, **options))
    return {"corpus": corpus, "arm": arm, "epochs": args.epochs,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "val_loss": [round(epoch["val_loss"], 4) for epoch in history],
            "test": results["test"], "validation": results["validation"],
            "vector_coverage": results.get("vector_coverage"), "parameters": results["parameters"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=20, help="the same fixed budget for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vector-epochs", type=int, default=5, help="word2vec passes")
    parser.add_argument("--frozen", action="store_true", help="also train with frozen vectors")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "word-vectors-anki-korean.json"))
    args = parser.parse_args()
    model_config, _ = preset(DIRECTIONS[0])
    with tempfile.TemporaryDirectory() as work_dir:
        texts, sources = monolingual_text(args.data_dir, DIRECTIONS, args.seed)
        vectors = os.path.join(work_dir, "monolingual.vec")
        start = time.perf_counter()
        keyed = learn_word_vectors(texts, Tokenizer("word", model_config.lowercase,
                                                    model_config.normalization),
                                   vectors, dim=model_config.embedding_dim,
                                   epochs=args.vector_epochs, seed=args.seed)
        learned = {"sentences": len(texts), "words": len(keyed), "dim": keyed.vector_size,
                   "seconds": round(time.perf_counter() - start, 1), "sources": sources}
        print(json.dumps(learned, ensure_ascii=False))
        arms = ["random", "vectors, fine-tuned"] + (["vectors, frozen"] if args.frozen else [])
        runs = [run(corpus, arm, vectors, args, work_dir) for corpus in DIRECTIONS for arm in arms]
    payload = {"tensorflow": tf.__version__, "vectors": learned, "runs": runs,
               "command": "python benchmarks/word_vectors_compare.py --epochs "
                          f"{args.epochs}{' --frozen' if args.frozen else ''}"}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=1, ensure_ascii=False)
        file.write("\n")
    print("\n| direction | embeddings | coverage src / tgt | val loss first → last | "
          "test BLEU greedy | beam | chrF beam |")
    print("|---|---|---|---|---|---|---|")
    for result in runs:
        coverage = result["vector_coverage"] or {}
        shares = " / ".join(f"{100 * coverage[side]['found'] / coverage[side]['total']:.0f} %"
                            for side in ("source", "target") if side in coverage) or "—"
        beam = next(name for name in result["test"] if name.startswith("beam"))
        print(f"| {result['corpus']} | {result['arm']} | {shares} | {result['val_loss'][0]:.3f} → "
              f"{result['val_loss'][-1]:.3f} | {result['test']['greedy']['bleu']:.2f} | "
              f"{result['test'][beam]['bleu']:.2f} | {result['test'][beam]['chrf']:.2f} |")
    print(json.dumps({"written": os.path.relpath(args.output)}))


if __name__ == "__main__":
    main()
