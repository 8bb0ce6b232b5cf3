"""How closely an imported Marian model translates as CTranslate2's own conversion of it.

For each layout variant (post-norm and pre-norm, each feed-forward activation) a small random
Marian Transformer is written as Marian does (tests/marian_models.py), imported with
`keras_s2s.pretrained.load_marian`, and converted with `ctranslate2.converters.MarianConverter`,
which reads the same .npz with NumPy and shares no code with the import. Both translate the
same sentences greedily; the report gives the share of identical outputs and the largest
difference between the two engines' log-probability of a token of CTranslate2's outputs.

    python benchmarks/marian_agreement.py [--sentences 100] [--output results/marian-agreement.json]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.marian_models import SOURCE_SENTENCES, agreement_with_ctranslate2, write_marian_model  # noqa: E402

VARIANTS = [(pre_norm, activation) for pre_norm in (False, True)
            for activation in ("swish", "relu", "gelu")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="random models per variant")
    parser.add_argument("--output", help="write the rows as JSON here")
    args = parser.parse_args()
    sentences = list(SOURCE_SENTENCES[:args.sentences])
    rows = []
    for pre_norm, activation in VARIANTS:
        identical, tokens, largest = 0, 0, 0.0
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as scratch:
                directory = os.path.join(scratch, "marian")
                write_marian_model(directory, seed=seed, pre_norm=pre_norm, activation=activation)
                ours, theirs, our_scores, their_scores = agreement_with_ctranslate2(
                    directory, pathlib.Path(scratch), sentences)
            identical += sum(a == b for a, b in zip(ours, theirs, strict=True))
            tokens += len(their_scores)
            largest = max(largest, float(np.max(np.abs(our_scores - their_scores))))
        rows.append({"norm": "pre-norm" if pre_norm else "post-norm", "activation": activation,
                     "sentences": len(sentences) * args.seeds, "identical_greedy": identical,
                     "tokens_scored": tokens, "max_log_prob_difference": largest})
        print(f"{rows[-1]['norm']:9} {activation:5}  greedy identical {identical}/"
              f"{len(sentences) * args.seeds}  max |Δ log p| over {tokens} tokens: {largest:.2e}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump({"command": " ".join(["python", "benchmarks/marian_agreement.py"] + sys.argv[1:]),
                       "rows": rows}, file, indent=2)


if __name__ == "__main__":
    main()
