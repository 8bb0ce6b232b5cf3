"""Two SavedModels timed in turns, in one process: a before/after figure that drift cannot fake.

This machine's speed can drift by more from one minute to the next than a change moves it,
so separate runs of `decoding_speed.py` cannot show a gain of a few percent. Here both
models decode the same batches round after round, A and B in turns (which goes first
alternates); each figure is the median over the rounds.

    python ab_decoding.py --before /tmp/export-a --after /tmp/export-b --source test.spa \
        --batch-sizes 1,4,64 --intra-op-threads 1
"""

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers the text ops
from decoding_speed import read_sources  # noqa: E402


def one_round(decode, batches):
    """Batch 1: median milliseconds per call; larger batches: sentences per second. Also
    the cores the process kept busy: its CPU time over the round's wall time.

    `decode(batch)` must return only once its translations are ready (for a SavedModel,
    with their `.numpy()` taken); a batch is anything `len` measures.
    """
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    times = []
    for batch in batches:
        call_start = time.perf_counter()
        decode(batch)
        times.append(1000 * (time.perf_counter() - call_start))
    seconds = time.perf_counter() - start
    cores = (_cpu_seconds() - cpu_start) / seconds
    if len(batches[0]) == 1:
        return statistics.median(times), cores
    return sum(len(batch) for batch in batches) / seconds, cores


def in_turns(decoders, batches, rounds, warmup_batches=None):
    """{name: (median figure, median cores)} of `one_round` for each of `decoders`
    ({name: decode}) over the same batches, round after round.

    Each decoder first runs `warmup_batches` of the batches (all of them if None): traces,
    and XLA programs, compile there.
    """
    for decode in decoders.values():
        one_round(decode, batches[:warmup_batches])
    figures = {name: [] for name in decoders}
    for round_index in range(rounds):
        # A then B, then B then A: whichever model runs second in a round ran faster at
        # batch 1, whatever it was, and alternating cancels that.
        order = list(decoders.items())[::-1 if round_index % 2 else 1]
        for name, decode in order:
            figures[name].append(one_round(decode, batches))
    return {name: tuple(statistics.median(values) for values in zip(*figures[name]))
            for name in decoders}


def identical_outputs(decoders, batches):
    """How many sentences of the batches the two decoders translate alike."""
    before, after = decoders.values()
    return sum(int((before(batch) == after(batch)).sum()) for batch in batches)


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="SavedModel A")
    parser.add_argument("--after", required=True, help="SavedModel B")
    parser.add_argument("--source", required=True, help="sentences, one a line")
    parser.add_argument("--sentences", type=int, default=640)
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--intra-op-threads", type=int, default=0)
    parser.add_argument("--beam-size", type=int, default=0, help="time beam search (0: greedy)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    models = {"before": tf.saved_model.load(args.before), "after": tf.saved_model.load(args.after)}
    if args.beam_size:
        beam_size = tf.constant(args.beam_size)
        decoders = {name: (lambda text, model=model: model.beam(text, beam_size)["text"].numpy())
                    for name, model in models.items()}
        label = f"beam {args.beam_size}"
    else:
        decoders = {name: (lambda text, model=model: model.greedy(text)["text"].numpy())
                    for name, model in models.items()}
        label = "greedy"
    sentences = read_sources(args.source, args.sentences)
    for size in map(int, args.batch_sizes.split(",")):
        # Batch 1 times 300 single sentences; larger batches go through all of them.
        chosen = sentences[:300] if size == 1 else sentences
        batches = [tf.constant(chosen[i:i + size]) for i in range(0, len(chosen), size)]
        print(f"{label} batch {size}: {identical_outputs(decoders, batches)} of {len(chosen)} "
              "translations identical")
        medians = in_turns(decoders, batches, args.rounds)
        unit = "median ms" if size == 1 else "sentences/s"
        (before, before_cores), (after, after_cores) = (medians[name] for name in decoders)
        print(f"{label} batch {size} {unit}: before {before:.2f}, after {after:.2f} "
              f"(after/before {after / before:.2f}); cores busy: before {before_cores:.2f}, "
              f"after {after_cores:.2f}")


if __name__ == "__main__":
    main()
