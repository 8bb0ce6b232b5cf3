"""Decoding choices of a trained run, scored on held-out sentences (its validation split).

The choices a model ships with (how many checkpoints to average, the beam size, the length
penalty) are made on held-out data that is not the test set. For each number of averaged
checkpoints, each beam size and each length penalty, this decodes the source file with the
model a `keras-s2s train` run left in its checkpoint directory and prints sacreBLEU (cased
and lower-cased) and chrF against the reference file:

    python benchmarks/decoding_choices.py --checkpoint-dir runs/multi30k-transformer \
        --source ../shared/data/multi30k/val.de.gz --reference ../shared/data/multi30k/val.en.gz \
        --average-last 1,5 --beam-sizes 1,4,5,8 --length-penalties 0.6,1.0 --output choices.json
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_s2s.data import read_lines  # noqa: E402
from keras_s2s.metrics import corpus_bleu, corpus_chrf  # noqa: E402
from keras_s2s.training import load_trained_model  # noqa: E402
from keras_s2s.translator import Translator, translate_in_batches  # noqa: E402
from training_trace import save_report  # noqa: E402


def integers(text):
    return [int(value) for value in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-dir", required=True, help="a `keras-s2s train` run")
    parser.add_argument("--source", required=True, help="held-out sentences, one a line (.gz ok)")
    parser.add_argument("--reference", required=True, help="their reference translations")
    parser.add_argument("--average-last", type=integers, default=[1], help="e.g. 1,3,5")
    parser.add_argument("--beam-sizes", type=integers, default=[1, 4, 5])
    parser.add_argument("--length-penalties", default="0.6",
                        type=lambda text: [float(value) for value in text.split(",")])
    parser.add_argument("--output", help="write the scores as JSON here")
    args = parser.parse_args()

    sources, references = read_lines(args.source), read_lines(args.reference)
    rows = []
    for average_last in args.average_last:
        model = load_trained_model(args.checkpoint_dir, average_last)
        for alpha in args.length_penalties:
            translator = Translator(model)
            # The GNMT exponent the beam ranks by; set before the first trace reads it.
            translator.length_penalty = alpha
            for beam_size in args.beam_sizes:
                hypotheses = translate_in_batches(translator, sources, 64, beam_size)["text"]
                rows.append({"average_last": average_last, "beam_size": beam_size,
                             "length_penalty": alpha,
                             "bleu": round(corpus_bleu(hypotheses, references), 2),
                             "bleu_lowercase": round(corpus_bleu(hypotheses, references, True), 2),
                             "chrf": round(corpus_chrf(hypotheses, references), 2)})
                print(rows[-1], flush=True)
    save_report(args.output, {"checkpoint_dir": os.path.basename(os.path.normpath(args.checkpoint_dir)),
                              "source": os.path.basename(args.source),
                              "sentences": len(sources), "rows": rows})


if __name__ == "__main__":
    main()
