"""Attention heatmaps and learning curves. matplotlib is imported only when a plot is drawn."""

import functools
import pathlib
import warnings

# Sample characters whose glyphs a font must have to label Korean text.
_HANGUL_SAMPLE = "한국어"
# Fonts that map every character to a placeholder box: their charmap has Hangul, their
# glyphs do not (matplotlib ships "Last Resort High-Efficiency").
_PLACEHOLDER_FONTS = ("Last Resort",)


@functools.lru_cache(maxsize=None)
def hangul_font_family():
    """Name of an installed font family with Hangul glyphs, or None (warns once)."""
    from matplotlib import font_manager, ft2font

    for entry in sorted(font_manager.fontManager.ttflist, key=lambda font: font.name):
        if entry.name.startswith(_PLACEHOLDER_FONTS):
            continue
        try:
            charmap = ft2font.FT2Font(entry.fname).get_charmap()
        except (OSError, RuntimeError):
            continue
        if all(ord(character) in charmap for character in _HANGUL_SAMPLE):
            return entry.name
    warnings.warn("No installed font has Hangul glyphs, so Korean labels will show as boxes. "
                  "Install one (Debian/Ubuntu: apt-get install fonts-nanum) and clear "
                  "matplotlib's font cache.", stacklevel=2)
    return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines without a display
    import matplotlib.pyplot as pyplot

    return pyplot


def _font_families():
    """DejaVu Sans first, then a Hangul font: matplotlib falls back per glyph."""
    hangul = hangul_font_family()
    return ["DejaVu Sans"] + ([hangul] if hangul else [])


def plot_attention(attention, source_tokens, target_tokens, path, title=None):
    """Saves a heatmap of one sentence's attention: source tokens across, output tokens down.

    Args:
        attention: (t, s) array-like; row i is where output token i looked.
        source_tokens: s labels (padding "" entries at the end are dropped).
        target_tokens: t labels (as above).
        path: PNG file to write.
        title: optional title.
    """
    import numpy as np

    source_tokens = [_label(token) for token in source_tokens if _label(token)]
    target_tokens = [_label(token) for token in target_tokens if _label(token)]
    weights = np.asarray(attention)[:len(target_tokens), :len(source_tokens)]
    pyplot = _pyplot()
    with pyplot.rc_context({"font.family": _font_families()}):
        width = max(4.0, 0.32 * len(source_tokens) + 1.5)
        height = max(3.0, 0.32 * len(target_tokens) + 1.2)
        figure, axes = pyplot.subplots(figsize=(width, height))
        image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
        axes.set_yticks(range(len(target_tokens)), target_tokens)
        axes.set_xlabel("source")
        axes.set_ylabel("output")
        if title:
            axes.set_title(title)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        pyplot.close(figure)
    return pathlib.Path(path)


def plot_history(history, path, metrics=("loss", "accuracy")):
    """Saves learning curves (train and validation per epoch) from a list of epoch dicts
    (`training.train`) or a Keras `History`."""
    records = history.history if hasattr(history, "history") else history
    if isinstance(records, dict):  # Keras: {"loss": [...], ...} -> [{"loss": ...}, ...]
        records = [dict(zip(records, values)) for values in zip(*records.values())]
    pyplot = _pyplot()
    figure, axes_list = pyplot.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2))
    for axes, metric in zip(axes_list if len(metrics) > 1 else [axes_list], metrics):
        epochs = range(1, len(records) + 1)
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [record.get(key) for record in records]
            if any(value is not None for value in values):
                axes.plot(epochs, values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return pathlib.Path(path)


def _label(token):
    return token.decode("utf-8") if isinstance(token, bytes) else str(token)


def plot_translation(translator, text, path, beam_size=None):
    """Translates one text with a `Translator` or loaded SavedModel and plots its attention."""
    import tensorflow as tf

    batch = tf.constant([text], tf.string)
    if beam_size is None:
        outputs = translator.translate(batch)
    else:
        outputs = translator.beam(batch, tf.constant(beam_size, tf.int32))
    translation = outputs["text"].numpy()[0].decode("utf-8")
    plot_attention(outputs["attention"].numpy()[0], outputs["source_tokens"].numpy()[0],
                   outputs["target_tokens"].numpy()[0], path, title=f"{text} → {translation}")
    return translation
