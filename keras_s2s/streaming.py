"""Corpora larger than memory: sentence pairs streamed from TSV files through tf.data.

`data.make_dataset` holds every pair in memory and tokenises them all at once: the simplest
way to feed tens of thousands of pairs, but its memory and start-up time grow with the
corpus. `stream_dataset` gives batches of the same form from files: lines are read, split
and tokenised inside the tf.data graph, a buffer of bounded size shuffles them, and resident
memory stays flat however large the files are.

One pass over the files comes first (`scan_corpus`, reading one line at a time). It applies
the in-memory reader's rules (`data.tsv_records`), so it reports the same malformed lines by
number and reason, and it draws uniform samples of pairs: one to learn vocabularies and
bucket boundaries from, and optionally one held out for validation. The pipeline then skips
exactly the lines the scan set aside, so a streamed epoch holds the pairs `read_tsv_pairs`
would have returned, less the held-out ones.
"""

import dataclasses
import logging
import random

import numpy as np
import tensorflow as tf

from keras_s2s import multi_worker
from keras_s2s.data import batch_by_length, length_boundaries, tsv_records

logger = logging.getLogger(__name__)

# `keras-s2s train --pairs` streams a file larger than this (about a million short pairs,
# which in memory would take over a gigabyte) and reads a smaller one whole.
STREAMING_THRESHOLD_BYTES = 64 * 2 ** 20
# A streamed run's vocabulary sample and validation set: enough to learn 8,000-entry
# vocabularies and to score a run, and small enough to decode at the end.
STREAMED_SAMPLE_PAIRS = 200_000
STREAMED_HELD_OUT_PAIRS = 2_000  # or the run's validation_fraction of the pairs, if fewer

# A line's place in the corpus as one integer: file index * 2**32 + line number.
_FILE_STRIDE = 2 ** 32
# The characters Python's str.strip() removes (str.isspace), written for RE2.
_SPACE = r"[\t\n\x{0B}\f\r\x{1C}-\x{1F}\x{85}\pZ]"


@dataclasses.dataclass
class CorpusScan:
    """What one pass over a corpus's TSV files found."""

    paths: list  # the files, in reading order
    source_column: int
    target_column: int
    pairs: int  # usable pairs in all files, held-out ones included
    lines: int  # lines read, blank lines included
    malformed: list  # (path, line number, reason) for every non-blank line that gave no pair
    sample: list  # up to sample_size pairs drawn uniformly from those streamed (vocabularies)
    held_out: list  # up to held_out_size pairs drawn uniformly, left out of the stream
    skipped: np.ndarray  # sorted int64 keys of the lines the stream leaves out

    def summary(self):
        return (f"{len(self.paths)} file(s): {self.pairs} pairs from {self.lines} lines, "
                f"{len(self.malformed)} malformed, {len(self.held_out)} held out")


def scan_corpus(paths, source_column=0, target_column=1, sample_size=100_000, held_out_size=0,
                held_out_fraction=None, seed=0):
    """Reads TSV files once, one line at a time, keeping only bounded samples and line numbers.

    Args:
        paths: one TSV file (plain or .gz) or a list of them.
        source_column, target_column: the columns holding the two sides.
        sample_size: pairs kept for learning vocabularies and bucket boundaries.
        held_out_size: pairs held out of the stream (validation), drawn uniformly.
        held_out_fraction: if given, hold out at most this share of the pairs (at least one).
        seed: the draws' seed.

    Returns:
        A `CorpusScan`; malformed lines are also logged, as `read_tsv_pairs` logs them.
    """
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else paths
    paths = [str(path) for path in paths]
    if not paths:
        raise ValueError("paths is empty: give at least one TSV file.")
    sample, held_out = _Reservoir(sample_size, seed), _Reservoir(held_out_size, seed + 1)
    malformed, unusable, lines, pairs = [], [], 0, 0
    for file_index, path in enumerate(paths):
        for number, pair, reason in tsv_records(path, source_column, target_column):
            key = file_index * _FILE_STRIDE + number
            if pair is None:
                unusable.append(key)
                if reason is not None:
                    malformed.append((path, number, reason))
                continue
            sample.offer(key, pair)
            held_out.offer(key, pair)
            pairs += 1
        lines += number if number else 0
    if held_out_fraction is not None and held_out.items:
        # A uniform subset of a uniform sample is a uniform sample.
        wanted = max(1, round(held_out_fraction * pairs))
        if wanted < len(held_out.items):
            held_out.items = held_out.random.sample(held_out.items, wanted)
    held_out_keys = {key for key, _ in held_out.items}
    scan = CorpusScan(
        paths, source_column, target_column, pairs, lines, malformed,
        sample=[pair for key, pair in sample.items if key not in held_out_keys],
        held_out=[pair for _, pair in held_out.items],
        skipped=np.array(sorted(unusable + list(held_out_keys)), dtype=np.int64))
    if malformed:
        examples = ", ".join(f"{path} line {number}: {reason}" for path, number, reason in malformed[:3])
        logger.warning("%s (%s%s)", scan.summary(), examples, ", ..." if len(malformed) > 3 else "")
    if not pairs - len(held_out.items):
        raise ValueError(f"paths={paths!r} hold no usable sentence pair to stream.")
    return scan


class _Reservoir:
    """A uniform sample of at most `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size, seed):
        self.size, self.seen, self.items = size, 0, []
        self.random = random.Random(seed)

    def offer(self, key, item):
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append((key, item))
        elif self.size:
            slot = self.random.randrange(self.seen)
            if slot < self.size:
                self.items[slot] = (key, item)


def stream_dataset(scan, model, batch_size=64, shuffle=True, seed=0, num_buckets=8,
                   shuffle_buffer=20_000, lines_per_encode=1024, strategy=None):
    """The pairs of `scan`'s files as batches of (source_ids (batch, s), target_ids (batch, t + 2)).

    The batches have `make_dataset`'s form, bucketed by length with boundaries taken from
    the scan's sample; the epoch length is not known in advance.

    Args:
        scan: a `CorpusScan` of the files (`scan_corpus`).
        model: a `Seq2Seq` (its text processors encode the pairs, in the graph).
        batch_size: sentence pairs per batch.
        shuffle: reshuffle every epoch through a buffer of `shuffle_buffer` pairs.
        seed: shuffling seed.
        num_buckets: length buckets.
        shuffle_buffer: pairs in the shuffle buffer: memory grows with it, not with the files.
        lines_per_encode: lines tokenised together (tokenising one line at a time is slow).
        strategy: the `tf.distribute` strategy that will train on it (default: the one in
            scope). Across several workers (MultiWorkerMirroredStrategy) each worker reads
            files of its own when there are at least as many files as workers, and takes its
            share of every global batch otherwise.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    skipped = tf.constant(np.concatenate([scan.skipped, [np.iinfo(np.int64).max]]))

    def lines_of(path, file_index):
        compression = tf.where(tf.strings.regex_full_match(path, r".*\.gz"), "GZIP", "")
        # Each line's key counts on from the file's base: file index * 2**32 + line number.
        return tf.data.TextLineDataset(path, compression_type=compression).scan(
            file_index * _FILE_STRIDE, lambda key, line: (key + 1, (key + 1, line)))

    def kept(key, line):  # not among the scan's blank, malformed and held-out lines
        return skipped[tf.searchsorted(skipped, key[None])[0]] != key

    def encode(keys, lines):  # (lines,) string -> (lines, (s)), (lines, (t + 2)) ragged ids
        first = tf.equal(keys % _FILE_STRIDE, 1)
        lines = tf.where(first, tf.strings.regex_replace(lines, "^\ufeff+", ""), lines)
        # Every line kept has both columns (the scan skipped the others), so padding the
        # ragged columns to a matrix only fills cells that are never read.
        columns = tf.strings.split(tf.strings.regex_replace(lines, "[\r\n]+$", ""), "\t").to_tensor()
        sources = _stripped(columns[:, scan.source_column])  # (lines,)
        targets = _stripped(columns[:, scan.target_column])
        return (model.source_text.encode(sources),
                model.target_text.encode(targets, add_start=True))

    files = tf.data.Dataset.from_tensor_slices(
        (tf.constant(scan.paths), tf.range(len(scan.paths), dtype=tf.int64)))
    worker, workers = multi_worker.worker_position(strategy)
    shard_by_file = 1 < workers <= len(scan.paths)
    if shard_by_file:
        # Sharded here, not by tf.distribute's FILE policy, which cannot walk past the
        # length buckets' captured boundaries to find the files.
        files = files.shard(workers, worker)
    dataset = (files.interleave(lines_of, cycle_length=1)
               .filter(kept)
               .batch(lines_per_encode)
               .map(encode)
               .unbatch()
               # The identity map turns each ragged row into a plain 1-D tensor, which padding needs.
               .map(lambda source, target: (source, target)))  # -> (s,), (t + 2,) int32
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    boundaries = sample_boundaries(scan.sample, model, num_buckets)
    policy = (tf.data.experimental.AutoShardPolicy.OFF if shard_by_file
              else tf.data.experimental.AutoShardPolicy.DATA)
    return batch_by_length(dataset, boundaries, batch_size, shuffle, seed, shard_policy=policy)


def _stripped(texts):
    """`str.strip()` in the graph: Unicode whitespace off both ends."""
    return tf.strings.regex_replace(texts, f"^{_SPACE}+|{_SPACE}+$", "")


def sample_boundaries(pairs, model, num_buckets=8):
    """Bucket boundaries from the token lengths of a sample of pairs (as `make_dataset`'s)."""
    if num_buckets <= 1 or not pairs:
        return []
    sources, targets = zip(*pairs)
    source_lengths = model.source_text.encode(tf.constant(sources)).row_lengths().numpy()
    target_lengths = model.target_text.encode(tf.constant(targets), add_start=True).row_lengths().numpy()
    return length_boundaries(np.maximum(source_lengths, target_lengths), num_buckets)
