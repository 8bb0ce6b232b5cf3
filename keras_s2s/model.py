"""Seq2Seq: the trainable model. `fit` it on sentence pairs, `translate` with it, `export` it.

    model = Seq2Seq.from_pairs(train_pairs, ModelConfig(...))   # vocabularies from the data
    model.compile(optimizer=make_optimizer(TrainConfig()))
    model.fit(make_dataset(train_pairs, model), epochs=10)    # or a dataset of raw string pairs
    model.translate(["Wednesday, March 3, 2021"])              # -> ["2021-03-03"]
    model.export("saved_models/dates/1")                       # a SavedModel taking raw strings
"""

import base64
import dataclasses
import os

import keras
import tensorflow as tf

from keras_s2s import config as config_lib
from keras_s2s import distribute, multi_worker
from keras_s2s.decoder import Decoder
from keras_s2s.encoder import Encoder
from keras_s2s.losses import token_sums
from keras_s2s.positional_encoding import PositionalEmbedding
from keras_s2s.source_memory import encode_source
from keras_s2s.text import (PAD_ID, TextProcessor, Vocabulary, build_vocabulary, make_tokenizer,
                            not_padding, texts_tensor)
from keras_s2s.transformer import TransformerDecoder, TransformerEncoder

CONFIG_FILE = "config.json"
SOURCE_VOCAB_FILE = "source_vocab.txt"
TARGET_VOCAB_FILE = "target_vocab.txt"


def make_encoder_decoder(model_config, source_vocabulary, target_vocabulary):
    """The (encoder, decoder) pair of `model_config.architecture`, unbuilt."""
    if model_config.architecture == "transformer":
        return _make_transformer(model_config, source_vocabulary, target_vocabulary)
    shared = dict(embedding_dim=model_config.embedding_dim, units=model_config.units,
                  cell=model_config.cell, num_layers=model_config.num_layers,
                  dropout=model_config.dropout)
    encoder = Encoder(len(source_vocabulary), bidirectional=model_config.bidirectional,
                      name="encoder", **shared)
    decoder = Decoder(len(target_vocabulary), attention=model_config.attention,
                      attention_units=model_config.attention_units,
                      input_feeding=model_config.input_feeding, name="decoder", **shared)
    return encoder, decoder


def _make_transformer(model_config, source_vocabulary, target_vocabulary):
    # Room for every position either side can have: [START] + clipped tokens + [END].
    max_length = max(model_config.max_source_length, model_config.max_target_length) + 1
    shared = dict(units=model_config.units, num_layers=model_config.num_layers,
                  num_heads=model_config.num_heads, ff_units=model_config.ff_units,
                  max_length=max_length, dropout=model_config.dropout,
                  attention_dropout=model_config.attention_dropout,
                  norm_first=model_config.norm_first, positional=model_config.positional,
                  ff_activation=model_config.ff_activation)
    zero_start = model_config.decoder_start == "zeros"
    embedding = None
    if model_config.share_embeddings:
        # One row per token for both sides; each side may still cut text into pieces with
        # its own SentencePiece model (as OPUS-MT's source.spm and target.spm do).
        if source_vocabulary.tokens != target_vocabulary.tokens:
            raise ValueError(
                "share_embeddings=True needs the same source and target vocabulary; got "
                f"{len(source_vocabulary)} source and {len(target_vocabulary)} target entries "
                "that differ. Build the model with Seq2Seq.from_pairs, which learns one.")
        # Sources never hold [START], so the encoder reads the shared table as before.
        embedding = PositionalEmbedding(len(source_vocabulary), model_config.units, max_length,
                                        model_config.positional, zero_start,
                                        name="shared_embedding")
    encoder = TransformerEncoder(len(source_vocabulary), embedding=embedding, name="encoder",
                                 **shared)
    decoder = TransformerDecoder(len(target_vocabulary), embedding=embedding, name="decoder",
                                 tie_embeddings=model_config.share_embeddings,
                                 output_bias=model_config.output_bias, zero_start=zero_start,
                                 **shared)
    return encoder, decoder


@keras.saving.register_keras_serializable(package="keras_s2s")
class Seq2Seq(keras.Model):
    """Encoder-decoder with attention, trained by teacher forcing.

    The architecture is `model_config.architecture`: "rnn" (`Encoder`, `Decoder` with
    Bahdanau or Luong attention) or "transformer" (`TransformerEncoder`,
    `TransformerDecoder`); both present the same interface to everything below.

    `train_step` and `test_step` accept batches of raw strings (batch,) or of token ids
    (batch, s) / (batch, t + 2) as `make_dataset` yields them; target ids run from [START]
    to [END]. The reported loss and accuracy are per real target token.

    Args:
        model_config: a `ModelConfig`.
        source_vocabulary, target_vocabulary: `Vocabulary` objects.

    Call arguments:
        inputs: (source_ids (batch, s), decoder_input_ids (batch, t)).
        training: bool.

    Returns:
        logits (batch, t, target vocab).
    """

    def __init__(self, model_config, source_vocabulary, target_vocabulary, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model_config, dict):
            model_config = config_lib.ModelConfig(**model_config)
        self.model_config = model_config
        source_tokenizer = make_tokenizer(model_config.source_tokenizer, model_config.lowercase,
                                          model_config.normalization, source_vocabulary)
        target_tokenizer = make_tokenizer(model_config.target_tokenizer, model_config.lowercase,
                                          model_config.normalization, target_vocabulary)
        self.source_text = TextProcessor(source_tokenizer, source_vocabulary,
                                         model_config.max_source_length, name="source_text")
        self.target_text = TextProcessor(target_tokenizer, target_vocabulary,
                                         model_config.max_target_length, name="target_text")
        self.encoder, self.decoder = make_encoder_decoder(
            model_config, source_vocabulary, target_vocabulary)
        self.label_smoothing = 0.0
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        # Every variable exists from here on, so graph loops (search, input feeding) never
        # have to create one.
        self.build()
        if model_config.freeze_vectors:
            # Frozen where every model is built (new, resumed, loaded from .keras), not where
            # the vectors are read, so a rebuilt model keeps the same trainable variables.
            for path, stack in ((model_config.source_vectors, self.encoder),
                                (model_config.target_vectors, self.decoder)):
                if path:
                    # A Transformer's PositionalEmbedding holds the token Embedding; its
                    # learned position table, if any, keeps training.
                    getattr(stack.embedding, "embedding", stack.embedding).trainable = False

    @classmethod
    def from_pairs(cls, pairs, model_config=None, **kwargs):
        """Builds the vocabularies from (source, target) pairs, then the model.

        With `source_vectors`/`target_vectors` in the config, the embeddings start from
        those files (`keras_s2s.word_vectors`); `model.vector_coverage` then says how many
        vocabulary entries found a vector.
        """
        model = cls._from_pairs(pairs, model_config, **kwargs)
        coverage = {}
        if model.model_config.source_vectors or model.model_config.target_vectors:
            from keras_s2s.word_vectors import initialize_embeddings  # gensim is optional

            coverage = initialize_embeddings(model)
        # Kept out of Keras' attribute tracking: plain report objects, not weights.
        model.__dict__["vector_coverage"] = coverage
        return model

    @classmethod
    def _from_pairs(cls, pairs, model_config=None, **kwargs):
        model_config = model_config or config_lib.ModelConfig()
        if not pairs:
            raise ValueError("pairs is empty: a vocabulary needs at least one sentence pair.")
        sources, targets = zip(*pairs)
        shared = dict(lowercase=model_config.lowercase, normalization=model_config.normalization,
                      min_count=model_config.min_count)
        if model_config.share_embeddings:
            # One vocabulary learned from both sides: the same piece has one id (and one
            # embedding) whichever side it appears on.
            vocabulary = build_vocabulary(list(sources) + list(targets), model_config.source_tokenizer,
                                          max_size=model_config.max_source_vocab, **shared)
            return cls(model_config, vocabulary, vocabulary, **kwargs)
        source_vocabulary = build_vocabulary(list(sources), model_config.source_tokenizer,
                                             max_size=model_config.max_source_vocab, **shared)
        target_vocabulary = build_vocabulary(list(targets), model_config.target_tokenizer,
                                             max_size=model_config.max_target_vocab, **shared)
        return cls(model_config, source_vocabulary, target_vocabulary, **kwargs)

    def build(self, input_shape=None):
        self.encoder.build((None, None))
        self.decoder.build((None, None))

    def compile(self, optimizer="adam", label_smoothing=0.0, **kwargs):
        """As `keras.Model.compile`; the loss is always the masked token cross-entropy."""
        self.label_smoothing = float(label_smoothing)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        return None if config is None else {**config, "label_smoothing": self.label_smoothing}

    def compile_from_config(self, config):
        # Keras' own version skips models that override compile(); this one restores the
        # optimizer (with its state slots) and the label smoothing.
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Before `fit`, Keras builds a model symbolically from its first batch averaged over
        # the replicas: an all-reduce of the batch that fails across several workers
        # (MultiWorkerMirroredStrategy). A Seq2Seq is built when it is made and its metrics
        # are its own, so only the optimizer is left to build there.
        if multi_worker.worker_position(self.distribute_strategy)[1] == 1:
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs, training=False):
        source_ids, decoder_input_ids = inputs
        logits, _ = self.forward(source_ids, decoder_input_ids, training=training)
        return logits

    def forward(self, source_ids, decoder_input_ids, training=False):
        """Teacher-forced pass: logits (batch, t, vocab) and attention (batch, t, s)."""
        memory = encode_source(self.encoder, self.decoder, source_ids, training=training)
        return self.decoder(decoder_input_ids, memory, training=training)

    def to_ids(self, source, target):
        """Raw strings or ids -> (source_ids (batch, s), target_ids (batch, t + 2)) int32."""
        if source.dtype == tf.string:
            source = self.source_text.encode(source).to_tensor()
        if target.dtype == tf.string:
            target = self.target_text.encode(target, add_start=True).to_tensor()
        return tf.cast(source, tf.int32), tf.cast(target, tf.int32)

    def teacher_forcing_sums(self, source_ids, target_ids, training=False):
        """(loss_sum, token_count, correct_count) of predicting target_ids[:, 1:] from the rest.

        Only real target tokens reach the output projection: padding would cost a
        (positions, units) @ (units, vocab) matmul whose loss is masked out anyway.
        """
        memory = encode_source(self.encoder, self.decoder, source_ids, training=training)
        attentional, _ = self.decoder.attentional_states(
            target_ids[:, :-1], memory, training=training)  # (batch, t, units)
        labels = target_ids[:, 1:]  # (batch, t)
        is_real = not_padding(labels)
        real_states = tf.boolean_mask(attentional, is_real)  # (batch, t, units) -> (tokens, units)
        real_labels = tf.boolean_mask(labels, is_real)  # (tokens,)
        logits = self.decoder.project(real_states, training=training)  # (tokens, vocab)
        return token_sums(real_labels, logits, self.label_smoothing)

    def train_step(self, data):
        source_ids, target_ids = self.to_ids(*data)
        sums = distribute.train_on_batch(
            self, self.optimizer,
            lambda: self.teacher_forcing_sums(source_ids, target_ids, training=True))
        return self.update_metrics(*sums)

    def test_step(self, data):
        source_ids, target_ids = self.to_ids(*data)
        return self.update_metrics(*self.teacher_forcing_sums(source_ids, target_ids))

    def update_metrics(self, loss_sum, token_count, correct):
        """Accumulates token-weighted loss and accuracy; returns the running values."""
        denominator = tf.maximum(token_count, 1.0)
        self.loss_tracker.update_state(loss_sum / denominator, sample_weight=token_count)
        self.accuracy_tracker.update_state(correct / denominator, sample_weight=token_count)
        logs = {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}
        if multi_worker.worker_position(self.distribute_strategy)[1] > 1:
            # Across workers Keras averages each step's logs along axis 0, which a scalar
            # lacks; an epoch's own logs are read from the metrics, summed over replicas.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def translator(self, max_length=None):
        """The exportable `Translator` over this model's current weights (cached: it reads
        the model's variables, so it follows further training)."""
        # Imported where it is used: only a model that translates or exports needs it.
        from keras_s2s.translator import Translator

        cache = self.__dict__.setdefault("_translators", {})
        if max_length not in cache:
            cache[max_length] = Translator(self, max_length=max_length)
        return cache[max_length]

    def translate(self, texts, max_length=None):
        """Translations of a list of strings, as a list of strings, with the configured
        decoding: beam search when `model_config.beam_size` > 1, else greedy."""
        outputs = self.translator(max_length).translate(texts_tensor(texts))
        return [text.decode("utf-8") for text in outputs["text"].numpy()]

    def attention_heads(self, texts, max_length=None):
        """Where every layer and head of a Transformer looked in its greedy translations.

        Returns (batch, layers, heads, t, s) float32 cross-attention weights, t over the
        output tokens ([END] included; rows after a translation's [END] are zeros) and s over
        the source tokens, as in the `Translator`'s `attention` output, which is the last
        layer's average over heads.
        """
        if self.model_config.architecture != "transformer":
            raise ValueError("attention_heads needs architecture='transformer'; got "
                             f"architecture={self.model_config.architecture!r}.")
        translator = self.translator(max_length)
        texts = texts_tensor(texts)
        target_tokens = translator.greedy(texts)["target_tokens"]  # (batch, t), "" after [END]
        target_ids = tf.where(target_tokens == "", PAD_ID, tf.cast(
            self.target_text.token_to_id.lookup(target_tokens), tf.int32))  # [END] last
        # Teacher forcing on the model's own output reproduces the search's attention.
        return translator.forced_heads(self.source_text.encode(texts).to_tensor(), target_ids)

    def export(self, filepath, max_length=None, projection_dtype="float32", jit_compile=False,
               shards=1):
        """Writes a SavedModel that maps raw strings to translations; returns `filepath`.

        `projection_dtype="bfloat16"`, `jit_compile=True`, `shards`: see `Translator`.
        """
        if projection_dtype == "float32" and not jit_compile and shards == 1:
            return self.translator(max_length).save(filepath)
        # Not cached: a bfloat16 translator holds a copy of W_s, which must be today's, and
        # `translate` keeps using the plain translator whatever an export asked for.
        from keras_s2s.translator import Translator

        return Translator(self, max_length=max_length, projection_dtype=projection_dtype,
                          jit_compile=jit_compile, shards=shards).save(filepath)

    def save_spec(self, directory, train_config=None):
        """Writes config.json and both vocabularies into `directory` (a model directory)."""
        os.makedirs(directory, exist_ok=True)
        configs = {"model": self.model_config}
        if train_config is not None:
            configs["train"] = train_config
        config_lib.save_json(os.path.join(directory, CONFIG_FILE), **configs)
        self.source_text.vocabulary.save(os.path.join(directory, SOURCE_VOCAB_FILE))
        self.target_text.vocabulary.save(os.path.join(directory, TARGET_VOCAB_FILE))

    @classmethod
    def from_spec(cls, directory):
        """Builds an untrained model from a directory `save_spec` wrote (weights not loaded)."""
        model_config, _ = config_lib.load_json(os.path.join(directory, CONFIG_FILE))
        return cls(model_config, Vocabulary.load(os.path.join(directory, SOURCE_VOCAB_FILE)),
                   Vocabulary.load(os.path.join(directory, TARGET_VOCAB_FILE)))

    def get_config(self):
        config = {"model_config": dataclasses.asdict(self.model_config), "name": self.name}
        for side, vocabulary in (("source", self.source_text.vocabulary),
                                 ("target", self.target_text.vocabulary)):
            config[f"{side}_vocabulary"] = vocabulary.tokens
            if vocabulary.sentencepiece_model is not None:  # JSON holds text, so base64
                config[f"{side}_sentencepiece"] = base64.b64encode(
                    vocabulary.sentencepiece_model).decode("ascii")
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        vocabularies = []
        for side in ("source", "target"):
            model = config.pop(f"{side}_sentencepiece", None)
            vocabularies.append(Vocabulary(config.pop(f"{side}_vocabulary"),
                                           base64.b64decode(model) if model else None))
        return cls(config.pop("model_config"), *vocabularies, **config)
