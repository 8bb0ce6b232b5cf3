"""Sentence pairs from files, and the tf.data pipeline that feeds training.

Reading never drops a line silently: every line that cannot become a pair is counted with
its line number and reason in the `PairFile` returned. The pipeline tokenises the corpus
once, up front, then shuffles, groups sentences of similar length into the same batch
(bucketing) and pads each batch only to its own longest sentence.
"""

import codecs
import dataclasses
import gzip
import hashlib
import io
import logging
import os
import random
import zlib

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PairFile:
    """Pairs read from one file, and what could not be read."""

    path: str
    pairs: list  # (source, target) string tuples, in file order
    lines: int  # lines read, blank lines included
    malformed: list  # (line number, reason) for every non-blank line that gave no pair

    def summary(self):
        return (f"{self.path}: {len(self.pairs)} pairs from {self.lines} lines, "
                f"{len(self.malformed)} malformed")


# Byte-order marks of encodings whose lines `\n` does not split: such a file is refused
# whole, since every "line" read from it would be garbage with NUL bytes in it.
_WIDE_BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32",
              codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16"}


def open_text(path):
    """Opens a plain or .gz file for reading bytes."""
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def sha256_of(path):
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_fingerprint(paths):
    """What a run's pairs are, whatever path names them: {"bytes", "sha256"} of the files.

    The digest covers each file's bytes in order, so the same files under other paths give
    the same fingerprint and an edited or replaced file gives another.
    """
    digest = hashlib.sha256()
    total = 0
    for path in paths:
        total += os.path.getsize(path)
        digest.update(bytes.fromhex(sha256_of(path)))
    return {"bytes": total, "sha256": digest.hexdigest()}


def _check_not_wide(path, first_line):
    for bom, encoding in _WIDE_BOMS.items():  # UTF-32 first: its LE mark starts like UTF-16's
        if first_line.startswith(bom):
            raise ValueError(f"{path} is {encoding} text (it starts with a {encoding} byte-order "
                             "mark); convert it to UTF-8 first, e.g. with iconv -t UTF-8.")


def raw_lines(path):
    """(line number, bytes) for each line of a plain or .gz file.

    Raises:
        ValueError: the file is UTF-16 or UTF-32, or a .gz file that is not gzip data, is
            truncated or is damaged; the message names the file and the line reached.
    """
    number = 0
    try:
        with open_text(path) as file:
            for number, raw_line in enumerate(file, start=1):
                if number == 1:
                    _check_not_wide(path, raw_line)
                yield number, raw_line
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        if isinstance(error, EOFError):
            raise ValueError(f"{path} is truncated: its gzip data ends after line {number}, "
                             "before the end of the stream; copy or download it again.") from None
        if number == 0 and "Not a gzipped file" in str(error):
            with open(path, "rb") as file:
                start = file.read(8)
            raise ValueError(f"{path} is not gzip data (it starts with {start!r}), though its "
                             "name ends in .gz; if it is plain text, rename it without .gz."
                             ) from None
        place = f"after line {number}" if number else "before its first line"
        raise ValueError(f"{path} is damaged {place} ({error}); copy or download it again."
                         ) from None


def read_lines(path):
    """One string per line of a UTF-8 file, plain or .gz, without line endings.

    Blank lines are kept (line i stays line i, as parallel files need). Bytes that are not
    UTF-8 are replaced with U+FFFD and reported with their line numbers.
    """
    lines, bad = [], []
    for number, raw_line in raw_lines(path):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            line = raw_line.decode("utf-8", errors="replace")
            bad.append(number)
        lines.append(line.lstrip("\ufeff") if number == 1 else line)
    if bad:
        logger.warning("%s: %d line(s) not UTF-8, invalid bytes replaced (lines %s)", path,
                       len(bad), ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else ""))
    return [line.rstrip("\r\n") for line in lines]


def read_tsv_pairs(path, source_column=0, target_column=1):
    """Reads tab-separated pairs (e.g. Anki/Tatoeba `english<TAB>other<TAB>attribution`).

    Args:
        path: a UTF-8 text file, plain or .gz; a byte-order mark and CRLF endings are fine.
        source_column, target_column: which tab-separated columns hold the two sides.

    Returns:
        A `PairFile`. Lines with too few columns, an empty side, bytes that are not UTF-8
        (a Latin-1 or Windows-1252 line, say) or NUL characters are listed in `malformed`
        with their line numbers (and logged), never silently skipped or guessed at.

    Raises:
        ValueError: the file is UTF-16 or UTF-32 (by its byte-order mark).
    """
    pairs, malformed, line_count = [], [], 0
    for line_count, pair, reason in tsv_records(path, source_column, target_column):
        if pair is not None:
            pairs.append(pair)
        elif reason is not None:
            malformed.append((line_count, reason))
    return _reported(PairFile(str(path), pairs, line_count, malformed))


def tsv_records(path, source_column=0, target_column=1):
    """What each line of a TSV file gives, one line at a time: (line number, pair, reason).

    `pair` is a (source, target) tuple, or None for a blank line (reason None) or a
    malformed one (reason says why). `read_tsv_pairs` collects these; a corpus too large
    for memory is scanned with them (`keras_s2s.streaming`).
    """
    if source_column == target_column:
        raise ValueError(f"source_column and target_column must differ; both are {source_column}.")
    needed = max(source_column, target_column) + 1
    for number, raw_line in raw_lines(path):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, None, f"not UTF-8 ({error.reason} at byte {error.start})"
            continue
        if number == 1:
            line = line.lstrip("\ufeff")
        line = line.rstrip("\r\n")
        if not line.strip():
            yield number, None, None
            continue
        if "\x00" in line:
            yield number, None, "NUL character"
            continue
        columns = line.split("\t")
        if len(columns) < needed:
            yield number, None, f"{len(columns)} column(s), need {needed}"
            continue
        source, target = columns[source_column].strip(), columns[target_column].strip()
        if not source or not target:
            yield number, None, "empty source" if not source else "empty target"
            continue
        yield number, (source, target), None


def read_parallel_files(source_path, target_path):
    """Pairs from two line-aligned files (plain or .gz), e.g. Multi30k train.de.gz + train.en.gz.

    Returns a `PairFile`; line pairs with an empty side are listed in `malformed`. Files
    of different lengths are an error, since every pair after the first gap would be wrong.
    """
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(f"source_path={source_path!r} has {len(sources)} lines but "
                         f"target_path={target_path!r} has {len(targets)}.")
    pairs, malformed = [], []
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        source, target = source.strip(), target.strip()
        if source and target:
            pairs.append((source, target))
        elif source or target:
            malformed.append((number, "empty source" if not source else "empty target"))
    return _reported(PairFile(f"{source_path} + {target_path}", pairs, len(sources), malformed))


def read_csv_pairs(path, source_field="Q", target_field="A"):
    """Pairs from a CSV file with a header, e.g. the Korean chatbot set (`Q,A,label`).

    Returns a `PairFile`; rows with an empty field are listed in `malformed`.
    """
    import csv

    text = "\n".join(read_lines(path))
    reader = csv.DictReader(io.StringIO(text))
    missing = [field for field in (source_field, target_field) if field not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path} has no column(s) {missing}; its header is {reader.fieldnames}.")
    pairs, malformed = [], []
    for row in reader:
        line = reader.line_num
        source, target = (row.get(source_field) or "").strip(), (row.get(target_field) or "").strip()
        if source and target:
            pairs.append((source, target))
        else:
            malformed.append((line, "empty source" if not source else "empty target"))
    return _reported(PairFile(str(path), pairs, reader.line_num, malformed))


def _reported(pair_file):
    if pair_file.malformed:
        examples = ", ".join(f"line {number}: {reason}" for number, reason in pair_file.malformed[:3])
        logger.warning("%s (%s%s)", pair_file.summary(), examples,
                       ", ..." if len(pair_file.malformed) > 3 else "")
    return pair_file


def split_pairs(pairs, held_out_fraction, seed=0):
    """Shuffles a copy of `pairs` and returns (kept, held_out); held_out has >= 1 pair if any."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1); got {held_out_fraction}.")
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    held_out = int(round(len(shuffled) * held_out_fraction))
    if held_out_fraction > 0 and len(shuffled) > 1:
        held_out = max(held_out, 1)
    return shuffled[held_out:], shuffled[:held_out]


def length_boundaries(lengths, num_buckets=8):
    """Bucket upper bounds at the length quantiles, so every bucket gets a similar share."""
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles})


def make_dataset(pairs, model, batch_size=64, shuffle=True, seed=0, num_buckets=8):
    """A dataset of (source_ids (batch, s), target_ids (batch, t + 2)) int32 batches.

    Args:
        pairs: (source, target) string tuples.
        model: a `Seq2Seq` (its text processors encode the pairs).
        batch_size: sentence pairs per batch; the last batch of a bucket may be smaller.
        shuffle: reshuffle every epoch (deterministically from `seed`).
        seed: shuffling seed.
        num_buckets: length buckets; 1 pads every batch to its longest pair, as without bucketing.
    """
    if not pairs:
        raise ValueError("pairs is empty: there is nothing to train or evaluate on.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    for index, pair in enumerate(pairs):
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(text, str) for text in pair)):
            raise ValueError(f"pairs[{index}] must be a (source, target) pair of strings; got "
                             f"{pair!r:.80}.")
    sources, targets = zip(*pairs)
    # Tokenising the whole corpus once, here, keeps text processing out of every epoch.
    source_ids = model.source_text.encode(tf.constant(sources))  # (pairs, (s)) ragged
    target_ids = model.target_text.encode(tf.constant(targets), add_start=True)  # (pairs, (t + 2))
    lengths = np.maximum(source_ids.row_lengths().numpy(), target_ids.row_lengths().numpy())
    # The identity map turns each ragged row into a plain 1-D tensor, which padding needs.
    dataset = tf.data.Dataset.from_tensor_slices((source_ids, target_ids)).map(
        lambda source, target: (source, target))
    if shuffle:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    boundaries = length_boundaries(lengths, num_buckets) if num_buckets > 1 else []
    # Bucketing hides the epoch length from tf.data; stating it lets progress bars and
    # `fit` know when an epoch ends.
    bucket_sizes = np.bincount(np.searchsorted(boundaries, lengths, side="right"))
    batches = int(np.sum(np.ceil(bucket_sizes / batch_size)))
    # The pairs live in memory, not in files: across several workers
    # (MultiWorkerMirroredStrategy) each takes its share of every global batch.
    return batch_by_length(dataset, boundaries, batch_size, shuffle, seed, batches,
                           tf.data.experimental.AutoShardPolicy.DATA)


def batch_by_length(dataset, boundaries, batch_size, shuffle, seed, batches=None,
                    shard_policy=tf.data.experimental.AutoShardPolicy.DATA):
    """(source, target) id vectors -> padded batches of similar lengths, as training takes them.

    Args:
        dataset: (source_ids (s,), target_ids (t + 2,)) int32 elements.
        boundaries: bucket upper bounds on max(s, t + 2) (`length_boundaries`).
        batch_size, shuffle, seed: as `make_dataset`'s.
        batches: the number of batches an epoch gives, where it is known.
        shard_policy: how `tf.distribute` splits the dataset across workers.
    """
    dataset = dataset.bucket_by_sequence_length(
        lambda source, target: tf.maximum(tf.shape(source)[0], tf.shape(target)[0]),
        bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    if shuffle:
        # Batches leave the buckets in length order; mixing them keeps epochs unbiased.
        dataset = dataset.shuffle(4 * (len(boundaries) + 1), seed=seed + 1,
                                  reshuffle_each_iteration=True)
    if batches is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    options = tf.data.Options()
    # Autotuning was seen to stall several seconds at the start of an epoch on 2 cores.
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = shard_policy
    return dataset.prefetch(2).with_options(options)
