"""Model and training configuration: dataclasses saved as JSON beside every model.

A model directory always holds the `ModelConfig` that built it, so a checkpoint can be
rebuilt without the code that trained it guessing any hyper-parameter.
"""

import dataclasses
import json
from typing import Optional

TOKENIZERS = ("word", "char", "sentencepiece")
CELLS = ("gru", "lstm")
ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "luong-concat")
ARCHITECTURES = ("rnn", "transformer")
POSITIONAL_KINDS = ("sinusoidal", "learned", "stored")
# The feed-forward nonlinearities: "gelu" is the exact (erf) form, "gelu-sigmoid" the
# approximation x·σ(1.702x) that Marian computes and calls gelu.
FEED_FORWARD_ACTIVATIONS = ("relu", "gelu", "gelu-sigmoid", "swish")
DECODER_STARTS = ("token", "zeros")
LEARNING_RATE_DECAYS = ("none", "cosine", "inverse-sqrt")
PRECISIONS = ("float32", "mixed_bfloat16", "auto")  # keras_s2s.precision
# The widest beam search accepted. Beyond a few dozen hypotheses translations stop changing,
# while memory and time grow with the width (each step scores beam_size x vocabulary
# extensions per sentence), so a mistyped size would exhaust memory instead of helping.
MAX_BEAM_SIZE = 64


def check_beam_size(beam_size, name="beam_size"):
    """Raises ValueError unless 1 <= beam_size <= MAX_BEAM_SIZE."""
    if not 1 <= beam_size <= MAX_BEAM_SIZE:
        raise ValueError(f"{name} must be from 1 to {MAX_BEAM_SIZE}; got {beam_size}.")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a model's text processing and layers."""

    source_tokenizer: str = "word"  # "word" (words, punctuation), "char" or "sentencepiece" (subwords)
    target_tokenizer: str = "word"  # same choices, for the output side
    lowercase: bool = True  # case-fold both sides before tokenising
    normalization: str = "NFKC"  # Unicode form applied before tokenising (NFKC keeps Hangul composed)
    max_source_vocab: int = 8000  # source vocabulary size (kept tokens or learned pieces), specials included
    max_target_vocab: int = 8000  # most frequent target tokens kept, special tokens included
    min_count: int = 1  # tokens seen fewer times than this map to [UNK]
    max_source_length: int = 64  # longer input is clipped to this many tokens ([END] included)
    max_target_length: int = 64  # decoding stops after this many tokens
    embedding_dim: int = 128  # size of the token embeddings on both sides
    units: int = 256  # RNN units per direction and per layer
    cell: str = "gru"  # "gru" or "lstm"
    num_layers: int = 1  # stacked RNN layers in the encoder and in the decoder
    bidirectional: bool = True  # read the source in both directions
    attention: Optional[str] = "bahdanau"  # one of ATTENTIONS, or None for the context-vector baseline
    attention_units: int = 256  # width of the additive score network (bahdanau, luong-concat)
    input_feeding: bool = False  # feed the previous attentional vector into the next RNN step
    dropout: float = 0.0  # dropout on embeddings and on the attentional vector
    beam_size: int = 1  # default decoding (translate(), serving_default): 1 greedy, >1 beam search
    length_penalty: float = 0.6  # GNMT length-penalty exponent alpha used by beam search
    architecture: str = "rnn"  # "rnn" (fields above) or "transformer" (units is d_model; fields below)
    num_heads: int = 4  # transformer: attention heads per layer; units must be divisible by it
    ff_units: int = 1024  # transformer: inner width of each position-wise feed-forward network
    norm_first: bool = True  # transformer: layer norm before each block (pre-norm) or after it (post-norm)
    positional: str = "sinusoidal"  # transformer: "sinusoidal", "learned" or "stored" (fixed, imported)
    ff_activation: str = "relu"  # transformer: the feed-forward nonlinearity (FEED_FORWARD_ACTIVATIONS)
    output_bias: bool = False  # transformer: a bias added to the logits (Marian's output layer has one)
    decoder_start: str = "token"  # transformer: first decoder input: [START]'s embedding, or "zeros" (Marian)
    attention_dropout: float = 0.0  # transformer: dropout on the attention weights
    share_embeddings: bool = False  # transformer: one vocabulary, one matrix for source, target, output
    source_vectors: Optional[str] = None  # word2vec/fastText file that starts a new source embedding
    target_vectors: Optional[str] = None  # the same for the target side (a shared embedding takes one file)
    freeze_vectors: bool = False  # keep the pretrained embedding rows fixed instead of fine-tuning them

    def __post_init__(self):
        _check_choice("source_tokenizer", self.source_tokenizer, TOKENIZERS)
        _check_choice("target_tokenizer", self.target_tokenizer, TOKENIZERS)
        _check_choice("cell", self.cell, CELLS)
        if self.attention is not None:
            _check_choice("attention", self.attention, ATTENTIONS)
        if self.input_feeding and self.attention is None:
            raise ValueError("input_feeding=True needs an attention mechanism; got attention=None.")
        for name in ("max_source_vocab", "max_target_vocab", "min_count", "embedding_dim",
                     "units", "num_layers", "attention_units", "beam_size"):
            _check_positive(name, getattr(self, name))
        check_beam_size(self.beam_size)
        # [END] takes one source position, so a source needs room for at least one token more.
        if self.max_source_length < 2:
            raise ValueError(f"max_source_length must be at least 2; got {self.max_source_length}.")
        _check_positive("max_target_length", self.max_target_length)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0; got {self.length_penalty}.")
        _check_choice("architecture", self.architecture, ARCHITECTURES)
        _check_choice("positional", self.positional, POSITIONAL_KINDS)
        _check_choice("ff_activation", self.ff_activation, FEED_FORWARD_ACTIVATIONS)
        _check_choice("decoder_start", self.decoder_start, DECODER_STARTS)
        for name in ("num_heads", "ff_units"):
            _check_positive(name, getattr(self, name))
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1); got {self.attention_dropout}.")
        if self.architecture == "transformer":
            if self.units % self.num_heads:
                raise ValueError(f"units must be divisible by num_heads; got units={self.units}, "
                                 f"num_heads={self.num_heads}.")
            if self.units % 2:
                raise ValueError(f"units must be even for the positional table; got units={self.units}.")
        if self.freeze_vectors and not (self.source_vectors or self.target_vectors):
            raise ValueError("freeze_vectors=True needs source_vectors or target_vectors; "
                             "got neither.")
        if self.share_embeddings and self.source_vectors and self.target_vectors and (
                self.source_vectors != self.target_vectors):
            raise ValueError("share_embeddings=True has one embedding, so one vector file; got "
                             f"source_vectors={self.source_vectors!r} and "
                             f"target_vectors={self.target_vectors!r}.")
        if self.share_embeddings:
            if self.architecture != "transformer":
                raise ValueError("share_embeddings=True needs architecture='transformer'; "
                                 f"got architecture={self.architecture!r}.")
            if (self.source_tokenizer, self.max_source_vocab) != (self.target_tokenizer,
                                                                   self.max_target_vocab):
                raise ValueError(
                    "share_embeddings=True needs one vocabulary for both sides: the same "
                    f"source_tokenizer/target_tokenizer ({self.source_tokenizer!r}, "
                    f"{self.target_tokenizer!r}) and max_source_vocab/max_target_vocab "
                    f"({self.max_source_vocab}, {self.max_target_vocab}).")


@dataclasses.dataclass
class TrainConfig:
    """How a model is trained; both training paths read the same fields."""

    epochs: int = 10  # passes over the training pairs
    batch_size: int = 64  # sentence pairs per step (before bucketing by length)
    learning_rate: float = 1e-3  # Adam step size
    clip_norm: float = 5.0  # global gradient norm is clipped to this (0 disables clipping)
    label_smoothing: float = 0.0  # probability mass spread over the vocabulary in the loss
    seed: int = 0  # seeds weight initialisation, dropout and shuffling
    validation_fraction: float = 0.05  # share of pairs held out for validation when none are given
    learning_rate_decay: str = "none"  # "none", "cosine" (down to 10 % at the end) or "inverse-sqrt"
    warmup_steps: int = 0  # steps of linear warm-up from 0 to learning_rate (cosine, inverse-sqrt)
    keep_checkpoints: int = 3  # newest checkpoints kept (average_checkpoints reads them)
    freeze_encoder: bool = False  # train the decoder only (the encoder layers, not a shared embedding)
    # "float32"; "mixed_bfloat16": bfloat16 compute, float32 weights; "auto": mixed_bfloat16
    # where the CPU has bfloat16 instructions (AVX512-BF16, AMX), else float32 (`precision.py`)
    precision: str = "float32"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            _check_positive(name, getattr(self, name))
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}.")
        if self.clip_norm < 0:
            raise ValueError(f"clip_norm must be >= 0; got {self.clip_norm}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {self.label_smoothing}.")
        _check_choice("learning_rate_decay", self.learning_rate_decay, LEARNING_RATE_DECAYS)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer; got {self.warmup_steps!r}.")
        if self.learning_rate_decay == "inverse-sqrt" and self.warmup_steps < 1:
            raise ValueError("learning_rate_decay='inverse-sqrt' needs warmup_steps >= 1; "
                             f"got warmup_steps={self.warmup_steps}.")
        _check_positive("keep_checkpoints", self.keep_checkpoints)
        _check_choice("precision", self.precision, PRECISIONS)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1); got {self.validation_fraction}.")


def _anki_korean(source_vocab, target_vocab):
    """The Anki Korean<->English preset; the two directions differ only in vocabulary sizes."""
    return (ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                        max_source_vocab=source_vocab, max_target_vocab=target_vocab,
                        max_source_length=48, max_target_length=48, embedding_dim=192, units=256,
                        attention_units=192, dropout=0.35, beam_size=4),
            TrainConfig(epochs=40, batch_size=32, learning_rate=2e-3, label_smoothing=0.1,
                        learning_rate_decay="cosine", keep_checkpoints=5))


# Presets that are known to reach their task's target on a 2-core CPU (see README results).
PRESETS = {
    "dates": (
        ModelConfig(source_tokenizer="char", target_tokenizer="char", max_source_length=48,
                    max_target_length=12, embedding_dim=32, units=128, attention_units=128),
        TrainConfig(epochs=3, batch_size=64, learning_rate=3e-3),
    ),
    "toy-ko": (
        ModelConfig(source_tokenizer="word", target_tokenizer="word", max_source_length=24,
                    max_target_length=16, embedding_dim=64, units=128, attention_units=128),
        TrainConfig(epochs=6, batch_size=64, learning_rate=3e-3),
    ),
    # The embedded tasks with a small Transformer (2 + 2 layers, d_model 64 or 128).
    "dates-transformer": (
        ModelConfig(source_tokenizer="char", target_tokenizer="char", max_source_length=48,
                    max_target_length=12, architecture="transformer", units=64, num_layers=2,
                    num_heads=4, ff_units=128),
        TrainConfig(epochs=4, batch_size=64, learning_rate=3e-3,
                    learning_rate_decay="inverse-sqrt", warmup_steps=100),
    ),
    "toy-ko-transformer": (
        ModelConfig(source_tokenizer="word", target_tokenizer="word", max_source_length=24,
                    max_target_length=16, architecture="transformer", units=128, num_layers=2,
                    num_heads=4, ff_units=256),
        TrainConfig(epochs=6, batch_size=64, learning_rate=2e-3,
                    learning_rate_decay="inverse-sqrt", warmup_steps=200),
    ),
    # Multi30k de->en: SentencePiece on both sides, bi-GRU 384 + Bahdanau, regularised for
    # Multi30k's training set and sized so that the export stays within what a shipped model
    # may take; saved_models/multi30k-de-en/README.md gives its size, BLEU and training time.
    "multi30k-de-en": (
        ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                    max_source_vocab=6000, max_target_vocab=4000, max_source_length=80,
                    max_target_length=80, embedding_dim=256, units=384, attention_units=256,
                    dropout=0.3, beam_size=5, length_penalty=0.6),
        TrainConfig(epochs=25, batch_size=64, learning_rate=2e-3, label_smoothing=0.1,
                    learning_rate_decay="cosine", keep_checkpoints=5),
    ),
    # Multi30k de->en with a Transformer: one cased SentencePiece vocabulary for both sides,
    # its embeddings tied to the output projection; sized for an hour on a 2-core CPU
    # (saved_models/multi30k-de-en-transformer/README.md gives what it reached).
    "multi30k-de-en-transformer": (
        ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                    lowercase=False, max_source_vocab=8000, max_target_vocab=8000,
                    max_source_length=80, max_target_length=80, architecture="transformer",
                    units=192, num_layers=3, num_heads=4, ff_units=768, dropout=0.1,
                    share_embeddings=True, beam_size=5, length_penalty=0.6),
        TrainConfig(epochs=8, batch_size=64, learning_rate=1.5e-3, label_smoothing=0.1,
                    learning_rate_decay="inverse-sqrt", warmup_steps=500, keep_checkpoints=5),
    ),
    # Anki spa->eng (110,000 training pairs of short sentences): a few epochs go a long way.
    "anki-spa-eng": (
        ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                    max_source_vocab=8000, max_target_vocab=6000, max_source_length=64,
                    max_target_length=64, embedding_dim=256, units=384, attention_units=256,
                    dropout=0.2, beam_size=4),
        TrainConfig(epochs=4, batch_size=64, learning_rate=2e-3, label_smoothing=0.1,
                    learning_rate_decay="cosine"),
    ),
    # Anki spa->eng at the size of the TensorFlow "NMT with attention" tutorial (GRU 256,
    # 5,000-entry vocabularies, batch 64), trained for a 10-minute budget on a 2-core CPU.
    # Subword pieces rather than words: the same vocabulary size then leaves no [UNK].
    "spa-en-small": (
        ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                    max_source_vocab=5000, max_target_vocab=5000, embedding_dim=256, units=256,
                    attention_units=256, dropout=0.1, beam_size=4),
        TrainConfig(epochs=3, batch_size=64, learning_rate=2e-3, label_smoothing=0.1,
                    learning_rate_decay="cosine"),
    ),
    # Anki Korean<->English: 4,678 training pairs, so a small model with strong dropout.
    "anki-kor-eng": _anki_korean(source_vocab=3000, target_vocab=2500),
    "anki-eng-kor": _anki_korean(source_vocab=2500, target_vocab=3000),
    # Korean chatbot Q->A (10,823 training pairs); answers are meant to be sampled.
    "ko-chatbot": (
        ModelConfig(source_tokenizer="sentencepiece", target_tokenizer="sentencepiece",
                    max_source_vocab=4000, max_target_vocab=4000, max_source_length=48,
                    max_target_length=48, embedding_dim=192, units=320, attention_units=192,
                    dropout=0.3),
        TrainConfig(epochs=25, batch_size=64, learning_rate=2e-3, label_smoothing=0.1,
                    learning_rate_decay="cosine", keep_checkpoints=5),
    ),
}


# Continuing a pretrained translator (`keras_s2s.pretrained`) on a user's pairs: a learning
# rate a few times below a from-scratch run's peak, so that a few thousand pairs adapt the
# model without erasing what it learned from millions.
FINE_TUNING = TrainConfig(epochs=3, batch_size=32, learning_rate=5e-5, label_smoothing=0.1,
                          learning_rate_decay="cosine", warmup_steps=100)


def preset(name):
    """Returns fresh copies of the (ModelConfig, TrainConfig) preset called `name`."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    model_config, train_config = PRESETS[name]
    return dataclasses.replace(model_config), dataclasses.replace(train_config)


def save_json(path, **configs):
    """Writes dataclass configs to one JSON file: {"model": {...}, "train": {...}}."""
    payload = {key: dataclasses.asdict(value) for key, value in configs.items()}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=2, ensure_ascii=False)
        file.write("\n")


def load_json(path):
    """Reads a file written by `save_json` back into (ModelConfig, TrainConfig or None)."""
    with open(path, encoding="utf-8") as file:
        payload = json.load(file)
    if "model" not in payload:
        raise ValueError(f"{path} holds no 'model' section; is it a keras_s2s config.json?")
    model_config = _from_dict(ModelConfig, payload["model"], path)
    train_config = _from_dict(TrainConfig, payload["train"], path) if "train" in payload else None
    return model_config, train_config


def _from_dict(cls, values, path):
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown {cls.__name__} fields {unknown}.")
    return cls(**values)
