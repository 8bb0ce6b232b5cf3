"""An interactive attention view: one self-contained HTML page, in a notebook or as a file.

Hovering (or tapping, or tabbing to) an output token colours the source tokens by the weight
it gave each; a source token colours the output tokens the same way. Below them the heatmap
uses the same colours (matplotlib's viridis), and the n-best list picks the hypothesis shown.
For a Transformer, a layer and head selector ("average": the mean over the layer's heads)
shows each head's cross-attention.

    outputs = translator.beam(tf.constant(["March 3, 2021"]), tf.constant(3))
    page = attention_html(outputs, 0)              # the best hypothesis's attention
    translate_to_html(translator, "March 3, 2021", "march.html", beam_size=3)  # every one's
    show_attention(translator, "March 3, 2021")    # in a notebook: the view inline

The page loads nothing (a Content-Security-Policy forbids it) and brings no font: every
script renders in the reader's own fonts. Its data is JSON in a `<script type=
"application/json">` block with `<`, `>` and `&` written as \\u escapes, read by the page's
own script, which puts every token into the page as text (`textContent`), never as markup.
"""

import base64
import hashlib
import html
import json
import math
from importlib import resources

# The page's style and script, package data beside this module.
_STYLE = resources.files(__package__).joinpath("attention_view.css").read_text("utf-8")
_SCRIPT = resources.files(__package__).joinpath("attention_view.js").read_text("utf-8")
# Decimals kept of each weight: the view shows two; four keep the colours exact.
_DECIMALS = 4


def attention_html(outputs, index=0, forced=None, title=None, document=True):
    """The interactive attention view of one row of a translator's outputs.

    Args:
        outputs: the dict a `Translator` method or an exported signature returns (tensors),
            or the lists `translate_in_batches` returns: "attention" (batch, t, s),
            "source_tokens" (batch, s), "target_tokens" (batch, t), "text" and "score"
            (batch,); with beam search also "nbest" and "nbest_scores" (batch, k).
        index: the row (sentence) to show.
        forced: optional, what `translator.forced_attention` returned for this row's
            hypotheses (one row each, in n-best order): the attention of every n-best entry
            and, for a Transformer, of every layer and head. Without it only the best
            hypothesis has attention (the one a search records).
        title: the view's heading; by default the row's translation.
        document: True: a whole HTML document (a file to open); False: a fragment to embed,
            as `IPython.display.HTML(attention_html(..., document=False))` does.

    Returns:
        The HTML as a str.
    """
    from keras_s2s.plotting import _label, _row  # plotting re-exports this module's functions

    source = _tokens(_row(outputs, "source_tokens", index))
    target = _tokens(_row(outputs, "target_tokens", index))
    attention = _array(_row(outputs, "attention", index))[:len(target), :len(source)]
    texts = ([_label(text) for text in _row(outputs, "nbest", index)] if "nbest" in outputs
             else [_label(_row(outputs, "text", index))])
    scores = (list(_row(outputs, "nbest_scores", index)) if "nbest_scores" in outputs
              else [_row(outputs, "score", index)] if "score" in outputs else [None])
    hypotheses = [{"text": text, "score": _number(score), "target": None, "attention": None,
                   "heads": None} for text, score in zip(texts, scores)]
    hypotheses[0].update(target=target, attention=_rounded(attention))
    layers = heads = 1
    if forced is not None:
        forced_heads = _array(forced["heads"])  # (k, layers, heads, t, s)
        layers, heads = forced_heads.shape[1:3]
        for row, hypothesis in enumerate(hypotheses[:len(forced_heads)]):
            forced_target = _tokens(_row(forced, "target_tokens", row))
            if row == 0 and forced_target != target:
                continue  # its text, tokenised again, is not what the search wrote: no heads
            weights = forced_heads[row][:, :, :len(forced_target), :len(source)]
            if row > 0:  # the best keeps the attention its search recorded
                hypothesis.update(target=forced_target, attention=_rounded(weights[-1].mean(axis=0)))
            if layers * heads > 1:
                hypothesis["heads"] = _rounded(weights)  # (layers, heads, t, s)
    title = texts[0] if title is None else title
    data = {"title": title, "source": source, "layers": int(layers), "heads": int(heads),
            "hypotheses": hypotheses}
    fragment = (f'<div class="s2s-view" lang="und"><noscript>{html.escape(title)}: this view '
                f'needs JavaScript.</noscript><script type="application/json" class="s2s-data">'
                f'{_json_for_script(data)}</script></div>\n<style>{_STYLE}</style>\n'
                f'<script>{_SCRIPT}</script>\n')
    return _html_document(title, fragment) if document else fragment


def _html_document(title, fragment):
    """A whole HTML page around the view's fragment."""
    # Only this page's own style and script may run; nothing may be fetched.
    policy = (f"default-src 'none'; script-src '{_sha256(_SCRIPT)}'; "
              f"style-src '{_sha256(_STYLE)}'; base-uri 'none'; form-action 'none'")
    return ('<!DOCTYPE html>\n<html lang="und">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<title>{html.escape(title)}</title>\n</head>\n<body>\n{fragment}</body>\n</html>\n')


def forced_for_row(translator, text, outputs, index=0):
    """`translator.forced_attention` over row `index`'s hypotheses (its n-best list, or its
    translation) of `text`, or None for an export made before that function existed."""
    from keras_s2s.plotting import _row

    if not hasattr(translator, "forced_attention"):
        return None
    import tensorflow as tf

    targets = list(_row(outputs, "nbest", index)) if "nbest" in outputs else [_row(outputs, "text", index)]
    return translator.forced_attention(tf.constant([text] * len(targets), tf.string),
                                       tf.constant(targets, tf.string))


def translate_for_view(translator, text, beam_size=None):
    """Translates one text (with beam search when `beam_size` is given) with a `Translator`
    or a loaded SavedModel; returns (outputs, forced) for `attention_html`."""
    import tensorflow as tf

    batch = tf.constant([text], tf.string)
    if beam_size is None:
        outputs = translator.translate(batch)
    else:
        outputs = translator.beam(batch, tf.constant(beam_size, tf.int32))
    return outputs, forced_for_row(translator, text, outputs)


def translate_to_html(translator, text, path, beam_size=None):
    """Translates one text, writes its attention view to `path` and returns the translation
    (what `keras-s2s plot --html` does)."""
    from keras_s2s.plotting import _label

    outputs, forced = translate_for_view(translator, text, beam_size)
    translation = _label(outputs["text"].numpy()[0])
    page = attention_html(outputs, 0, forced, title=f"{text} → {translation}")
    with open(path, "w", encoding="utf-8") as file:
        file.write(page)
    return translation


def show_attention(translator, text, beam_size=None):
    """The attention view of one text's translation, as an `IPython.display.HTML` that a
    notebook shows inline."""
    from IPython.display import HTML

    outputs, forced = translate_for_view(translator, text, beam_size)
    return HTML(attention_html(outputs, 0, forced, title=text, document=False))


def _json_for_script(data):
    """JSON that cannot end its <script> block or open a comment or a tag in it."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text):
    """A CSP source expression allowing the inline element whose content is `text`."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _tokens(row):
    """A row of tokens without its padding ("" entries at the end), as str."""
    from keras_s2s.plotting import _label

    tokens = [_label(token) for token in row]
    while tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


def _array(values):
    import numpy as np

    return np.asarray(values.numpy() if hasattr(values, "numpy") else values, dtype=np.float64)


def _rounded(weights):
    """Nested lists of weights rounded to `_DECIMALS`, for JSON."""
    return _array(weights).round(_DECIMALS).tolist()


def _number(value):
    """A float for JSON, or None for a missing or infinite score (an empty beam)."""
    if value is None:
        return None
    value = float(value.numpy() if hasattr(value, "numpy") else value)
    return value if math.isfinite(value) else None
