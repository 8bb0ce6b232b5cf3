"""`keras-s2s train`: pairs from a task, a file or a corpus -> a checkpoint directory that resumes itself.

A checkpoint directory holds config.json, both vocabularies, the checkpoints and
history.json. Running the same command again continues from the newest checkpoint with the
saved configuration and vocabularies, so an interrupted run loses at most one epoch. A run
stopped before its first checkpoint has nothing to lose and starts over.
"""

import dataclasses
import glob
import json
import os
import sys
import time
from typing import Optional

import keras
import tensorflow as tf

from keras_s2s import config as config_lib
from keras_s2s import multi_worker, precision, tasks
from keras_s2s.corpora import Splits, corpus_files, load_corpus
from keras_s2s.data import content_fingerprint, make_dataset, read_tsv_pairs, split_pairs
from keras_s2s.locks import exclusive, refuse_non_empty
from keras_s2s.metrics import corpus_bleu, corpus_chrf, exact_match
from keras_s2s.model import CONFIG_FILE, Seq2Seq
from keras_s2s.pretrained import load_pretrained
from keras_s2s.streaming import (STREAMED_HELD_OUT_PAIRS, STREAMED_SAMPLE_PAIRS,
                                 STREAMING_THRESHOLD_BYTES, scan_corpus, stream_dataset)
from keras_s2s.training import average_checkpoints, disk_full_explained, train
from keras_s2s.translator import translate_in_batches

DATA_SOURCE_FILE = "data_source.json"


def load_pairs(task=None, pairs_path=None, corpus=None, data_dir=None, train_size=20000,
               test_size=1000, seed=0, source_column=0, target_column=1,
               validation_fraction=0.05):
    """(train, validation, test) pairs from an embedded task, a TSV file or a named corpus.

    A task's held-out pairs serve as both validation and test; a TSV file has no test split.
    """
    if sum(source is not None for source in (task, pairs_path, corpus)) != 1:
        raise ValueError("Give exactly one of task, pairs_path or corpus.")
    if task is not None:
        train_pairs, held_out = tasks.load_task(task, train_size, test_size, seed=seed)
        return Splits(train_pairs, held_out, held_out)
    if corpus is not None:
        return load_corpus(corpus, data_dir, seed=seed)
    pair_file = read_tsv_pairs(pairs_path, source_column, target_column)
    print(pair_file.summary())
    if not pair_file.pairs:
        raise ValueError(f"pairs={pairs_path!r} holds no usable sentence pair.")
    return Splits(*split_pairs(pair_file.pairs, validation_fraction, seed=seed), [])


@dataclasses.dataclass
class RunOptions:
    """What one `keras-s2s train` run is asked to do (its options, by the same names).

    Exactly one of `task`, `pairs_path` and `corpus` names the pairs.
    """

    checkpoint_dir: str  # config, vocabularies, checkpoints and results; a run here resumes
    task: Optional[str] = None  # an embedded task (tasks.py): "dates" or "toy-ko"
    pairs_path: Optional[str] = None  # a TSV file (plain or .gz) of source<TAB>target lines
    corpus: Optional[str] = None  # a named corpus (corpora.py) in data_dir
    data_dir: Optional[str] = None  # the folder holding the named corpora
    preset_name: Optional[str] = None  # default: the task's or corpus's own preset
    architecture: Optional[str] = None  # "rnn" or "transformer", for a new model without preset
    epochs: Optional[int] = None  # overrides the preset's
    batch_size: Optional[int] = None  # overrides the preset's
    learning_rate: Optional[float] = None  # overrides the preset's (the peak, with a schedule)
    vocab_size: Optional[int] = None  # a new model's source and target vocabulary (the preset's otherwise)
    precision: Optional[str] = None  # overrides the preset's: float32, mixed_bfloat16 or auto
    train_size: int = 20000  # pairs drawn for a task
    test_size: int = 1000  # held-out pairs drawn for a task
    seed: int = 0  # of a new run (a resumed one keeps its own)
    source_column: int = 0  # the TSV column of the source side
    target_column: int = 1  # the TSV column of the target side
    average_last: int = 0  # score (and export) the mean weights of the last N checkpoints (kept)
    export_path: Optional[str] = None  # also export a SavedModel here at the end
    log_dir: Optional[str] = None  # TensorBoard logs of each epoch's scalars
    source_vectors: Optional[str] = None  # word vectors that start a new source embedding
    target_vectors: Optional[str] = None  # the same for the target side
    freeze_vectors: bool = False  # keep those embeddings fixed
    from_pretrained: Optional[str] = None  # start from this Marian model or trained run's directory
    freeze_encoder: bool = False  # train the decoder only (overrides the training settings')
    stream: Optional[bool] = None  # stream pairs_path from disk (default: when it is large)


def train_run(options, verbose=None):
    """Trains (or resumes) a model in `options.checkpoint_dir`, scores it, optionally exports
    it; with `log_dir`, each epoch's scalars also go to TensorBoard logs there (`train`).
    `source_vectors`, `target_vectors` and `freeze_vectors` set the `ModelConfig` fields
    of the same names: pretrained word vectors for a new model's embeddings.

    Args:
        options: a `RunOptions`.
        verbose: 1 a progress bar, 2 one line per epoch; by default a progress bar only
            where standard output is a terminal, so a redirected log holds no escape codes.

    Returns (model, history, results); results (also written to results.json) holds
    BLEU, chrF and exact match of greedy and configured decoding on validation and test.

    Raises:
        locks.FolderInUseError: another process is writing to `checkpoint_dir`.
    """
    refuse_non_empty(options.export_path, "export_path")
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    # With a cluster in TF_CONFIG every worker runs this; the chief writes checkpoint_dir,
    # the others a scratch directory, and all of them resume from the chief's checkpoints.
    strategy = multi_worker.strategy_from_environment()
    with multi_worker.writing_directory(options.checkpoint_dir, strategy) as writing_dir:
        if writing_dir != options.checkpoint_dir:
            return _train_run(options, verbose, strategy, writing_dir)
        with exclusive(options.checkpoint_dir, "checkpoint_dir"):
            return _train_run(options, verbose, strategy, writing_dir)


def _train_run(options, verbose, strategy, writing_dir):
    chief = writing_dir == options.checkpoint_dir
    # A run resumes once it has saved a checkpoint; one stopped before that starts over.
    resuming = has_checkpoint(options.checkpoint_dir)
    check_data_source(writing_dir if not resuming else options.checkpoint_dir, data_source_of(
        options.task, options.pairs_path, options.corpus, options.data_dir, options.train_size,
        options.test_size), resuming)
    model_config, train_config = _configs(options, resuming)
    stream = options.stream
    if stream is None:
        stream = bool(options.pairs_path) and os.path.getsize(options.pairs_path) > STREAMING_THRESHOLD_BYTES
    if stream:
        if not options.pairs_path:
            raise ValueError("stream=True needs pairs_path: only TSV files are streamed.")
        # Only bounded samples are held in memory: vocabularies are learned from one,
        # the other is the validation set, left out of the stream.
        scan = scan_corpus(options.pairs_path, options.source_column, options.target_column,
                           STREAMED_SAMPLE_PAIRS,
                           STREAMED_HELD_OUT_PAIRS if train_config.validation_fraction else 0,
                           train_config.validation_fraction, seed=train_config.seed)
        print(f"{scan.summary()}; streamed from disk")
        train_pairs, validation_pairs, test_pairs = scan.sample, scan.held_out, []
        training_pair_count = scan.pairs - len(scan.held_out)
    else:
        train_pairs, validation_pairs, test_pairs = load_pairs(
            options.task, options.pairs_path, options.corpus, options.data_dir, options.train_size,
            options.test_size, train_config.seed, options.source_column, options.target_column,
            train_config.validation_fraction)
        training_pair_count = len(train_pairs)
    keras.utils.set_random_seed(train_config.seed)
    policy = precision.keras_policy(train_config.precision)
    with precision.building_under(policy), (strategy or tf.distribute.get_strategy()).scope():
        model = _model(options, resuming, model_config, train_config, train_pairs, writing_dir)
    if strategy is not None:
        multi_worker.check_same_on_every_worker(strategy, "\n".join(
            model.source_text.vocabulary.tokens + model.target_text.vocabulary.tokens), "vocabularies")
    print(f"{model.count_params():,} parameters; {training_pair_count} training and "
          f"{len(validation_pairs)} validation pairs; checkpoints in {options.checkpoint_dir}; "
          f"computing in {policy}")

    validation = make_dataset(validation_pairs, model, 256, shuffle=False) if validation_pairs else None
    if stream:
        training_data = stream_dataset(scan, model, train_config.batch_size, seed=train_config.seed,
                                       strategy=strategy)
    else:
        training_data = make_dataset(train_pairs, model, train_config.batch_size, seed=train_config.seed)
    started = time.perf_counter()
    history = train(model, training_data, train_config, validation_dataset=validation,
                    checkpoint_dir=options.checkpoint_dir, verbose=verbose,
                    strategy=strategy, log_dir=options.log_dir if chief else None)
    if not chief:  # the chief scores, writes the results and exports
        return model, history, {}
    results = {"training_seconds_this_run": round(time.perf_counter() - started, 1),
               "training_seconds_all_epochs": round(sum(epoch["seconds"] for epoch in history), 1),
               "parameters": model.count_params()}
    if getattr(model, "vector_coverage", None):
        results["vector_coverage"] = {side: {"found": coverage.found, "total": coverage.total}
                                      for side, coverage in model.vector_coverage.items()}
    results["precision"] = policy
    model = precision.float32_copy(model)  # scored and exported in float32
    if options.average_last > 1:
        averaged = average_checkpoints(model, options.checkpoint_dir, options.average_last)
        results["averaged_checkpoints"] = [os.path.basename(path) for path in averaged]
        print(f"Averaged the weights of {len(averaged)} checkpoints.")
    for split, pairs in (("validation", validation_pairs), ("test", test_pairs)):
        if pairs:
            results[split] = score_pairs(model, pairs)
            print(f"{split}: {json.dumps(results[split])}")
    with open(os.path.join(writing_dir, "results.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    if options.export_path:
        print(f"Exported {model.export(options.export_path)}")
    return model, history, results


def _configs(options, resuming):
    """(ModelConfig, TrainConfig) of the run: the saved ones when resuming (more epochs may be
    asked for), else the preset's, or the defaults of the asked architecture."""
    # Settings of a new model the options change (a resumed one must have been built with them).
    model_changes = {key: value for key, value in (("source_vectors", options.source_vectors),
                                                   ("target_vectors", options.target_vectors),
                                                   ("freeze_vectors", options.freeze_vectors or None),
                                                   ("max_source_vocab", options.vocab_size),
                                                   ("max_target_vocab", options.vocab_size))
                     if value is not None}
    has_preset = options.preset_name or (options.task or options.corpus) in config_lib.PRESETS
    if options.from_pretrained:
        given = [name for name in ("preset_name", "architecture", "source_vectors", "target_vectors",
                                   "vocab_size") if getattr(options, name)]
        if given:
            raise ValueError(f"from_pretrained={options.from_pretrained!r} brings its own model; "
                             f"leave out {', '.join(given)}.")
    if resuming:
        model_config, train_config = config_lib.load_json(
            os.path.join(options.checkpoint_dir, CONFIG_FILE))
        train_config = train_config or config_lib.TrainConfig()
        _check_resumable(options, model_config, model_changes)
    elif options.from_pretrained:
        # The model's settings come with it (`_model`); training ones are for fine-tuning.
        model_config, train_config = None, dataclasses.replace(config_lib.FINE_TUNING)
    elif has_preset:
        model_config, train_config = config_lib.preset(
            options.preset_name or options.task or options.corpus)
    else:
        model_config, train_config = config_lib.ModelConfig(), config_lib.TrainConfig()
    if options.architecture and not resuming and options.architecture != model_config.architecture:
        if has_preset:
            raise ValueError(f"architecture={options.architecture!r} differs from the preset's "
                             f"{model_config.architecture!r}; choose a preset of that "
                             "architecture (e.g. multi30k-de-en-transformer) instead.")
        model_config = config_lib.ModelConfig(architecture=options.architecture)
    overrides = {key: value for key, value in (("epochs", options.epochs),
                                               ("batch_size", options.batch_size),
                                               ("learning_rate", options.learning_rate),
                                               ("precision", options.precision),
                                               ("freeze_encoder", options.freeze_encoder or None))
                 if value is not None}
    # Averaging the last N checkpoints needs N of them kept.
    if options.average_last > train_config.keep_checkpoints:
        overrides["keep_checkpoints"] = options.average_last
    train_config = dataclasses.replace(train_config, **overrides)
    if not resuming:
        if model_config is not None:
            model_config = dataclasses.replace(model_config, **model_changes)
        train_config = dataclasses.replace(train_config, seed=options.seed)
    return model_config, train_config


def _check_resumable(options, model_config, model_changes):
    """Refuses a preset, word vectors or a vocabulary size other than those the saved model
    was built with."""
    if options.preset_name:
        asked = dataclasses.replace(config_lib.preset(options.preset_name)[0], **model_changes)
        if asked != model_config:
            raise ValueError(f"checkpoint_dir={options.checkpoint_dir!r} holds a model built with "
                             f"other settings than preset {options.preset_name!r} "
                             f"({_differences(model_config, asked)}); leave out --preset to "
                             "resume it, or use a new --checkpoint-dir.")
    # These only shape a new model; a resumed one must not seem to take new ones.
    other = {key: value for key, value in model_changes.items() if getattr(model_config, key) != value}
    if other:
        raise ValueError(f"checkpoint_dir={options.checkpoint_dir!r} holds a model built with "
                         f"{ {key: getattr(model_config, key) for key in other} }, not "
                         f"{other}; leave those options out to resume it.")


def _model(options, resuming, model_config, train_config, train_pairs, writing_dir):
    """The resumed model (its saved vocabularies, no weights yet), or a new one whose
    vocabularies come from `train_pairs`, with config.json written to `writing_dir` either way."""
    if not resuming:
        if options.from_pretrained:
            # Its vocabularies (and SentencePiece models) are kept, never learned again.
            model = load_pretrained(options.from_pretrained)
        else:
            model = Seq2Seq.from_pairs(train_pairs, model_config)
        model.save_spec(writing_dir, train_config)
        for side, coverage in getattr(model, "vector_coverage", {}).items():
            print(f"{side} vectors: {coverage.summary()}")
        return model
    # Only the training settings can change (more epochs); the vocabularies stay as they
    # are, and config.json is replaced whole so a kill never leaves half of it.
    temporary = os.path.join(writing_dir, CONFIG_FILE + ".tmp")
    with disk_full_explained(f"writing {CONFIG_FILE} in {writing_dir}",
                             "the run's files are as they were"):
        config_lib.save_json(temporary, model=model_config, train=train_config)
        os.replace(temporary, os.path.join(writing_dir, CONFIG_FILE))
    return Seq2Seq.from_spec(options.checkpoint_dir)


def has_checkpoint(checkpoint_dir):
    """Whether `checkpoint_dir` holds a checkpoint (or the files of one)."""
    return (tf.train.get_checkpoint_state(checkpoint_dir) is not None
            or bool(glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index"))))


def _differences(old, new):
    return "; ".join(f"{field.name}: {getattr(old, field.name)!r} here, {getattr(new, field.name)!r} "
                     "in the preset" for field in dataclasses.fields(old)
                     if getattr(old, field.name) != getattr(new, field.name))


def data_source_of(task=None, pairs_path=None, corpus=None, data_dir=None, train_size=None,
                   test_size=None):
    """What a run trains on, by content: the task and its sizes, or the files' fingerprint
    (`content_fingerprint`) with the path or corpus name for the reader."""
    if sum(source is not None for source in (task, pairs_path, corpus)) != 1:
        raise ValueError("Give exactly one of task, pairs_path or corpus.")
    if task is not None:
        return {"task": task, "train_size": train_size, "test_size": test_size}
    if pairs_path is not None:
        if not os.path.isfile(pairs_path):
            raise ValueError(f"pairs={pairs_path!r} is not a file.")
        return {"pairs": pairs_path, "content": content_fingerprint([pairs_path])}
    return {"corpus": corpus, "content": content_fingerprint(corpus_files(corpus, data_dir))}


# Recorded for the reader only: the same data may be named by another path.
_NAMES_ONLY = ("pairs",)


def check_data_source(checkpoint_dir, data_source, resuming):
    """Records what a run's pairs are; a resumed run must train on the same data.

    Resuming on other data would reuse the saved vocabularies on text they were not built
    from, so it is refused with what changed. The data are compared by content (size and
    SHA-256 of the files), so the same file under another path resumes, and a file whose
    contents changed under the same path does not.
    """
    path = os.path.join(checkpoint_dir, DATA_SOURCE_FILE)
    if resuming and os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            recorded = json.load(file)
        if "content" in recorded:
            compared = [key for key in {**recorded, **data_source} if key not in _NAMES_ONLY]
        else:  # recorded before contents were: the real path is all there is to compare
            compared = ["task", "corpus", "train_size", "test_size", "pairs"]
            recorded = {**recorded, "pairs": _real_path(recorded.get("pairs"))}
            data_source = {**data_source, "pairs": _real_path(data_source.get("pairs"))}
        changed = {key: (recorded.get(key), data_source.get(key)) for key in compared
                   if recorded.get(key) != data_source.get(key)}
        if changed:
            details = ", ".join(_describe_change(key, old, new) for key, (old, new) in changed.items())
            raise ValueError(f"checkpoint_dir={checkpoint_dir!r} holds a run on other data "
                             f"({details}); use a new --checkpoint-dir.")
        return
    os.makedirs(checkpoint_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data_source, file, indent=2)


def _real_path(path):
    return os.path.realpath(path) if path else None


def _describe_change(key, old, new):
    if key == "content" and old and new:
        return (f"the data changed since the run began: it had {old['bytes']:,} bytes with "
                f"SHA-256 {old['sha256'][:12]}…, it has {new['bytes']:,} bytes with SHA-256 "
                f"{new['sha256'][:12]}… now")
    return f"{key}: was {old!r}, now {new!r}"


def score_pairs(model, pairs):
    """BLEU (cased and lower-cased), chrF and exact match of greedy and configured decoding."""
    sources, references = [source for source, _ in pairs], [target for _, target in pairs]
    tokenize = "char" if model.model_config.target_tokenizer == "char" else "13a"
    scores = {}
    # Beam search with one hypothesis is greedy search token for token (tests/test_beam_search.py).
    decodings = {"greedy": 1}
    if model.model_config.beam_size > 1:
        decodings[f"beam {model.model_config.beam_size}"] = model.model_config.beam_size
    for name, beam_size in decodings.items():
        start = time.perf_counter()
        hypotheses = translate_in_batches(model.translator(), sources, 64, beam_size)["text"]
        scores[name] = {
            "bleu": round(corpus_bleu(hypotheses, references, tokenize=tokenize), 2),
            "bleu_lowercase": round(corpus_bleu(hypotheses, references, True, tokenize), 2),
            "chrf": round(corpus_chrf(hypotheses, references), 2),
            "exact_match": round(exact_match(hypotheses, references), 4),
            "seconds": round(time.perf_counter() - start, 1)}
    return scores
