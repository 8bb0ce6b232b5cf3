"""`keras-s2s demo`: train, evaluate, look inside and export, on an embedded task, in one go."""

import dataclasses
import os
import time

import keras

from keras_s2s import tasks
from keras_s2s.config import preset
from keras_s2s.data import make_dataset
from keras_s2s.metrics import exact_match
from keras_s2s.model import Seq2Seq
from keras_s2s.plotting import plot_history, plot_translation
from keras_s2s.training import make_optimizer
from keras_s2s.translator import translate_in_batches


def run_demo(output_dir="demo_output", task="dates", train_size=20000, test_size=1000,
             epochs=None, seed=0, examples=5, verbose=2):
    """Trains the task's preset model with `model.fit`, reports held-out exact match, prints
    a few translations with their alignment, writes attention.png, history.png and the
    exported SavedModel into `output_dir`. Returns a dict of what it measured."""
    started = time.perf_counter()
    model_config, train_config = preset(task)
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    train_pairs, test_pairs = tasks.load_task(task, train_size, test_size, seed=seed)
    keras.utils.set_random_seed(seed)
    model = Seq2Seq.from_pairs(train_pairs, model_config)
    model.compile(optimizer=make_optimizer(train_config),
                  label_smoothing=train_config.label_smoothing)
    print(f"Task {task!r}: {len(train_pairs)} training pairs, {len(test_pairs)} held out. "
          f"{model_config.cell.upper()} encoder-decoder with {model_config.attention} attention, "
          f"{model.count_params():,} parameters.")
    history = model.fit(
        make_dataset(train_pairs, model, train_config.batch_size, seed=seed),
        validation_data=make_dataset(test_pairs, model, 256, shuffle=False),
        # The dataset reshuffles itself each epoch; shuffle=False only stops fit warning that
        # it cannot shuffle a tf.data.Dataset.
        epochs=train_config.epochs, shuffle=False, verbose=verbose)
    training_seconds = time.perf_counter() - started

    sources = [source for source, _ in test_pairs]
    references = [target for _, target in test_pairs]
    outputs = translate_in_batches(model.translator(), sources)
    score = exact_match(outputs["text"], references)
    print(f"\nExact match on {len(test_pairs)} held-out pairs: {score:.2%}\n")
    for index in range(min(examples, len(sources))):
        verdict = "ok" if outputs["text"][index] == references[index] else f"expected {references[index]}"
        print(f"{sources[index]!r} -> {outputs['text'][index]!r}   ({verdict}, "
              f"log p = {outputs['score'][index]:.4f})")
        print("    looks at: " + alignment_line(outputs, index))

    os.makedirs(output_dir, exist_ok=True)
    attention_path = plot_translation(outputs, 0, os.path.join(output_dir, "attention.png"),
                                      title=sources[0])
    history_path = plot_history(history, os.path.join(output_dir, "history.png"))
    saved_model_path = model.export(os.path.join(output_dir, "saved_model"))
    # The held-out split as text files, so `keras-s2s evaluate` can score other decodings.
    for name, lines in (("test.source.txt", sources), ("test.reference.txt", references)):
        with open(os.path.join(output_dir, name), "w", encoding="utf-8") as file:
            file.writelines(line + "\n" for line in lines)
    seconds = time.perf_counter() - started
    print(f"\nWrote {attention_path}, {history_path}, {saved_model_path}/ and the held-out "
          f"split (test.source.txt, test.reference.txt)")
    print(f"Took {seconds:.1f} s in all ({training_seconds:.1f} s to build and train).")
    return {"task": task, "exact_match": score, "seconds": seconds,
            "training_seconds": training_seconds, "attention_png": attention_path,
            "history_png": history_path, "saved_model": saved_model_path}


def alignment_line(outputs, index):
    """'out←source' for every output token of sentence `index`: the source token it weighted most."""
    attention = outputs["attention"][index]
    source_tokens = [token.decode("utf-8") for token in outputs["source_tokens"][index]]
    pieces = []
    for row, token in enumerate(outputs["target_tokens"][index]):
        token = token.decode("utf-8")
        if not token or token == "[END]":
            break
        column = int(attention[row].argmax())
        pieces.append(f"{token}←{source_tokens[column]}")
    return " ".join(pieces)
