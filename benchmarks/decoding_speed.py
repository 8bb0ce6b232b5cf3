"""Decoding speed of an exported SavedModel: sentences/s per batch size, batch-1 latency.

Loads the SavedModel the way a server would (TensorFlow and TensorFlow Text only), warms up
each signature and batch shape, then times greedy and beam search over the given sentences.
Also reports the SavedModel's load time, its size on disk, and this process's peak memory.
With --checkpoint-dir it first exports that trained model (timed) and benchmarks the export.

The matmul floor: the model's own matmuls for one decoder step and one encoder position,
timed alone in a graph loop at 1 and 64 rows, times the measured mean numbers of output and
source tokens. No decoder built on these kernels can beat it at that batch size; the rest of
a decoding's time is element-wise work, the search's bookkeeping and per-op overhead.

    python benchmarks/decoding_speed.py --model demo_output/saved_model \
        --source demo_output/test.source.txt --beam-sizes 4
    python benchmarks/decoding_speed.py --checkpoint-dir runs/spa-en-small \
        --model /tmp/spa-en-small-export --source test.spa.txt
"""

import argparse
import gzip
import json
import os
import resource
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers the text ops
from flops import decoding_matmul_shapes, matmul_chain_seconds  # noqa: E402
from report import print_report  # noqa: E402


def read_sources(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file]
    return (lines * (limit // max(len(lines), 1) + 1))[:limit]


def throughput(function, sentences, batch_size, repeats=3, streams=1):
    """Sentences per second over all sentences, best of `repeats` passes (after a warm-up).

    With `streams` > 1, that many threads send the batches at once, as concurrent clients
    of a server do (TensorFlow runs the calls side by side).
    """
    batches = [tf.constant(sentences[i:i + batch_size]) for i in range(0, len(sentences), batch_size)]
    function(batches[0])

    def send(share):
        for batch in share:
            function(batch)["text"].numpy()

    best = float("inf")
    for _ in range(repeats):
        threads = [threading.Thread(target=send, args=(batches[first::streams],))
                   for first in range(streams)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        best = min(best, time.perf_counter() - start)
    return len(sentences) / best


def latency_ms(function, sentences, count=300):
    """p50 and p99 of one-sentence calls, after one untimed pass over the same sentences (an
    XLA-compiled model compiles there, once per source length bucket)."""
    for sentence in sentences[:count]:
        function(tf.constant([sentence]))
    times = []
    for sentence in sentences[:count]:
        start = time.perf_counter()
        function(tf.constant([sentence]))["text"].numpy()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def matmul_floor(translator, model_path, sentences, batch_sizes=(1, 64)):
    """{figure: value} of the matmul floor (see the module docstring) for greedy decoding."""
    with open(os.path.join(model_path, "assets", "config.json"), encoding="utf-8") as file:
        config = json.load(file)["model"]
    with open(os.path.join(model_path, "assets", "target_vocab.txt"), encoding="utf-8") as file:
        target_vocab = sum(1 for _ in file)
    output_tokens = source_tokens = 0
    for start in range(0, len(sentences), 64):
        outputs = translator.greedy(tf.constant(sentences[start:start + 64]))
        output_tokens += int(tf.reduce_sum(outputs["length"]))
        source_tokens += int(tf.reduce_sum(tf.cast(outputs["source_tokens"] != b"", tf.int32)))
    mean_output, mean_source = output_tokens / len(sentences), source_tokens / len(sentences)
    floor = {"mean output tokens": round(mean_output, 2), "mean source tokens": round(mean_source, 2)}
    for rows in batch_sizes:
        decoder, encoder = decoding_matmul_shapes(config, target_vocab, rows)
        step, position = matmul_chain_seconds(decoder), matmul_chain_seconds(encoder)
        # Every row of a batch decodes its own tokens: a batch of `rows` sentences takes
        # mean_output steps of `rows` rows each, at best (rows that finish early only add).
        seconds = mean_output * step + mean_source * position
        floor[f"decoder step ms, {rows} rows"] = round(1000 * step, 4)
        floor[f"encoder position ms, {rows} rows"] = round(1000 * position, 4)
        if rows == 1:
            floor["batch 1 floor ms"] = round(1000 * seconds, 2)
        else:
            floor[f"batch {rows} ceiling sentences/s"] = round(rows / seconds, 1)
    return floor


def directory_bytes(path):
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="SavedModel directory (written first "
                        "when --checkpoint-dir is given)")
    parser.add_argument("--checkpoint-dir", help="export this trained model to --model first")
    parser.add_argument("--projection-dtype", default="float32", choices=("float32", "bfloat16"),
                        help="with --checkpoint-dir: the export's output projection dtype")
    parser.add_argument("--jit-compile", action="store_true",
                        help="with --checkpoint-dir: export with XLA-compiled greedy decoding "
                             "of small batches")
    parser.add_argument("--shards", type=int, default=1,
                        help="with --checkpoint-dir: export decoding batches in this many "
                             "concurrent shards (pair with --intra-op-threads 1)")
    parser.add_argument("--source", required=True, help="sentences, one a line")
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--batch-sizes", default="1,16,64,256")
    parser.add_argument("--beam-sizes", default="4")
    parser.add_argument("--output", help="also write the results here as JSON")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="threads one op may use (0: TensorFlow's default, all cores); a "
                             "server sets the same with --tensorflow_intra_op_parallelism")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="ops run at once (0: TensorFlow's default)")
    parser.add_argument("--streams", type=int, default=1,
                        help="concurrent callers for the sentences/s figures (latency: always one)")
    args = parser.parse_args()
    # Thread pools are fixed when TensorFlow first runs an op: set them before anything runs.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    export_seconds = None
    if args.checkpoint_dir:
        from keras_s2s.training import load_trained_model

        model = load_trained_model(args.checkpoint_dir)
        start = time.perf_counter()
        model.export(args.model, projection_dtype=args.projection_dtype, jit_compile=args.jit_compile,
                     shards=args.shards)
        export_seconds = time.perf_counter() - start
    start = time.perf_counter()
    translator = tf.saved_model.load(args.model)
    load_seconds = time.perf_counter() - start
    sentences = read_sources(args.source, args.sentences)
    decoders = {"greedy": translator.greedy}
    for beam_size in map(int, args.beam_sizes.split(",")) if args.beam_sizes else []:
        decoders[f"beam {beam_size}"] = (
            lambda text, size=beam_size: translator.beam(text, tf.constant(size)))
    report = {"model": args.model, "export_seconds": export_seconds and round(export_seconds, 2),
              "intra_op_threads": args.intra_op_threads, "inter_op_threads": args.inter_op_threads,
              "streams": args.streams,
              "load_seconds": round(load_seconds, 2), "saved_model_bytes": directory_bytes(args.model),
              "decoders": {}}
    for name, function in decoders.items():
        row = {f"batch {size}": round(throughput(function, sentences[:max(size * 4, 256)] if size == 1
                                                 else sentences, size, streams=args.streams), 1)
               for size in map(int, args.batch_sizes.split(","))}
        p50, p99 = latency_ms(function, sentences)
        row.update({"batch 1 p50 ms": round(p50, 2), "batch 1 p99 ms": round(p99, 2)})
        report["decoders"][name] = row
    report["matmul floor, greedy"] = matmul_floor(translator, args.model, sentences)
    # Linux reports ru_maxrss in KiB.
    report["peak_memory_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    exported = f"export: {export_seconds:.2f} s, " if export_seconds is not None else ""
    print(f"{exported}load: {load_seconds:.2f} s, "
          f"SavedModel {report['saved_model_bytes'] / 2 ** 20:.1f} MiB, "
          f"peak memory {report['peak_memory_mib']} MiB")
    print("matmul floor, greedy: " + ", ".join(f"{key} {value}" for key, value
                                               in report["matmul floor, greedy"].items()))
    print_report(report, report["decoders"], "sentences/s", args.output)


if __name__ == "__main__":
    main()
