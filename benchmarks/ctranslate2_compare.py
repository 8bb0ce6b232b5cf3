"""A keras_s2s SavedModel against CTranslate2 on the very same weights: agreement, BLEU, speed.

    python benchmarks/ctranslate2_compare.py --model saved_models/multi30k-de-en-transformer/1 \
        --source ../shared/data/multi30k/test_2016_flickr.de.gz \
        --reference ../shared/data/multi30k/test_2016_flickr.en.gz --output result.json

1. Converts the SavedModel alone (`keras_s2s.ctranslate2_export.convert_saved_model`).
2. Agreement: greedy translations of every source sentence by the SavedModel's `greedy`
   signature and by CTranslate2 in float32, fed the same pieces (the graph's tokenisation);
   the share of identical outputs, BLEU of both, and for each sentence that differs both
   outputs scored by both engines (CTranslate2's `score_batch`; ours by teacher forcing in
   the model rebuilt from the SavedModel's variables), so a near-tie shows as one.
3. Speed: one process per thread count and CTranslate2 compute type, because TensorFlow
   reads its intra-op setting once, before it runs anything, and because a CTranslate2
   int8 translator with more than one thread in the process slowed a float32 one beside it
   on a 2-core machine (benchmarks/README.md gives the figures). In each process the
   SavedModel and one CTranslate2 translator (float32 or int8, as many intra-op threads)
   decode the same batches in turns (`ab_decoding.in_turns`), greedy and beam 4, batch 1
   and 64, so each ratio compares two engines timed side by side. Each engine starts from
   raw text: the SavedModel tokenises in its graph, CTranslate2's caller with the
   `sentencepiece` package (or characters, for a character model), as a user of either
   would. `time_ratio` is our time over CTranslate2's.

Beam search ranks finished hypotheses differently in the two engines (ours divides by the
GNMT length penalty ((5 + length) / 6)^0.6, CTranslate2 by length^0.6), so only greedy
outputs are compared; beam 4 is timed for the work it does.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unicodedata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ctranslate2  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers the text ops
from ab_decoding import in_turns  # noqa: E402
from decoding_speed import read_sources  # noqa: E402

from keras_s2s import ctranslate2_export  # noqa: E402
from keras_s2s.text import SPACE_SYMBOL  # noqa: E402

BEAM_SIZES = (1, 4)
COMPUTE_TYPES = ("float32", "int8")


class PieceText:
    """Raw text <-> a converted model's tokens without TensorFlow: what a CTranslate2 user
    writes. Normalises as the graph does (Unicode form, case, single spaces), then cuts
    into SentencePiece pieces or characters, clipped to leave room for [END]."""

    def __init__(self, directory):
        with open(os.path.join(directory, "keras_s2s_config.json"), encoding="utf-8") as file:
            config = json.load(file)["model"]
        self.kind, self.lowercase = config["source_tokenizer"], config["lowercase"]
        self.normalization, self.max_pieces = config["normalization"], config["max_source_length"] - 1
        if self.kind not in ("sentencepiece", "char"):
            raise ValueError(f"source_tokenizer={self.kind!r}: only SentencePiece and character "
                             "models are tokenised here.")
        if self.kind == "sentencepiece":
            import sentencepiece

            self.processor = sentencepiece.SentencePieceProcessor(
                model_file=os.path.join(directory, "source.spm"))

    def encode(self, texts):
        rows = []
        for text in texts:
            text = unicodedata.normalize(self.normalization, text)
            if self.lowercase:
                text = unicodedata.normalize(self.normalization, text.casefold())
            text = " ".join(text.split())
            if self.kind == "sentencepiece":
                pieces = self.processor.encode(text, out_type=str)
            else:
                pieces = list(text.replace(" ", SPACE_SYMBOL))
            rows.append(pieces[:self.max_pieces])
        return rows

    @staticmethod
    def decode(pieces):
        return unicodedata.normalize("NFC", "".join(pieces).replace(SPACE_SYMBOL, " ").strip())


def ctranslate2_decode(translator, pieces, beam_size, max_length):
    """Source pieces -> the best hypothesis' tokens, as the SavedModel's search bounds it."""
    results = translator.translate_batch(
        pieces, beam_size=beam_size, max_decoding_length=max_length, min_decoding_length=0,
        max_input_length=0, length_penalty=0.6 if beam_size > 1 else 1.0)
    return [result.hypotheses[0] for result in results]


def agreement(args, directory):
    """Greedy outputs of both engines at float32 on the same pieces, BLEU and differences."""
    from keras_s2s.metrics import corpus_bleu
    from keras_s2s.restore import load_model_from_saved_model

    model = load_model_from_saved_model(args.model)
    saved = tf.saved_model.load(args.model)
    translator = ctranslate2.Translator(directory, compute_type="float32")
    sources = read_sources(args.source, args.sentences)
    max_length = model.model_config.max_target_length
    ours, ours_pieces, theirs_pieces, source_pieces = [], [], [], []
    for start in range(0, len(sources), 64):
        batch = sources[start:start + 64]
        outputs = saved.greedy(tf.constant(batch))
        ours += [text.decode("utf-8") for text in outputs["text"].numpy()]
        ours_pieces += [[token.decode("utf-8") for token in row if token not in (b"", b"[END]")]
                        for row in outputs["target_tokens"].numpy()]
        pieces = [[token.decode("utf-8") for token in row]
                  for row in model.source_text.tokenize(tf.constant(batch)).to_list()]
        source_pieces += pieces
        theirs_pieces += ctranslate2_decode(translator, pieces, 1, max_length)
    theirs = [PieceText.decode(pieces) for pieces in theirs_pieces]
    user_pieces = PieceText(directory).encode(sources)
    differing = [index for index in range(len(sources)) if ours[index] != theirs[index]]
    differences = []
    if differing:
        chosen = [source_pieces[index] for index in differing]
        outputs = {"keras_s2s": [ours_pieces[index] for index in differing],
                   "ctranslate2": [theirs_pieces[index] for index in differing]}
        scores = {(output, engine): values for output, targets in outputs.items()
                  for engine, values in (
                      ("keras_s2s",
                       ctranslate2_export.log_probabilities(model, chosen, targets).tolist()),
                      ("ctranslate2", [sum(result.log_probs) for result in
                                       translator.score_batch(chosen, targets)]))}
        for row, index in enumerate(differing):
            differences.append({"index": index, "source": sources[index], **{
                output: {"text": (ours if output == "keras_s2s" else theirs)[index],
                         "score by keras_s2s": scores[output, "keras_s2s"][row],
                         "score by ctranslate2": scores[output, "ctranslate2"][row]}
                for output in outputs}})
    report = {"sentences": len(sources),
              "identical_greedy": 1 - len(differing) / len(sources),
              "identical_pieces": sum(a == b for a, b in zip(user_pieces, source_pieces)) / len(sources),
              "differences": differences}
    if args.reference:
        references = read_sources(args.reference, args.sentences)
        report["bleu"] = {"keras_s2s": corpus_bleu(ours, references),
                          "ctranslate2 float32": corpus_bleu(theirs, references)}
    return report


def timings(args, directory, threads, compute_type):
    """{setting: {engine: median}} of the SavedModel against one CTranslate2 compute type,
    at one thread count (run in a process of its own)."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)  # before TensorFlow runs
    saved = tf.saved_model.load(args.model)
    text = PieceText(directory)
    with open(os.path.join(directory, "keras_s2s_config.json"), encoding="utf-8") as file:
        max_length = json.load(file)["model"]["max_target_length"]
    translator = ctranslate2.Translator(directory, compute_type=compute_type, inter_threads=1,
                                        intra_threads=threads)
    sentences = read_sources(args.source, args.sentences)
    figures = {}
    for beam_size in BEAM_SIZES:
        def ours(batch, beam_size=beam_size):
            texts = tf.constant(batch)
            outputs = (saved.greedy(texts) if beam_size == 1
                       else saved.beam(texts, tf.constant(beam_size)))
            return outputs["text"].numpy()

        def theirs(batch, beam_size=beam_size):
            return [text.decode(pieces) for pieces in ctranslate2_decode(
                translator, text.encode(batch), beam_size, max_length)]

        decoders = {"keras_s2s": ours, f"ctranslate2 {compute_type}": theirs}
        for batch_size in (1, 64):
            chosen = sentences[:args.batch_1_sentences] if batch_size == 1 else sentences
            batches = [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
            medians = in_turns(decoders, batches, args.rounds, warmup_batches=args.warmup_batches)
            label = "greedy" if beam_size == 1 else f"beam {beam_size}"
            figures[f"{label}, batch {batch_size}"] = {
                "unit": "median ms" if batch_size == 1 else "sentences/s",
                **{name: {"figure": figure, "cores": cores}
                   for name, (figure, cores) in medians.items()}}
            print(f"threads {threads}, {compute_type}, {label}, batch {batch_size}: " + ", ".join(
                f"{name} {figure:.1f}" for name, (figure, _) in medians.items()), file=sys.stderr)
    return figures


def time_ratios(all_timings):
    """Our time over CTranslate2's, per thread count, setting and compute type, each from
    the process that timed the two side by side."""
    ratios = {}
    for threads, by_compute_type in all_timings.items():
        for compute_type, settings in by_compute_type.items():
            for setting, figures in settings.items():
                ours = figures["keras_s2s"]["figure"]
                theirs = figures[f"ctranslate2 {compute_type}"]["figure"]
                # A batch-1 figure is a time (ms), a batch-64 one a rate (sentences/s).
                ratio = ours / theirs if figures["unit"] == "median ms" else theirs / ours
                ratios[f"threads {threads}, {setting}, {compute_type}"] = ratio
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a keras_s2s Transformer SavedModel")
    parser.add_argument("--source", required=True, help="sentences, one a line (.gz ok)")
    parser.add_argument("--reference", help="reference translations, for BLEU")
    parser.add_argument("--output", help="write the figures here as JSON")
    parser.add_argument("--sentences", type=int, default=1000, help="sentences for the agreement "
                        "and the batch-64 timings")
    parser.add_argument("--batch-1-sentences", type=int, default=200)
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts to time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-batches", type=int, default=4)
    parser.add_argument("--ctranslate2-dir", help="convert into this directory (default: a "
                        "temporary one)")
    parser.add_argument("--timings-for", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timings_for:  # the child process of one thread count and compute type
        threads, compute_type = args.timings_for
        print(json.dumps(timings(args, args.ctranslate2_dir, int(threads), compute_type)))
        return
    with tempfile.TemporaryDirectory(prefix="ctranslate2_") as scratch:
        directory = ctranslate2_export.convert_saved_model(
            args.model, args.ctranslate2_dir or os.path.join(scratch, "model"))
        report = {"model": args.model, "tensorflow": tf.__version__,
                  "ctranslate2": ctranslate2.__version__, **agreement(args, directory)}
        all_timings = {}
        for threads in map(int, args.threads.split(",")):
            all_timings[threads] = {}
            for compute_type in COMPUTE_TYPES:
                child = [sys.executable, __file__, *sys.argv[1:], "--timings-for", str(threads),
                         compute_type, "--ctranslate2-dir", directory]
                result = subprocess.run(child, capture_output=True, text=True, check=False)
                if result.returncode:
                    raise SystemExit(result.stderr[-3000:])
                all_timings[threads][compute_type] = json.loads(result.stdout.strip().splitlines()[-1])
    report["timings"] = all_timings
    report["time_ratio"] = time_ratios(all_timings)
    print(f"identical greedy outputs: {report['identical_greedy']:.1%} of {report['sentences']}; "
          f"pieces made without TensorFlow identical: {report['identical_pieces']:.1%}")
    if "bleu" in report:
        print("BLEU: " + ", ".join(f"{name} {value:.2f}" for name, value in report["bleu"].items()))
    print(f"{'setting':<42} " + " ".join(
        f"{'keras_s2s':>10} {'ct2 ' + compute_type:>12} {'ratio':>6}" for compute_type in COMPUTE_TYPES))
    for threads, by_compute_type in all_timings.items():
        for setting in by_compute_type[COMPUTE_TYPES[0]]:
            cells = []
            for compute_type in COMPUTE_TYPES:
                pair = by_compute_type[compute_type][setting]  # timed side by side
                ratio = report["time_ratio"][f"threads {threads}, {setting}, {compute_type}"]
                cells.append(f"{pair['keras_s2s']['figure']:>10.1f} "
                             f"{pair['ctranslate2 ' + compute_type]['figure']:>12.1f} {ratio:>6.2f}")
            unit = by_compute_type[COMPUTE_TYPES[0]][setting]["unit"]
            print(f"{f'threads {threads}, {setting} ({unit})':<42} " + " ".join(cells))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2, ensure_ascii=False)
            file.write("\n")
    print(json.dumps({key: report[key] for key in ("identical_greedy", "bleu", "time_ratio")
                      if key in report}))


if __name__ == "__main__":
    main()
