"""One loaded SavedModel under hours of load: 8 threads, all four signatures, hostile inputs.

Every thread sends requests drawn from a fixed pool: the four signatures (serving_default,
greedy, beam, sample) on batches of 1 to 32 test sentences, and batches of the inputs a
server meets from careless or hostile clients (empty strings, whitespace, control
characters, invalid UTF-8, scripts the vocabulary never saw, a very long text). Each
request's answer is computed once, alone, before the load starts; under load every answer
must be the same (sampling is seeded, so it is deterministic too). Per interval (a minute
by default) the script reports the requests served, the errors and wrong answers (target
0), the p50 and p99 latency, and the process's resident memory, which must stay flat after
the warm-up: the summary gives its growth from the first interval after warm-up to the
last, and the trend of a straight line fitted through those intervals (benchmarks/README.md
has the targets and the figures).

    python soak.py --model ../saved_models/spa-en-small/2 --source test.spa --minutes 30 \
        --output results/soak-spa-en-small.json
"""

import argparse
import json
import os
import random
import statistics
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers the text ops
from decoding_speed import read_sources  # noqa: E402

SIGNATURES = ("serving_default", "greedy", "beam", "sample")
BATCH_SIZES = (1, 2, 8, 32)
REQUESTS_PER_SIGNATURE = 12


def hostile_texts(sentences):
    """Inputs a served model must answer with a defined output, never an error."""
    return [b"", b" ", b"\t\n\r", b"\x00\x01\x02\x7f", b"\xff\xfe\xc3\x28 invalid UTF-8",
            "🙂🙃 ١٢ مارس 漢字 ∑∫ ̀́".encode(), ("¿" * 300).encode(),
            " ".join(sentences[:60]).encode()]  # hundreds of words in one text


def request_pool(sentences, seed=0):
    """[(signature, batch of texts as bytes)]: ordinary batches of every size for each
    signature, and for each signature two hostile batches (hostile texts alone, and mixed
    with ordinary sentences)."""
    rng = random.Random(seed)
    ordinary = [sentence.encode() for sentence in sentences]
    hostile = hostile_texts(sentences)
    pool = []
    for signature in SIGNATURES:
        for index in range(REQUESTS_PER_SIGNATURE):
            pool.append((signature, rng.sample(ordinary, BATCH_SIZES[index % len(BATCH_SIZES)])))
        pool.append((signature, hostile))
        pool.append((signature, rng.sample(ordinary, 4) + hostile))
    return pool


def call(model, signature, texts):
    """The signature's outputs on `texts`, as NumPy arrays (so the call has finished)."""
    text = tf.constant(texts, tf.string, shape=[len(texts)])
    arguments = {"beam": {"beam_size": tf.constant(4)},
                 "sample": {"temperature": tf.constant(0.8), "top_k": tf.constant(10),
                            "top_p": tf.constant(0.9), "seed": tf.constant(7, tf.int64)}}
    outputs = model.signatures[signature](text=text, **arguments.get(signature, {}))
    return {"text": outputs["text"].numpy(), "score": outputs["score"].numpy()}


def same_answer(got, expected):
    return (np.array_equal(got["text"], expected["text"])
            and np.allclose(got["score"], expected["score"], rtol=1e-4, atol=1e-4))


def resident_mb():
    """The process's resident memory now (not its peak), in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Log:
    """What the threads record, per interval: latencies, errors and wrong answers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies, self.errors, self.wrong, self.messages = [], 0, 0, []

    def record(self, milliseconds, error=None, wrong=False):
        with self.lock:
            self.latencies.append(milliseconds)
            if error is not None:
                self.errors += 1
                if len(self.messages) < 5:
                    self.messages.append(error)
            self.wrong += wrong

    def take(self):
        """This interval's records, and a fresh start for the next."""
        with self.lock:
            taken = (self.latencies, self.errors, self.wrong, self.messages)
            self.latencies, self.errors, self.wrong, self.messages = [], 0, 0, []
            return taken


def worker(model, pool, answers, log, stop, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        index = rng.randrange(len(pool))
        signature, texts = pool[index]
        start = time.perf_counter()
        try:
            got = call(model, signature, texts)
        except Exception as error:  # noqa: BLE001  an error is a figure here, not a crash
            log.record(1000 * (time.perf_counter() - start), error=f"{signature}: {error}"[:300])
            continue
        log.record(1000 * (time.perf_counter() - start), wrong=not same_answer(got, answers[index]))


def soak(model, sentences, seconds, interval, threads=8, warmup_intervals=1, report=print):
    """Runs the load for `seconds`; returns the per-interval figures and the summary."""
    pool = request_pool(sentences)
    answers = [call(model, signature, texts) for signature, texts in pool]  # alone, traced once
    log, stop = Log(), threading.Event()
    workers = [threading.Thread(target=worker, args=(model, pool, answers, log, stop, seed),
                                daemon=True) for seed in range(threads)]
    start = time.perf_counter()
    for thread in workers:
        thread.start()
    intervals = []
    while len(intervals) < max(1, round(seconds / interval)):
        time.sleep(max(0.0, start + (len(intervals) + 1) * interval - time.perf_counter()))
        latencies, errors, wrong, messages = log.take()
        row = {"minute": round((time.perf_counter() - start) / 60, 2), "requests": len(latencies),
               "errors": errors, "wrong_answers": wrong,
               "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99),
               "resident_mb": round(resident_mb(), 1), "error_messages": messages}
        intervals.append(row)
        report(f"{row['minute']:7.2f} min  {row['requests']:6d} requests  {errors} errors  "
               f"{wrong} wrong  p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  "
               f"RSS {row['resident_mb']:8.1f} MB")
    stop.set()
    for thread in workers:
        thread.join()
    return {"threads": threads, "interval_seconds": interval, "pool_requests": len(pool),
            "intervals": intervals, **summarise(intervals, warmup_intervals)}


def summarise(intervals, warmup_intervals):
    """Totals, and the memory after warm-up: growth first to last, and a fitted trend."""
    settled = intervals[warmup_intervals:] or intervals
    memory = [row["resident_mb"] for row in settled]
    if len(memory) > 1:
        slope = np.polyfit(np.arange(len(memory)), memory, 1)[0]  # MB per interval
        trend = 100 * slope * (len(memory) - 1) / memory[0]
    else:
        trend = 0.0
    return {"requests": sum(row["requests"] for row in intervals),
            "errors": sum(row["errors"] for row in intervals),
            "wrong_answers": sum(row["wrong_answers"] for row in intervals),
            "p50_ms_median": statistics.median(row["p50_ms"] for row in settled),
            "p99_ms_max": max(row["p99_ms"] for row in settled),
            "resident_mb_after_warmup": memory[0], "resident_mb_last": memory[-1],
            "resident_growth_percent": round(100 * (memory[-1] - memory[0]) / memory[0], 2),
            "resident_trend_percent": round(float(trend), 2)}


def _percentile(values, percent):
    return round(float(np.percentile(values, percent)), 2) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="SavedModel directory")
    parser.add_argument("--source", required=True, help="ordinary sentences, one a line")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval-seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--warmup-intervals", type=int, default=1,
                        help="intervals left out of the memory figures")
    parser.add_argument("--output", help="JSON file for the figures")
    args = parser.parse_args()
    model = tf.saved_model.load(args.model)
    sentences = read_sources(args.source, 200)
    results = soak(model, sentences, 60 * args.minutes, args.interval_seconds, args.threads,
                   args.warmup_intervals)
    results = {"model": args.model, "source": args.source, "minutes": args.minutes,
               "tensorflow": tf.__version__, "date": time.strftime("%Y-%m-%d"), **results}
    print(f"{results['requests']} requests, {results['errors']} errors, "
          f"{results['wrong_answers']} wrong answers; p50 {results['p50_ms_median']} ms "
          f"(median of intervals), p99 at most {results['p99_ms_max']} ms; resident memory "
          f"{results['resident_mb_after_warmup']} -> {results['resident_mb_last']} MB "
          f"({results['resident_growth_percent']:+.2f} %, fitted trend "
          f"{results['resident_trend_percent']:+.2f} %)")
    if args.output:
        with open(args.output, "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
