"""The custom teacher-forcing loop: what `model.fit` does, written out, plus resume.

`train` runs one `tf.function` step per batch (traced once: the input signature leaves batch
and length open), keeps a checkpoint per epoch in `checkpoint_dir`, and resumes from the
newest one by itself. Its numbers equal `model.fit`'s: both average the masked loss over every
real target token of the epoch, with the same optimizer and clipping.

Under a `tf.distribute` strategy (a model built in `strategy.scope()`), each step runs once
per replica on its share of the global batch; `keras_s2s.distribute` says why the losses
and updates equal the single-device ones.

Resuming is defensive: a checkpoint that cannot be read (a crash or a full disk while it was
written) is set aside in `unreadable/` with a warning and the one before it is used; a
checkpoint that does not fit the model (other vocabularies) stops with an error naming the
file and the sizes; nothing saved is ever overwritten or deleted silently.
"""

import contextlib
import errno
import glob
import json
import logging
import math
import os
import re
import time

import keras
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from keras_s2s import distribute, multi_worker
from keras_s2s.locks import exclusive
from keras_s2s.schedules import InverseSquareRootSchedule

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
_IDS_SIGNATURE = [tf.TensorSpec([None, None], tf.int32, name="source_ids"),
                  tf.TensorSpec([None, None], tf.int32, name="target_ids")]


def make_optimizer(train_config, steps_per_epoch=None):
    """Adam with the configured learning rate (and decay) and global-norm gradient clipping.

    A decaying schedule needs `steps_per_epoch` to know where training ends.
    """
    learning_rate = train_config.learning_rate
    if train_config.learning_rate_decay == "cosine":
        if not steps_per_epoch:
            raise ValueError("learning_rate_decay='cosine' needs steps_per_epoch.")
        total_steps = train_config.epochs * steps_per_epoch
        if train_config.warmup_steps:
            # Keras' own warm-up: from 0 up to the learning rate, then the cosine.
            learning_rate = keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps=max(total_steps - train_config.warmup_steps, 1), alpha=0.1,
                warmup_target=learning_rate, warmup_steps=train_config.warmup_steps)
        else:
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=total_steps, alpha=0.1)
    elif train_config.learning_rate_decay == "inverse-sqrt":
        learning_rate = InverseSquareRootSchedule(learning_rate, train_config.warmup_steps)
    return keras.optimizers.Adam(learning_rate=learning_rate,
                                 global_clipnorm=train_config.clip_norm or None)


def train(model, train_dataset, train_config, validation_dataset=None, checkpoint_dir=None,
          verbose=1, strategy=None, log_dir=None):
    """Trains `model` for `train_config.epochs` epochs in total, resuming if it can.

    Args:
        model: a `Seq2Seq` (built inside `strategy.scope()` when a strategy is used).
        train_dataset: batches of (source_ids, target_ids), e.g. from `make_dataset`; with
            several replicas each batch is the global batch, split among them.
        train_config: a `TrainConfig` (epochs, learning rate, clipping, label smoothing).
        validation_dataset: optional batches evaluated after every epoch.
        checkpoint_dir: where checkpoints and history.json go; if it already holds a
            checkpoint, training continues after its epoch, with its optimizer state.
        verbose: 1 shows a progress bar, 0 is silent.
        strategy: a `tf.distribute.Strategy`; defaults to the one in scope (a single
            device when none is).
        log_dir: if given, a TensorBoard log directory: each epoch's loss, accuracy and
            learning rate go to log_dir/train, val_loss and val_accuracy to
            log_dir/validation, under the names keras.callbacks.TensorBoard gives them
            ("epoch_loss", ...), so runs of this loop and of `model.fit` compare in one view.

    Returns:
        The history: one dict per epoch (loss, accuracy, val_loss, val_accuracy, seconds,
        target_tokens_per_second), earlier epochs from history.json included when resuming.

    Raises:
        locks.FolderInUseError: another process is training in `checkpoint_dir`.
        DiskFullError: the disk filled while a checkpoint was written; the earlier
            checkpoints are intact and the same call resumes once space is freed.
    """
    strategy = strategy or tf.distribute.get_strategy()
    # Across several workers only the chief writes checkpoint_dir; every worker resumes from it.
    with multi_worker.writing_directory(checkpoint_dir, strategy) as writing_dir:
        if not checkpoint_dir or writing_dir != checkpoint_dir:
            return _train(model, train_dataset, train_config, validation_dataset, checkpoint_dir,
                          writing_dir, verbose, strategy, log_dir)
        with exclusive(checkpoint_dir, "checkpoint_dir"):
            return _train(model, train_dataset, train_config, validation_dataset, checkpoint_dir,
                          writing_dir, verbose, strategy, log_dir)


def _train(model, train_dataset, train_config, validation_dataset, checkpoint_dir, writing_dir,
           verbose, strategy, log_dir):
    _check_dataset(train_dataset, "train_dataset")
    if validation_dataset is not None:
        _check_dataset(validation_dataset, "validation_dataset")
    distribute.check_created_in_scope(model, strategy)
    cardinality = int(train_dataset.cardinality())
    steps_per_epoch = cardinality if cardinality > 0 else None  # unknown until an epoch ends
    if train_config.freeze_encoder:
        freeze_encoder(model)
    with strategy.scope():
        optimizer = make_optimizer(train_config, steps_per_epoch)
        optimizer.build(model.trainable_variables)
        epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
    model.label_smoothing = train_config.label_smoothing
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epochs_done=epochs_done)
    manager, history = None, []
    if checkpoint_dir:
        manager, history = _resume_run(checkpoint, checkpoint_dir, writing_dir, train_config,
                                       verbose)
    train_batches = distribute.distribute_dataset(train_dataset, strategy)
    train_step = _summed_step(strategy, train_batches, lambda source_ids, target_ids: (
        distribute.train_on_batch(model, optimizer, lambda: model.teacher_forcing_sums(
            source_ids, target_ids, training=True))))
    evaluate = None
    if validation_dataset is not None:
        validation_batches = distribute.distribute_dataset(validation_dataset, strategy)
        evaluate_step = _summed_step(strategy, validation_batches, model.teacher_forcing_sums)
        evaluate = lambda: _epoch_totals(validation_batches, evaluate_step)  # noqa: E731

    writers = _summary_writers(log_dir, validation_dataset is not None) if log_dir else {}
    for epoch in range(int(epochs_done.numpy()), train_config.epochs):
        logs, steps_per_epoch = _run_epoch(epoch, train_config.epochs, train_batches, train_step,
                                           steps_per_epoch, evaluate, checkpoint_dir, verbose)
        history.append(logs)
        if writers:
            _write_summaries(writers, epoch, logs, optimizer)
        epochs_done.assign(epoch + 1)
        if manager:
            _save(manager, writing_dir, history, epoch + 1)
    for writer in writers.values():
        writer.close()
    return history


def freeze_encoder(model):
    """Stops training the encoder, so that only the decoder learns; call it before `fit` or
    `train` builds the optimizer. A Transformer keeps training the embedding its encoder may
    share with the decoder (only its layers stop); an RNN encoder stops whole."""
    encoder = model.encoder
    for layer in getattr(encoder, "layers_in_order", None) or [encoder]:
        layer.trainable = False


def _resume_run(checkpoint, checkpoint_dir, writing_dir, train_config, verbose):
    """(checkpoint manager writing to `writing_dir`, history of the epochs done) of a run in
    `checkpoint_dir`, after restoring its newest readable checkpoint into `checkpoint` (if any)."""
    restored = resume(checkpoint, checkpoint_dir)
    manager = tf.train.CheckpointManager(checkpoint, writing_dir,
                                         max_to_keep=train_config.keep_checkpoints)
    if not restored:
        return manager, []
    epochs_done = int(checkpoint.epochs_done.numpy())
    if verbose:
        print(f"Resumed from {restored} after epoch {epochs_done} "
              f"(optimizer step {int(checkpoint.optimizer.iterations.numpy())}).")
    return manager, _read_history(checkpoint_dir)[:epochs_done]


def _summed_step(strategy, batches, replica_step):
    """`replica_step(source_ids, target_ids) -> sums` run on every replica as one traced
    `tf.function`; the sums come back added over replicas."""
    def step(source_ids, target_ids):
        sums = strategy.run(replica_step, args=(source_ids, target_ids))
        return [strategy.reduce(distribute.SUM, value, axis=None) for value in sums]
    return tf.function(step, input_signature=_signature(batches))


def _epoch_totals(batches, step):
    """The `EpochTotals` of `step` over every batch (validation)."""
    totals = EpochTotals()
    for source_ids, target_ids in batches:
        totals.add(*step(source_ids, target_ids))
    return totals


def _run_epoch(epoch, epochs, train_batches, train_step, steps_per_epoch, evaluate,
               checkpoint_dir, verbose):
    """Trains one epoch (counted from 0) with a progress bar; returns its logs and its steps."""
    if verbose:
        print(f"Epoch {epoch + 1}/{epochs}")
    progress = keras.utils.Progbar(steps_per_epoch, verbose=verbose,
                                   stateful_metrics=["loss", "accuracy"])
    start = time.perf_counter()
    totals, step = EpochTotals(), 0
    for step, (source_ids, target_ids) in enumerate(train_batches, start=1):
        totals.add(*train_step(source_ids, target_ids))
        if not math.isfinite(totals.last_loss):
            raise FloatingPointError(
                f"The loss became {totals.last_loss} at epoch {epoch + 1}, step {step}; "
                f"stopped without saving. The last checkpoint in {checkpoint_dir} is intact.")
        progress.update(step, list(totals.logs().items()))
    if step == 0:
        raise ValueError("train_dataset yielded no batch: there is nothing to train on.")
    seconds = time.perf_counter() - start
    logs = {"epoch": epoch + 1, **totals.logs(), "seconds": round(seconds, 3),
            "target_tokens_per_second": round(totals.tokens / seconds, 1)}
    if evaluate is not None:
        logs.update({f"val_{key}": value for key, value in evaluate().logs().items()})
    progress.update(step, [(key, value) for key, value in logs.items() if key.startswith("val_")],
                    finalize=True)
    return logs, step


def _summary_writers(log_dir, validation):
    """TensorBoard writers for log_dir/train (and log_dir/validation), as Keras lays them out."""
    if not hasattr(tf.summary, "scalar"):  # TensorBoard provides tf.summary's scalar()
        raise ImportError("train(log_dir=...) needs TensorBoard: pip install 'tensorboard>=2.21,<2.22'.")
    folders = ("train", "validation") if validation else ("train",)
    return {folder: tf.summary.create_file_writer(os.path.join(log_dir, folder)) for folder in folders}


def _write_summaries(writers, epoch, logs, optimizer):
    """One epoch's scalars as keras.callbacks.TensorBoard writes them: step = the epoch
    counted from 0, name = "epoch_" + the metric's name."""
    learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    scalars = {"train": {"loss": logs["loss"], "accuracy": logs["accuracy"],
                         "learning_rate": learning_rate},
               "validation": {"loss": logs.get("val_loss"), "accuracy": logs.get("val_accuracy")}}
    for folder, writer in writers.items():
        with writer.as_default(step=epoch):
            for name, value in scalars[folder].items():
                tf.summary.scalar(f"epoch_{name}", value)
        writer.flush()  # readable while training goes on


def _signature(batches):
    """The step's input signature: batch and length left open, per replica when distributed."""
    if isinstance(batches, tf.data.Dataset):
        return _IDS_SIGNATURE
    return list(batches.element_spec)


def average_checkpoints(model, checkpoint_dir, last=3):
    """Sets `model`'s weights to the mean of its `last` newest checkpoints; returns their paths.

    Averaging the last few epochs smooths the noise of the final updates and often gains
    a little BLEU for free.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1; got {last}.")
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None or not state.all_model_checkpoint_paths:
        raise ValueError(f"No checkpoint in checkpoint_dir={checkpoint_dir!r}.")
    paths = list(state.all_model_checkpoint_paths)[-last:]
    if len(paths) < last:
        logger.warning("Averaging %d checkpoints: %s keeps no more (asked for %d).", len(paths),
                       checkpoint_dir, last)
    total = None
    for path in paths:
        restore_checkpoint(tf.train.Checkpoint(model=model), path, partial=True)
        weights = [variable.numpy() for variable in model.weights]
        total = weights if total is None else [sum_ + weight for sum_, weight in zip(total, weights)]
    model.set_weights([sum_ / len(paths) for sum_ in total])
    return paths


def restore_weights(model, checkpoint_dir):
    """Loads the newest checkpoint's model weights into `model`; returns its path."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise ValueError(f"No checkpoint in checkpoint_dir={checkpoint_dir!r}.")
    restore_checkpoint(tf.train.Checkpoint(model=model), latest, partial=True)
    return latest


class UnreadableCheckpointError(ValueError):
    """A checkpoint whose files cannot be read: truncated, corrupt or missing."""


def restore_checkpoint(checkpoint, path, partial=False):
    """Restores checkpoint `path` into `checkpoint`'s objects, or says clearly why not.

    Args:
        checkpoint: a `tf.train.Checkpoint` over the model (and optimizer, epoch counter).
        path: a checkpoint prefix, e.g. "run/ckpt-3".
        partial: the file may hold more than `checkpoint` asks for (an optimizer when
            only the model is restored).

    Raises:
        UnreadableCheckpointError: the files of `path` cannot be read.
        ValueError: the checkpoint holds other shapes than the model, e.g. because the
            vocabularies beside it are not the ones it was trained with; the message names
            the file and both sizes.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    # A truncated file surfaces as an IndexError from the reader, a damaged one as an OpError.
    except (tf.errors.OpError, ValueError, IndexError, DecodeError) as error:
        raise UnreadableCheckpointError(
            f"Checkpoint {path} cannot be read: {_first_line(error)}") from None
    _check_vocabulary_sizes(checkpoint, path, reader, graph)
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, IndexError) as error:
        raise UnreadableCheckpointError(
            f"Checkpoint {path} cannot be read: {_first_line(error)}") from None
    except (ValueError, AssertionError) as error:
        raise ValueError(f"Checkpoint {path} does not fit this model: {_first_line(error)}") from None
    return path


def _check_vocabulary_sizes(checkpoint, path, reader, graph):
    """Names the vocabulary whose size differs from the checkpoint's embedding table."""
    model = getattr(checkpoint, "model", None)
    if model is None or not hasattr(model, "source_text"):
        return
    for side, size, coder in (("source", model.source_text.vocab_size, "encoder"),
                              ("target", model.target_text.vocab_size, "decoder")):
        rows = _stored_rows(reader, graph, ("model", coder, *_embedding_path(getattr(model, coder))))
        if rows is not None and rows != size:
            raise ValueError(
                f"Checkpoint {path} was trained with a {side} vocabulary of {rows} tokens, but "
                f"the model has {size}: the vocabulary files in {os.path.dirname(path)!r} are "
                "not the ones this checkpoint was trained with.")


def _embedding_path(coder):
    """Attribute names from an encoder or decoder down to its token embedding's table: the
    RNN's `embedding` is a Keras Embedding, the Transformer's a `PositionalEmbedding` that
    holds one under the same name."""
    names, layer = [], coder
    while not isinstance(layer, keras.layers.Embedding):
        layer = layer.embedding
        names.append("embedding")
    return names + ["_embeddings"]  # the Keras Embedding's variable


def _stored_rows(reader, graph, names):
    """Rows of the variable at object path `names` in a checkpoint, or None if it has none.

    Object-based checkpoints key each value by the first path that reached it (often
    through the optimizer), so the object graph stored with the values is walked instead.
    """
    node = graph.nodes[0]
    for name in names:
        children = {child.local_name: child.node_id for child in node.children}
        if name not in children:
            return None
        node = graph.nodes[children[name]]
    keys = [attribute.checkpoint_key for attribute in node.attributes
            if attribute.name == "VARIABLE_VALUE"]
    shape = reader.get_variable_to_shape_map().get(keys[0]) if keys else None
    return shape[0] if shape else None


def resume(checkpoint, checkpoint_dir):
    """Restores the newest readable checkpoint in `checkpoint_dir`; returns its path or None.

    A checkpoint that cannot be read (a run killed while the disk was filling, a damaged
    file) is moved into `checkpoint_dir/unreadable/` with a warning and the one before it
    is tried; it is never deleted, and never overwritten by the next save.

    Raises:
        ValueError: checkpoint files lie in `checkpoint_dir` but its `checkpoint` state
            file is gone (starting over would overwrite them), none of its checkpoints can
            be read, or they do not fit the model.
    """
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    paths = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    if not paths:
        leftovers = sorted(glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index")))
        if leftovers:
            raise ValueError(
                f"checkpoint_dir={checkpoint_dir!r} holds checkpoints "
                f"({', '.join(os.path.basename(path) for path in leftovers)}) but no readable "
                "'checkpoint' state file; refusing to start afresh over them. Restore the state "
                "file (tf.train.update_checkpoint_state) or move the checkpoints away.")
        return None
    unreadable = []
    for path in reversed(paths):
        try:
            restore_checkpoint(checkpoint, path)
        except UnreadableCheckpointError as error:
            logger.warning("%s", error)
            unreadable.append((path, error))
            continue
        break
    else:
        raise ValueError(f"No checkpoint in checkpoint_dir={checkpoint_dir!r} can be read: "
                         + "; ".join(str(error) for _, error in unreadable))
    if unreadable:
        kept = paths[:len(paths) - len(unreadable)]
        for bad, _ in unreadable:
            moved = _set_aside(bad, checkpoint_dir)
            logger.warning("Resuming from %s instead of %s, whose files are now in %s.",
                           path, bad, moved)
        # With their timestamps, the kept checkpoints stay in the manager's rotation.
        timestamps = list(state.all_model_checkpoint_timestamps)[:len(kept)] or None
        # The only public writer of the state file is tf.compat.v1's, which logs a
        # deprecation warning that says nothing to the user; TensorFlow's logger is quieted
        # for that call alone.
        tf_logger, level = tf.get_logger(), tf.get_logger().level
        tf_logger.setLevel(logging.ERROR)
        try:
            tf.compat.v1.train.update_checkpoint_state(
                checkpoint_dir, kept[-1], all_model_checkpoint_paths=kept,
                all_model_checkpoint_timestamps=timestamps,
                last_preserved_timestamp=state.last_preserved_timestamp)
        finally:
            tf_logger.setLevel(level)
    return path


def _set_aside(path, checkpoint_dir):
    """Moves the files of checkpoint `path` into checkpoint_dir/unreadable/<time>/."""
    folder = os.path.join(checkpoint_dir, "unreadable", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(folder, exist_ok=True)
    for name in glob.glob(glob.escape(path) + ".*"):
        os.replace(name, os.path.join(folder, os.path.basename(name)))
    return folder


def _first_line(error):
    message = getattr(error, "message", None) or str(error)
    return re.sub(r"\s+", " ", message.strip().splitlines()[0] if message.strip() else repr(error))


def _check_dataset(dataset, name):
    """Token-id batches of finite length, as `make_dataset` makes; anything else is refused."""
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(f"{name} is infinite (repeat()?); an epoch would never end.")
    specs = tf.nest.flatten(dataset.element_spec)
    if len(specs) != 2 or any(not spec.dtype.is_integer for spec in specs):
        raise ValueError(f"{name} must yield (source_ids, target_ids) integer batches, as "
                         f"make_dataset makes; got {dataset.element_spec}. Raw string pairs "
                         "work with model.fit.")


class EpochTotals:
    """Sums over an epoch, reported per real target token (as the Keras metrics do); the
    custom loop and scheduled sampling keep theirs in one."""

    def __init__(self):
        self.loss_sum = self.tokens = self.correct = 0.0
        self.last_loss = 0.0

    def add(self, loss_sum, token_count, correct):
        loss_sum, token_count = float(loss_sum), float(token_count)
        self.last_loss = loss_sum / max(token_count, 1.0)
        self.loss_sum += loss_sum
        self.tokens += token_count
        self.correct += float(correct)

    def logs(self):
        tokens = max(self.tokens, 1.0)
        return {"loss": self.loss_sum / tokens, "accuracy": self.correct / tokens}


def _read_history(checkpoint_dir):
    path = os.path.join(checkpoint_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); repair or remove it to "
                             "resume (the checkpoints do not depend on it).") from None


class DiskFullError(OSError):
    """The disk filled while a run wrote its files; the message says what survived."""

    def __init__(self, message):
        super().__init__(errno.ENOSPC, message)

    def __str__(self):
        return self.strerror


@contextlib.contextmanager
def disk_full_explained(writing, intact):
    """Turns a full disk while `writing` into a `DiskFullError` that says what is `intact`
    and how to go on."""
    try:
        yield
    except (tf.errors.ResourceExhaustedError, OSError) as error:
        if isinstance(error, OSError) and error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFullError(f"No space left on the disk while {writing}; {intact}. Free some "
                            "space and run the same command again to resume.") from None


def _save(manager, checkpoint_dir, history, epoch):
    """Saves the history and the checkpoint of `epoch` (counted from 1)."""
    with disk_full_explained(f"saving epoch {epoch}'s checkpoint in {checkpoint_dir}",
                             "the checkpoints of earlier epochs are intact"):
        # History first: a run stopped between the two writes resumes from the older
        # checkpoint and cuts the history back to it, so no epoch is ever missing.
        _write_history(checkpoint_dir, history)
        manager.save(checkpoint_number=epoch)


def _write_history(checkpoint_dir, history):
    # Write then rename, so an interrupted write never leaves a truncated history.
    os.makedirs(checkpoint_dir, exist_ok=True)
    path = os.path.join(checkpoint_dir, HISTORY_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(history, file, indent=1)
    os.replace(path + ".tmp", path)


def load_trained_model(checkpoint_dir, average_last=1):
    """Rebuilds the model a `keras-s2s train` run wrote to `checkpoint_dir`, with its newest
    weights, or with the mean of its `average_last` newest checkpoints (`average_checkpoints`)."""
    from keras_s2s.model import Seq2Seq  # model.py does not depend on this module

    model = Seq2Seq.from_spec(checkpoint_dir)
    if average_last > 1:
        average_checkpoints(model, checkpoint_dir, average_last)
    else:
        restore_weights(model, checkpoint_dir)
    return model
