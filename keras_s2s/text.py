"""Text in, token ids out, and back: normalisation, tokenisation and the vocabulary.

Everything a served model does to a string happens here, in TensorFlow ops, so the exported
graph takes raw text. The pipeline for one side (source or target) is

    raw UTF-8 -> repair invalid bytes -> Unicode normalise (+ case fold) -> split -> clip -> ids

and decoding runs it backwards: ids -> tokens -> join -> NFC text.
"""

import collections
import hashlib
import io
import os

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

from keras_s2s.startup import is_sentencepiece_info_line, native_lines_hidden

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
SPECIAL_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)


def not_padding(token_ids):
    """Token ids (...) -> bool (...), True on every real token, False on `PAD_ID`."""
    return tf.not_equal(token_ids, PAD_ID)


def unpadded_lengths(token_ids):
    """(batch, n) ids padded at the end -> (batch,) int32, each row's real tokens."""
    return tf.reduce_sum(tf.cast(not_padding(token_ids), tf.int32), axis=1)


# Characters that are neither letters, digits, combining marks nor spaces become tokens of
# their own. RE2's \w is ASCII-only, so the Unicode classes are spelled out: Hangul is \p{L}.
_PUNCTUATION = r"[^\p{L}\p{N}\p{M}\s]"
# The character tokenizer shows a space as U+2581 so that no vocabulary entry is blank;
# SentencePiece uses the same symbol.
SPACE_SYMBOL = "\u2581"
TOKENIZER_KINDS = ("word", "char", "sentencepiece")


def learn_sentencepiece(normalized_texts, vocab_size):
    """Trains a SentencePiece unigram model whose ids 0-3 are `SPECIAL_TOKENS`.

    Args:
        normalized_texts: strings already passed through `Tokenizer.normalize`; the model
            applies no normalisation of its own, so the graph normalises exactly once.
        vocab_size: pieces in the model, special tokens included (fewer if the data is
            too small to support that many).

    Returns:
        The serialized model (bytes).
    """
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(normalized_texts), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
        normalization_rule_name="identity", pad_id=PAD_ID, unk_id=UNK_ID, bos_id=START_ID,
        eos_id=END_ID, pad_piece=PAD, unk_piece=UNK, bos_piece=START, eos_piece=END,
        num_threads=os.cpu_count() or 1, minloglevel=2)
    return model.getvalue()


def texts_tensor(texts, name="texts"):
    """A (batch,) tf.string tensor of a list of texts, for the graph to repair and normalise.

    Each text may be `str` or `bytes`. Bytes go in as they are and invalid UTF-8 in them
    becomes U+FFFD in the graph (`Tokenizer.normalize`); so does a `str` holding the
    surrogates Python uses for undecodable bytes (command-line arguments, file names).

    Raises:
        ValueError: `texts` is a single string, or an entry is neither str nor bytes.
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{name} must be a list of strings; got a single {type(texts).__name__}. "
                         f"Wrap it: [{name}].")
    encoded = []
    for index, text in enumerate(texts):
        if isinstance(text, str):
            text = text.encode("utf-8", "surrogateescape")
        elif not isinstance(text, bytes):
            raise ValueError(f"{name}[{index}] is {type(text).__name__} ({text!r:.40}); every "
                             "text must be a str or bytes.")
        encoded.append(text)
    return tf.constant(encoded, tf.string, shape=[len(encoded)])


class _NamedSentencepieceModel(tf.saved_model.experimental.TrackableResource):
    """A SentencePiece model's resource, under a name made from the model's bytes.

    tensorflow-text's own resource is private to the kernel that creates it, and
    `tf.random.set_seed` (so `keras.utils.set_random_seed`) drops every cached kernel, which
    deletes it: a tokenizer built before the call could no longer tokenise
    ("SentencepieceResource does not exist"). A named resource outlives its kernel. Equal
    bytes get the same name and share one resource, which nothing changes after it is made.
    """

    def __init__(self, model):
        super().__init__()
        self._model = model
        self._shared_name = "keras_s2s_sentencepiece_" + hashlib.sha256(model).hexdigest()[:24]
        _ = self.resource_handle  # made now, in the context (eager or graph) of the tokenizer

    def _create_resource(self):
        return gen_sentencepiece_tokenizer.sentencepiece_op(model=self._model,
                                                            shared_name=self._shared_name)


class Tokenizer(tf.Module):
    """Normalises and splits text in graph; `join` is the inverse of `split`.

    A tf.Module, so that an exported graph tracks the SentencePiece model resource it uses.

    Args:
        kind: "word" splits on spaces and makes each punctuation mark a token; "char" makes
            every character a token; "sentencepiece" cuts text into subword pieces learned
            from the data ("▁an", "triebs", "rad", "system"), so rare words become known
            pieces instead of [UNK].
        lowercase: case-fold before splitting.
        normalization: Unicode normal form ("NFKC", "NFC", "NFKD" or "NFD"). The
            decomposed forms split Hangul syllables into jamo, so output is always
            composed again with NFC before it is shown.
        sentencepiece_model: the serialized model for "sentencepiece" (`learn_sentencepiece`).
    """

    def __init__(self, kind="word", lowercase=True, normalization="NFKC", sentencepiece_model=None):
        super().__init__(name=f"{kind}_tokenizer")
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"kind must be one of {TOKENIZER_KINDS}; got {kind!r}.")
        if normalization not in ("NFKC", "NFC", "NFKD", "NFD"):
            raise ValueError(f"normalization must be NFKC, NFC, NFKD or NFD; got {normalization!r}.")
        if (kind == "sentencepiece") != (sentencepiece_model is not None):
            raise ValueError("sentencepiece_model is needed for kind='sentencepiece' and only then.")
        self.kind = kind
        self.lowercase = lowercase
        self.normalization = normalization
        self.sentencepiece = None
        if kind == "sentencepiece":
            with native_lines_hidden(is_sentencepiece_info_line):
                # Pieces come out as strings, so the same vocabulary tables as for words map them.
                self.sentencepiece = tf_text.SentencepieceTokenizer(sentencepiece_model,
                                                                    out_type=tf.string)
                # tensorflow-text has no option for the resource's name, so its (private)
                # resource attribute is replaced; tests/test_text.py fails if that attribute
                # ever changes.
                self.sentencepiece._model_resource = _NamedSentencepieceModel(sentencepiece_model)

    def normalize(self, texts):
        """(batch,) string -> (batch,) string: valid, normalised, single-spaced UTF-8."""
        # Invalid byte sequences become U+FFFD instead of failing the normaliser.
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        texts = tf_text.normalize_utf8(texts, self.normalization)
        if self.lowercase:
            # case_fold_utf8 is NFKC_Casefold: with lowercase, compatibility characters are
            # always folded (NFC behaves as NFKC); the requested form is applied after it.
            texts = tf_text.normalize_utf8(tf_text.case_fold_utf8(texts), self.normalization)
        # RE2's \s is ASCII-only: Unicode separators and control characters count as spaces too.
        texts = tf.strings.regex_replace(texts, r"[\s\p{Z}\p{Cc}]+", " ")
        return tf.strings.strip(texts)

    def split(self, texts):
        """(batch,) string -> (batch, (tokens)) ragged string."""
        texts = self.normalize(texts)
        if self.kind == "sentencepiece":
            return self.sentencepiece.tokenize(texts)
        if self.kind == "char":
            texts = tf.strings.regex_replace(texts, " ", SPACE_SYMBOL)
            return tf.strings.unicode_split(texts, "UTF-8")
        return tf_text.regex_split(texts, r"\s+|(" + _PUNCTUATION + ")", _PUNCTUATION)

    def join(self, tokens):
        """(batch, (tokens)) ragged string -> (batch,) NFC string."""
        if self.kind in ("char", "sentencepiece"):
            # Both mark spaces with U+2581 (SentencePiece at the start of a word's first piece).
            texts = tf.strings.reduce_join(tokens, axis=-1)
            texts = tf.strings.strip(tf.strings.regex_replace(texts, SPACE_SYMBOL, " "))
        else:
            texts = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
            # Undo the spaces `split` put around punctuation where written text has none.
            texts = tf.strings.regex_replace(texts, r" ([.,!?;:%)\]}])", r"\1")
            texts = tf.strings.regex_replace(texts, r"([(\[{]) ", r"\1")
            texts = tf.strings.regex_replace(texts, r"(\p{L}) ' (\p{L})", r"\1'\2")
        return tf_text.normalize_utf8(texts, "NFC")


class Vocabulary:
    """An ordered token list whose first entries are `SPECIAL_TOKENS`; a token's id is its index.

    A SentencePiece vocabulary also carries its model (`sentencepiece_model`, bytes); it is
    saved beside the token list, with the extension .spm.
    """

    def __init__(self, tokens, sentencepiece_model=None):
        self.sentencepiece_model = sentencepiece_model
        tokens = list(tokens)
        if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"A vocabulary must start with {SPECIAL_TOKENS}; got {tokens[:4]}.")
        bad = [token for token in tokens if not token or token != token.strip() or "\n" in token]
        if bad:
            raise ValueError(f"Vocabulary tokens must be non-blank single lines; got {bad[:5]}.")
        if len(set(tokens)) != len(tokens):
            raise ValueError("Vocabulary tokens must be unique.")
        self.tokens = tokens

    @classmethod
    def build(cls, token_lists, max_size=8000, min_count=1):
        """Keeps the `max_size` most frequent tokens (ties broken alphabetically).

        Args:
            token_lists: a ragged string tensor (batch, (tokens)), as `Tokenizer.split` returns.
            max_size: vocabulary size including the special tokens.
            min_count: tokens seen fewer times are left out (they will map to [UNK]).
        """
        if max_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must exceed {len(SPECIAL_TOKENS)}; got {max_size}.")
        counts = collections.Counter(token.decode("utf-8")
                                     for token in token_lists.flat_values.numpy())
        for token in SPECIAL_TOKENS:
            counts.pop(token, None)
        ranked = sorted((item for item in counts.items() if item[1] >= min_count),
                        key=lambda item: (-item[1], item[0]))
        kept = [token for token, _ in ranked[:max_size - len(SPECIAL_TOKENS)]]
        return cls(SPECIAL_TOKENS + tuple(kept))

    @classmethod
    def from_sentencepiece(cls, model):
        """The pieces of a SentencePiece model, in id order, with the model attached."""
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        return cls([processor.id_to_piece(index) for index in range(processor.get_piece_size())],
                   sentencepiece_model=model)

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return (isinstance(other, Vocabulary) and self.tokens == other.tokens
                and self.sentencepiece_model == other.sentencepiece_model)

    def save(self, path):
        """Writes one token a line to `path` (and the SentencePiece model to <path stem>.spm)."""
        with open(path, "w", encoding="utf-8") as file:
            file.write("\n".join(self.tokens) + "\n")
        if self.sentencepiece_model is not None:
            with open(_model_path(path), "wb") as file:
                file.write(self.sentencepiece_model)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as file:
            tokens = file.read().splitlines()
        model = None
        if os.path.exists(_model_path(path)):
            with open(_model_path(path), "rb") as file:
                model = file.read()
        return cls(tokens, sentencepiece_model=model)


def build_vocabulary(texts, kind, lowercase=True, normalization="NFKC", max_size=8000,
                     min_count=1):
    """The vocabulary of one side of a corpus, for tokenizer `kind`.

    Words and characters are counted and the `max_size` most frequent kept; SentencePiece
    learns `max_size` pieces from the normalised text.
    """
    if not texts:
        raise ValueError("texts is empty: a vocabulary needs at least one sentence.")
    plain = Tokenizer("word" if kind == "sentencepiece" else kind, lowercase, normalization)
    if kind == "sentencepiece":
        normalized = [text.decode("utf-8") for text in plain.normalize(tf.constant(texts)).numpy()]
        return Vocabulary.from_sentencepiece(learn_sentencepiece(normalized, max_size))
    return Vocabulary.build(plain.split(tf.constant(texts)), max_size, min_count)


def make_tokenizer(kind, lowercase, normalization, vocabulary):
    """The Tokenizer that goes with `vocabulary` (a SentencePiece one needs its model)."""
    return Tokenizer(kind, lowercase, normalization, vocabulary.sentencepiece_model
                     if kind == "sentencepiece" else None)


def _model_path(vocab_path):
    return os.path.splitext(str(vocab_path))[0] + ".spm"


class TextProcessor(tf.Module):
    """One side's text <-> ids conversion, in graph.

    Args:
        tokenizer: a `Tokenizer`.
        vocabulary: a `Vocabulary`.
        max_length: most ids `encode` returns per text, [END] included.
        vocab_file: optional path holding `vocabulary` (as `Vocabulary.save` writes it).
            Tables read from a file make SavedModel copy it into `assets/`, so an exported
            model carries its vocabulary as a plain text file.
    """

    def __init__(self, tokenizer, vocabulary, max_length, vocab_file=None, name=None):
        super().__init__(name=name)
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.max_length = max_length
        if vocab_file is None:
            token_to_id = tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary.tokens), tf.range(len(vocabulary), dtype=tf.int64))
            id_to_token = tf.lookup.KeyValueTensorInitializer(
                tf.range(len(vocabulary), dtype=tf.int64), tf.constant(vocabulary.tokens))
        else:
            if Vocabulary.load(vocab_file) != vocabulary:
                raise ValueError(f"vocab_file {vocab_file} does not hold the given vocabulary.")
            line, number = tf.lookup.TextFileIndex.WHOLE_LINE, tf.lookup.TextFileIndex.LINE_NUMBER
            token_to_id = tf.lookup.TextFileInitializer(
                vocab_file, tf.string, line, tf.int64, number, vocab_size=len(vocabulary))
            id_to_token = tf.lookup.TextFileInitializer(
                vocab_file, tf.int64, number, tf.string, line, vocab_size=len(vocabulary))
        self.token_to_id = tf.lookup.StaticHashTable(token_to_id, default_value=UNK_ID)
        self.id_to_token = tf.lookup.StaticHashTable(id_to_token, default_value=UNK)

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def tokenize(self, texts):
        """(batch,) string -> (batch, (tokens)) ragged string, clipped to leave room for [END]."""
        return self.tokenizer.split(texts)[:, :self.max_length - 1]

    def encode(self, texts, add_start=False):
        """(batch,) string -> (batch, (ids)) ragged int32 ending in [END].

        Every encoded text holds at least [END], so an empty string is a valid input.
        Unknown tokens map to [UNK]; [START] is prepended when `add_start` (decoder targets).
        """
        return self.ids_from_tokens(self.tokenize(texts), add_start)

    def ids_from_tokens(self, tokens, add_start=False):
        """`encode` for texts already tokenised: (batch, (tokens)) ragged string -> ids."""
        ids = tf.ragged.map_flat_values(self.token_to_id.lookup, tokens)
        ids = tf.cast(ids, tf.int32)
        batch = ids.nrows()
        pieces = [ids, tf.fill([batch, 1], END_ID)]
        if add_start:
            pieces.insert(0, tf.fill([batch, 1], START_ID))
        return tf.concat(pieces, axis=1)

    def ids_to_tokens(self, ids):
        """(batch, t) int -> (batch, t) string."""
        return self.id_to_token.lookup(tf.cast(ids, tf.int64))

    def decode(self, ids):
        """(batch, t) int ids -> (batch,) text; stops at the first [END], skips [PAD]/[START]."""
        ids = tf.cast(ids, tf.int32)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1), 0)
        keep = before_end & (ids != PAD_ID) & (ids != START_ID)
        tokens = tf.ragged.boolean_mask(self.ids_to_tokens(ids), keep)  # (batch, (kept))
        return self.tokenizer.join(tokens)
