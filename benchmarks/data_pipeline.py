"""What feeding a large corpus costs: memory, time to the first batch, batches per second.

For each corpus size it writes a TSV file of that many pairs (the Anki spa-eng pairs of
../shared/data repeated, so nothing is downloaded), then measures each input path in a fresh
process, so that peak memory is that path's alone:
- `memory`: `read_tsv_pairs` + `make_dataset` (every pair held and tokenised at once);
- `stream`: `scan_corpus` + `stream_dataset` (lines read and tokenised in the tf.data graph).
Both use the spa-en-small preset's SentencePiece text processors, learned once from the first
20,000 pairs. Beside them, `train` times the multi30k-de-en-transformer preset's training step
(batch 64, `fit`) on the streamed batches: the rate at which training consumes batches, which
the pipeline must outrun.

    python benchmarks/data_pipeline.py --data-dir ../shared/data --sizes 100000,1000000,4000000 \\
        --output results/data-pipeline.json
"""

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_corpus(data_dir, size, path):
    """`size` lines of Spanish<TAB>English, the Anki pairs over and over."""
    with gzip.open(os.path.join(data_dir, "anki", "spa-eng.txt.gz"), "rt", encoding="utf-8") as file:
        pairs = [(columns[1], columns[0]) for columns in
                 (line.rstrip("\n").split("\t") for line in file) if len(columns) > 1]
    lines = [f"{spanish}\t{english}" for spanish, english in pairs]
    with open(path, "w", encoding="utf-8") as file:
        for start in range(0, size, len(lines)):
            file.write("\n".join(lines[:size - start]) + "\n")
    return pairs[:20_000]


def build_specs(sample_pairs, directory):
    """The two models' vocabularies and configs, saved once: (pipeline spec, training spec)."""
    from keras_s2s.config import preset
    from keras_s2s.model import Seq2Seq

    specs = []
    for name in ("spa-en-small", "multi30k-de-en-transformer"):
        model_config, train_config = preset(name)
        spec = os.path.join(directory, name)
        Seq2Seq.from_pairs(sample_pairs, model_config).save_spec(spec, train_config)
        specs.append(spec)
    return specs


def resident_mb():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def child(path_kind, corpus, spec, batches):
    """Runs one measurement in this (fresh) process and prints its figures as JSON."""
    import keras
    import tensorflow as tf

    from keras_s2s.data import make_dataset, read_tsv_pairs
    from keras_s2s.model import Seq2Seq
    from keras_s2s.streaming import STREAMED_SAMPLE_PAIRS, scan_corpus, stream_dataset
    from keras_s2s.training import make_optimizer

    tf.get_logger().setLevel("ERROR")
    model = Seq2Seq.from_spec(spec)
    before = resident_mb()
    started = time.perf_counter()
    if path_kind == "memory":
        dataset = make_dataset(read_tsv_pairs(corpus).pairs, model, 64)
    else:
        dataset = stream_dataset(scan_corpus(corpus, sample_size=STREAMED_SAMPLE_PAIRS), model, 64)
    built = time.perf_counter() - started
    iterator = iter(dataset)
    next(iterator)
    first_batch = time.perf_counter() - started
    figures = {"build s": round(built, 2), "first batch s": round(first_batch, 2)}
    if path_kind == "train":
        from keras_s2s.config import load_json

        _, train_config = load_json(os.path.join(spec, "config.json"))
        model.compile(optimizer=make_optimizer(train_config))
        warm_up = batches // 4
        model.fit(dataset.take(warm_up), verbose=0)
        started = time.perf_counter()
        model.fit(dataset.skip(warm_up).take(batches), verbose=0)
        figures["train batches/s"] = round(batches / (time.perf_counter() - started), 2)
    else:
        started = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        figures["pipeline batches/s"] = round(batches / (time.perf_counter() - started), 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.update({"peak RSS MB": round(peak), "growth MB": round(peak - before)})
    keras.backend.clear_session()
    print(json.dumps(figures))


def measure(path_kind, corpus, spec, batches):
    result = subprocess.run([sys.executable, __file__, "--child", path_kind, "--corpus", corpus,
                             "--spec", spec, "--batches", str(batches)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise RuntimeError(f"{path_kind} on {corpus} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--sizes", default="100000,1000000,4000000", help="pairs, comma-separated")
    parser.add_argument("--paths", default="memory,stream", help="memory, stream (comma-separated)")
    parser.add_argument("--batches", type=int, default=400, help="batches timed after the first")
    parser.add_argument("--train-batches", type=int, default=60, help="training steps timed")
    parser.add_argument("--output")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.corpus, args.spec, args.batches)

    import tensorflow as tf
    from ab_training import cpu_flags
    from report import print_report

    report = {"date": time.strftime("%Y-%m-%d"), "tensorflow": tf.__version__,
              "cpu_flags": cpu_flags(), "sizes": {}}
    rows = {}
    with tempfile.TemporaryDirectory() as directory:
        corpus = os.path.join(directory, "pairs.tsv")
        sizes = [int(size) for size in args.sizes.split(",")]
        sample_pairs = write_corpus(args.data_dir, sizes[0], corpus)
        pipeline_spec, training_spec = build_specs(sample_pairs, directory)
        for size in sizes:
            write_corpus(args.data_dir, size, corpus)
            figures = {kind: measure(kind, corpus, pipeline_spec, args.batches)
                       for kind in args.paths.split(",")}
            if size == sizes[0]:
                figures["train"] = measure("train", corpus, training_spec, args.train_batches)
            report["sizes"][size] = {"file MB": round(os.path.getsize(corpus) / 2 ** 20), **figures}
            for kind, row in figures.items():
                rows[f"{size:,} {kind}"] = {column: row.get(column, "") for column in (
                    "first batch s", "pipeline batches/s", "train batches/s", "peak RSS MB",
                    "growth MB")}
    print_report(report, rows, "pairs, path", args.output)


if __name__ == "__main__":
    sys.exit(main())
