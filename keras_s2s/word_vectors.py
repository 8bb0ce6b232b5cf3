"""Pretrained word vectors: read word2vec or fastText files, fit them to a vocabulary, learn them.

An embedding learned from plain text before any translation pair knows that "thanks" and
"thank" are near each other; with a few thousand pairs a model cannot learn that alone. The
path of a vector file is

    file (word2vec text or binary, fastText .vec) -> gensim KeyedVectors
        -> one row per vocabulary entry that has a vector -> the embedding's initial weights

Entries without a vector, and the special tokens, keep the random rows the layer's own
initialiser gave them. The vectors are rescaled, by one factor for the whole matrix, to the
standard deviation of those random rows: cosine similarities and the ratios of norms are
kept, while the model sees inputs at the scale it was tuned for (a Transformer multiplies
its embeddings by √d_model before adding a position table of order 1; raw word2vec
components are an order of magnitude larger than Keras' initial ones, and would drown it).
The rows become the model's weights, so an export reads no vector file.
`keras_s2s.word2vec` learns such a file from plain text.

gensim is an optional dependency: `pip install "keras_s2s[embeddings]"`.
"""

import dataclasses
import gzip
import os
import zlib

import numpy as np

from keras_s2s.data import raw_lines
from keras_s2s.text import SPACE_SYMBOL, SPECIAL_TOKENS

EXTRA = "embeddings"


def require_gensim():
    """gensim's `KeyedVectors` class, or an ImportError that names the extra to install."""
    try:
        from gensim.models import KeyedVectors
    except ImportError as error:
        raise ImportError("Word vectors need gensim: pip install \"keras_s2s[" + EXTRA + "]\" "
                          f"(or pip install gensim); importing it failed: {error}") from error
    return KeyedVectors


@dataclasses.dataclass
class Coverage:
    """How many entries of a vocabulary found a vector in a file."""

    path: str
    found: int  # vocabulary entries (special tokens left out) that got a vector
    total: int  # vocabulary entries, special tokens left out
    by_rule: dict  # found entries per rule: "exact", "without ▁", "lower-cased"
    file_words: int  # distinct words read from the file
    vector_dim: int  # width of the file's vectors (projected if it differs from the layer's)
    duplicates: int = 0  # words the file lists more than once (the first vector is kept)
    not_utf8: int = 0  # words whose bytes are not UTF-8 (left out)
    missing: list = dataclasses.field(default_factory=list)  # a few entries that start random

    @property
    def fraction(self):
        return self.found / max(self.total, 1)

    def summary(self):
        rules = ", ".join(f"{count:,} {rule}" for rule, count in self.by_rule.items() if count)
        problems = "".join(f"; {count:,} {what}" for what, count in (
            ("duplicate words ignored", self.duplicates),
            ("words not UTF-8 ignored", self.not_utf8)) if count)
        return (f"{self.path}: {self.found:,} of {self.total:,} vocabulary entries "
                f"({100 * self.fraction:.1f} %) found a vector ({rules}){problems}; "
                f"{self.vector_dim}-wide vectors from {self.file_words:,} words")


def _header(path):
    """(count, dim, binary) from a word2vec/fastText file's header, or a ValueError."""
    lines = raw_lines(path)  # a damaged or mislabelled .gz is named here
    first = next(lines, (0, b""))[1]
    second = next(lines, (0, b""))[1]
    lines.close()
    try:
        count, dim = (int(field) for field in first.decode("ascii").split())
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{path} is not a word vector file in the word2vec or fastText "
                         "formats: its first line should be '<words> <dimensions>', got "
                         f"{first[:60]!r}.") from None
    if count < 1 or dim < 1:
        raise ValueError(f"{path}: the header announces {count} words of {dim} dimensions.")
    # A text file's second line is a word and `dim` numbers; in a binary one the numbers
    # are raw float32 bytes, which almost never read as that. The word itself may be broken
    # UTF-8 in either format, so only the numbers decide.
    fields = second.decode("utf-8", errors="replace").split()
    binary = len(fields) != dim + 1 or not all(_is_number(field) for field in fields[1:])
    return count, dim, binary


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_vectors(path):
    """Reads a vector file in the word2vec text or binary format, or fastText's .vec.

    Args:
        path: the file (plain or .gz); which of the formats it holds is read from it.

    Returns:
        (keyed_vectors, duplicates, not_utf8): gensim `KeyedVectors`, the number of words
        listed more than once (the first vector is kept) and of words that are not UTF-8
        (left out).

    Raises:
        ValueError: a missing file, one in none of the formats, or one whose vectors do not
            have the width (or number) its header announces.
    """
    if not os.path.isfile(path):
        raise ValueError(f"Vector file {path!r} does not exist.")
    count, dim, binary = _header(path)
    KeyedVectors = require_gensim()
    try:
        vectors = KeyedVectors.load_word2vec_format(path, binary=binary, unicode_errors="replace")
    except (ValueError, EOFError, IndexError, zlib.error, gzip.BadGzipFile) as error:
        kind = "binary" if binary else "text"
        raise ValueError(f"{path}: its header announces {count} words of {dim} dimensions, "
                         f"but the {kind} entries do not match that ({error}).") from None
    # gensim leaves an empty (None) slot for every duplicate it skipped.
    words = [word for word in vectors.index_to_key if word is not None]
    broken = [word for word in words if "\ufffd" in word]
    duplicates = count - len(words)
    if broken or duplicates:
        keep = [word for word in words if "\ufffd" not in word]
        clean = KeyedVectors(dim)
        if keep:
            clean.add_vectors(keep, vectors[keep])
        vectors = clean
    return vectors, duplicates, len(broken)


def candidates(token):
    """The forms of a vocabulary entry looked up in a vector file, in order, with their rule."""
    forms = [(token, "exact")]
    if token.startswith(SPACE_SYMBOL) and len(token) > 1:  # a SentencePiece word-initial piece
        forms.append((token[1:], "without ▁"))
    forms += [(form.lower(), "lower-cased") for form, _ in list(forms) if form.lower() != form]
    return forms


def align(vectors, tokens):
    """Vectors for the tokens that have one: (ids, (found, dim) float32 rows, rule counts, missing)."""
    ids, rows, missing = [], [], []
    by_rule = {"exact": 0, "without ▁": 0, "lower-cased": 0}
    for index, token in enumerate(tokens):
        if index < len(SPECIAL_TOKENS):
            continue
        for form, rule in candidates(token):
            if form in vectors.key_to_index:
                ids.append(index)
                rows.append(vectors[form])
                by_rule[rule] += 1
                break
        else:
            missing.append(token)
    rows = np.asarray(rows, np.float32).reshape(len(ids), vectors.vector_size)
    return np.asarray(ids, np.int64), rows, by_rule, missing


def project(rows, width, seed=0):
    """(n, dim) rows -> (n, width) by a fixed linear map, when the file's width differs.

    Narrower vectors are placed in the wider space by orthonormal rows, which keeps every
    dot product; wider ones keep their `width` principal directions, which keeps most of
    their variance. A fixed map keeps the embedding the layer's shape, so checkpoints, the
    fast paths and a tied output projection need nothing new.
    """
    dim = rows.shape[1]
    if dim == width:
        return rows
    if dim < width:
        random = np.random.default_rng(seed).standard_normal((width, width))
        basis = np.linalg.qr(random)[0][:dim]  # (dim, width), orthonormal rows
        return (rows @ basis).astype(np.float32)
    _, _, directions = np.linalg.svd(rows - rows.mean(0), full_matrices=True)  # (dim, dim)
    return (rows @ directions[:width].T).astype(np.float32)  # (n, dim) -> (n, width)


def embedding_matrix(path, tokens, initial):
    """The initial embedding for `tokens`: rows from `path` where a vector exists.

    Args:
        path: a vector file (`read_vectors`).
        tokens: the vocabulary's entries, special tokens first.
        initial: (vocab, width) the layer's freshly initialised matrix; rows without a
            vector keep their values, and the vectors are rescaled to its standard deviation.

    Returns:
        ((vocab, width) float32 matrix, `Coverage`).

    Raises:
        ValueError: when no vocabulary entry has a vector in the file (an all-random
            embedding would silently be no pretraining at all).
    """
    vectors, duplicates, not_utf8 = read_vectors(path)
    ids, rows, by_rule, missing = align(vectors, tokens)
    coverage = Coverage(str(path), len(ids), len(tokens) - len(SPECIAL_TOKENS), by_rule,
                        len(vectors), vectors.vector_size, duplicates, not_utf8, missing[:10])
    if not len(ids):
        sample = ", ".join(repr(word) for word in vectors.index_to_key[:5])
        raise ValueError(f"No entry of the {coverage.total}-entry vocabulary has a vector in "
                         f"{path} ({len(vectors)} usable words, e.g. {sample}; "
                         f"{duplicates} duplicates, {not_utf8} not UTF-8): is it the right "
                         "language, and tokenised (and case-folded) as the model tokenises?")
    rows = project(rows, initial.shape[1])
    scale = float(np.std(initial)) / max(float(np.std(rows)), 1e-12)
    matrix = np.array(initial, np.float32)
    matrix[ids] = rows * scale
    return matrix, coverage


def initialize_embeddings(model):
    """Sets a new `Seq2Seq`'s embeddings from the vector files its `ModelConfig` names.

    Called by `Seq2Seq.from_pairs`; a model rebuilt from a checkpoint or a `.keras` file
    gets its rows from there, so only a new model reads the files.

    Returns:
        {side: `Coverage`} for "source" and "target" (or "shared", for one embedding).
    """
    config = model.model_config
    sides = [("source", config.source_vectors, model.encoder, model.source_text.vocabulary),
             ("target", config.target_vectors, model.decoder, model.target_text.vocabulary)]
    if config.share_embeddings:  # one matrix for both sides, so one file
        sides = [("shared", config.source_vectors or config.target_vectors, model.encoder,
                  model.source_text.vocabulary)]
    coverage = {}
    for side, path, stack, vocabulary in sides:
        if path:
            variable = stack.embedding.embeddings  # (vocab, width)
            matrix, coverage[side] = embedding_matrix(path, vocabulary.tokens, variable.numpy())
            variable.assign(matrix)
    return coverage
