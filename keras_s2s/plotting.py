"""Attention heatmaps and learning curves. matplotlib is imported only when a plot is drawn.

`plot_attention` and `plot_translation` draw a heatmap as a PNG (or an image a notebook shows
inline); `attention_html`, `translate_to_html` and `show_attention` (from
`keras_s2s.attention_view`) make the interactive view of the same weights: one self-contained
HTML page where hovering a token highlights what it attended to, with the n-best list and,
for a Transformer, each layer's and head's cross-attention.
"""

import functools
import io
import pathlib
import warnings

from keras_s2s.attention_view import attention_html, show_attention, translate_to_html  # noqa: F401

# Sample characters whose glyphs a font must have to label Korean text.
_HANGUL_SAMPLE = "한국어"
# Unicode blocks of Korean text: Hangul Jamo, Compatibility Jamo, Hangul Syllables.
_HANGUL_BLOCKS = (("\u1100", "\u11ff"), ("\u3130", "\u318f"), ("\uac00", "\ud7a3"))
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


def _font_families(labels=()):
    """DejaVu Sans first, then a Hangul font if a label needs one: matplotlib falls back per
    glyph. Labels without Hangul never look for one (nor warn that none is installed)."""
    if not _has_hangul(labels):
        return ["DejaVu Sans"]
    hangul = hangul_font_family()
    return ["DejaVu Sans"] + ([hangul] if hangul else [])


def plot_attention(attention, source_tokens, target_tokens, path, title=None):
    """Saves a heatmap of one sentence's attention: source tokens across, output tokens down.

    Args:
        attention: (t, s) array-like; row i is where output token i looked.
        source_tokens: s labels (padding "" entries at the end are dropped).
        target_tokens: t labels (as above).
        path: PNG file (or binary file object) to write.
        title: optional title.

    Returns:
        `path` as a `pathlib.Path` (the file object itself when one was given).
    """
    import numpy as np

    source_tokens = [_label(token) for token in source_tokens if _label(token)]
    target_tokens = [_label(token) for token in target_tokens if _label(token)]
    weights = np.asarray(attention)[:len(target_tokens), :len(source_tokens)]
    pyplot = _pyplot()
    labels = source_tokens + target_tokens + ([title] if title else [])
    with pyplot.rc_context({"font.family": _font_families(labels)}):
        width = max(4.0, 0.32 * len(source_tokens) + 1.5)
        height = max(3.0, 0.32 * len(target_tokens) + 1.2)
        figure, axes = pyplot.subplots(figsize=(width, height))
        image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        # Hangul turned on its side is hard to read, so Korean columns keep their labels
        # horizontal, and the figure widens to fit them side by side.
        horizontal = _has_hangul(source_tokens)
        axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=0 if horizontal else 90)
        axes.set_yticks(range(len(target_tokens)), target_tokens)
        axes.set_xlabel("source")
        axes.set_ylabel("output")
        if title:
            axes.set_title(title)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        _widen_to_fit(figure, axes, horizontal)
        figure.savefig(path, dpi=120, format="png")
        pyplot.close(figure)
    return path if hasattr(path, "write") else pathlib.Path(path)


def _has_hangul(labels):
    return any(first <= character <= last for label in labels for character in label
               for first, last in _HANGUL_BLOCKS)


def _widen_to_fit(figure, axes, horizontal_columns):
    """Lays `figure` out, widening it until the title and the labels fit: a figure sized for
    its cells clips a title wider than itself, and horizontal column labels wider than their
    columns run into each other."""
    renderer = figure.canvas.get_renderer()
    width, height = figure.get_size_inches()
    labels = axes.get_xticklabels() if horizontal_columns else []
    # Inches each column needs so that two neighbouring labels, centred under their columns,
    # keep a gap between them.
    widths = [label.get_window_extent(renderer).width / figure.dpi for label in labels]
    column = 0.0
    if widths:
        column = max((left + right) / 2 for left, right in zip(widths, widths[1:] + [0.0])) + 0.15
    for _ in range(4):
        figure.tight_layout()
        # Inches that the title or labels reach beyond the figure, with a margin kept.
        short = figure.get_tightbbox(renderer).width + 0.2 - width
        if labels:
            short = max(short, column * len(labels) - axes.get_position().width * width)
        if short <= 0.01:
            break
        width += short + 0.05
        figure.set_size_inches(width, height)


def plot_translation(outputs, index=0, path=None, title=None):
    """Plots the attention of one row of a translator's outputs, trimmed to its real tokens.

    Args:
        outputs: the dict a `Translator` method or an exported signature returns (tensors),
            or the lists `translate_in_batches` and `serving.parse_rest_response` return:
            "attention" (batch, t, s), "source_tokens" (batch, s), "target_tokens" (batch, t)
            and "text" (batch,).
        index: the row (sentence) to draw.
        path: PNG file to write; None draws into memory and returns an image that a
            notebook shows inline (needs IPython).
        title: the plot's title; by default the row's translation.

    Returns:
        `path` as a `pathlib.Path`, or an `IPython.display.Image` when `path` is None.

    Example:
        outputs = translator.translate(tf.constant(["I eat an apple"]))
        plot_translation(outputs, 0)  # in a notebook: the heatmap of the first sentence
    """
    attention = _row(outputs, "attention", index)
    if title is None and "text" in outputs:
        title = _label(_row(outputs, "text", index))
    arguments = (attention, _row(outputs, "source_tokens", index),
                 _row(outputs, "target_tokens", index))
    if path is not None:
        return plot_attention(*arguments, path, title=title)
    try:
        from IPython.display import Image
    except ImportError:
        raise ValueError("plot_translation(path=None) returns an image for a notebook and "
                         "needs IPython; pass path= to write a PNG file instead.") from None
    buffer = plot_attention(*arguments, io.BytesIO(), title=title)
    return Image(data=buffer.getvalue(), format="png")


def translate_and_plot(translator, text, path, beam_size=None):
    """Translates one text with a `Translator` or loaded SavedModel, plots its attention to
    `path` and returns the translation (what `keras-s2s plot` does)."""
    import tensorflow as tf

    batch = tf.constant([text], tf.string)
    if beam_size is None:
        outputs = translator.translate(batch)
    else:
        outputs = translator.beam(batch, tf.constant(beam_size, tf.int32))
    translation = _label(outputs["text"].numpy()[0])
    plot_translation(outputs, 0, path, title=f"{text} → {translation}")
    return translation


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


def _row(outputs, key, index):
    """Row `index` of `outputs[key]`, which may be a tensor, an array or a list."""
    if key not in outputs:
        raise ValueError(f"outputs has no {key!r} entry (it has {sorted(outputs)}); pass the "
                         "dict a Translator method returns.")
    values = outputs[key]
    values = values.numpy() if hasattr(values, "numpy") else values
    if not -len(values) <= index < len(values):
        raise ValueError(f"index={index} is out of range for outputs of {len(values)} rows.")
    return values[index]
