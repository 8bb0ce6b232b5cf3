"""`keras-s2s evaluate`: translate a source file with a SavedModel and score it."""

import os
import time

from keras_s2s.data import read_lines
from keras_s2s.metrics import corpus_bleu, corpus_chrf, exact_match
from keras_s2s.translator import load, translate_in_batches


def evaluate_files(model_path, source_path, reference_path, beam_size=None, lowercase=False,
                   tokenize="13a", hypotheses_path=None, batch_size=64):
    """Translates `source_path` line by line and scores it against `reference_path`.

    Args:
        model_path: an exported SavedModel directory.
        source_path, reference_path: aligned text files, one sentence a line, plain or .gz.
        beam_size: beam search with this many hypotheses (default: the model's own decoding).
        lowercase: lower-cased BLEU and chrF.
        tokenize: sacreBLEU tokeniser for BLEU ("13a", or "char" for Korean).
        hypotheses_path: also write the translations here, one a line.
        batch_size: sentences per call.

    Returns:
        {"bleu", "chrf", "exact_match", "sentences", "seconds", "sentences_per_second"};
        seconds counts translation only, not loading.
    """
    if hypotheses_path:
        _refuse_to_overwrite(hypotheses_path, source=source_path, reference=reference_path,
                             model=model_path)
    sources, references = read_lines(source_path), read_lines(reference_path)
    if len(sources) != len(references):
        raise ValueError(f"source={source_path!r} has {len(sources)} lines but "
                         f"reference={reference_path!r} has {len(references)}.")
    if not sources:
        raise ValueError(f"source={source_path!r} is empty.")
    translator = load(model_path)
    start = time.perf_counter()
    hypotheses = translate_in_batches(translator, sources, batch_size, beam_size)["text"]
    seconds = time.perf_counter() - start
    if hypotheses_path:
        with open(hypotheses_path, "w", encoding="utf-8") as file:
            file.writelines(hypothesis + "\n" for hypothesis in hypotheses)
    return {"bleu": round(corpus_bleu(hypotheses, references, lowercase, tokenize), 2),
            "chrf": round(corpus_chrf(hypotheses, references, lowercase), 2),
            "exact_match": round(exact_match(hypotheses, references), 4),
            "sentences": len(sources), "seconds": round(seconds, 3),
            "sentences_per_second": round(len(sources) / seconds, 1)}


def _refuse_to_overwrite(hypotheses_path, **inputs):
    """Raises ValueError if `hypotheses_path` is one of the input files (or inside the model)."""
    target = os.path.realpath(hypotheses_path)
    for name, path in inputs.items():
        real = os.path.realpath(path)
        if target == real or target.startswith(real.rstrip(os.sep) + os.sep):
            where = f"the {name} file" if target == real else f"inside the {name}"
            raise ValueError(f"hypotheses={hypotheses_path!r} is {where} {path!r}; writing the "
                             "translations there would destroy it. Choose another file.")
