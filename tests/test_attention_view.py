"""The interactive attention view: the page's data and safety, then the page in a real browser."""

import html
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from keras_s2s import attention_view, plotting
from keras_s2s import translator as translator_lib

from .headless_browser import Browser, find_browser

TEXT = "Wednesday, March 3, 2021"
SCRIPT_TAG = "<script>window.__pwned=1</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror="window.__pwned=1">'


def page_data(page):
    """The JSON the page's script reads, as the browser's JSON.parse would."""
    block = re.search(r'<script type="application/json" class="s2s-data">(.*?)</script>', page, re.S)
    return json.loads(block.group(1))


def hostile_outputs():
    """One row of translator outputs whose tokens and text try to break out of the page."""
    source = [SCRIPT_TAG, ATTRIBUTE_BREAK, "</script><script>window.__pwned=1//", "<!--", "&amp;",
              "a\u2028b", "[END]", ""]
    target = ["'\"`", "<b>bold</b>", "[END]", ""]
    attention = np.zeros((1, 4, 8), np.float32)
    attention[0, np.arange(3), [1, 0, 6]] = 1.0
    return {"attention": attention, "source_tokens": [source], "target_tokens": [target],
            "text": [SCRIPT_TAG + ATTRIBUTE_BREAK], "score": [-0.5]}


@pytest.fixture(scope="module")
def transformer_translator(transformer_dates_export):
    return translator_lib.load(transformer_dates_export)


@pytest.fixture(scope="module")
def rnn_translator(rnn_dates_export):
    return translator_lib.load(rnn_dates_export)


@pytest.fixture(scope="module")
def transformer_beam(transformer_translator):
    """A beam search of three hypotheses on the Transformer export: (outputs, forced, page)."""
    outputs, forced = attention_view.translate_for_view(transformer_translator, TEXT, beam_size=3)
    return outputs, forced, attention_view.attention_html(outputs, 0, forced)


def test_transformer_page_has_every_hypothesis_layer_and_head(transformer_beam,
                                                              transformer_dates_model):
    outputs, forced, page = transformer_beam
    config = transformer_dates_model[0].model_config
    data = page_data(page)
    assert (data["layers"], data["heads"]) == (config.num_layers, config.num_heads)
    assert data["source"][-1] == "[END]" and "".join(data["source"][:-1]) == "wednesday,▁march▁3,▁2021"
    hypotheses = data["hypotheses"]
    assert [h["text"] for h in hypotheses] == [t.decode() for t in outputs["nbest"].numpy()[0]]
    np.testing.assert_allclose([h["score"] for h in hypotheses], outputs["nbest_scores"].numpy()[0],
                               atol=1e-6)
    for row, hypothesis in enumerate(hypotheses):
        heads = np.array(hypothesis["heads"])  # (layers, heads, t, s)
        assert heads.shape == (config.num_layers, config.num_heads, len(hypothesis["target"]),
                               len(data["source"]))
        np.testing.assert_allclose(heads.sum(axis=-1), 1.0, atol=1e-3)  # each row a distribution
        assert hypothesis["target"][-1] == "[END]"
        expected = forced["heads"].numpy()[row][:, :, :heads.shape[2], :heads.shape[3]]
        np.testing.assert_allclose(heads, expected, atol=1e-4)
    # The best hypothesis keeps the attention its search recorded, the last layer's average.
    best = np.array(hypotheses[0]["attention"])
    np.testing.assert_allclose(best, outputs["attention"].numpy()[0][:best.shape[0], :best.shape[1]],
                               atol=1e-4)
    np.testing.assert_allclose(np.array(hypotheses[0]["heads"])[-1].mean(axis=0), best, atol=1e-3)


def test_page_loads_nothing_and_allows_only_its_own_style_and_script(transformer_beam):
    page = transformer_beam[2]
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert 'name="viewport"' in page  # phone browsers lay it out at their own width
    for fetches in ("http:", "https:", "file:", "data:", "src=", "href=", "url(", "@import",
                    "@font-face", "fetch(", "XMLHttpRequest", "WebSocket", "import("):
        assert fetches not in page, fetches
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1
    assert f"'{attention_view._sha256(style)}'" in policy
    assert f"'{attention_view._sha256(script[0])}'" in policy


def test_greedy_rnn_page_has_one_hypothesis_and_no_head_selector(rnn_translator):
    outputs, forced = attention_view.translate_for_view(rnn_translator, TEXT)
    data = page_data(plotting.attention_html(outputs, 0, forced))  # re-exported by plotting
    assert (data["layers"], data["heads"]) == (1, 1)
    [hypothesis] = data["hypotheses"]
    assert hypothesis["text"] == outputs["text"].numpy()[0].decode()
    assert hypothesis["score"] == pytest.approx(float(outputs["score"].numpy()[0]), abs=1e-6)
    assert hypothesis["heads"] is None
    target = [token.decode() for token in outputs["target_tokens"].numpy()[0] if token]
    assert hypothesis["target"] == target
    np.testing.assert_allclose(hypothesis["attention"],
                               outputs["attention"].numpy()[0][:len(target), :len(data["source"])],
                               atol=1e-4)


def test_without_forced_attention_only_the_best_hypothesis_has_weights(transformer_beam):
    # What an export made before forced_attention existed gives: the beam outputs alone.
    outputs = transformer_beam[0]
    data = page_data(attention_view.attention_html(outputs, 0))
    assert (data["layers"], data["heads"]) == (1, 1)
    assert data["hypotheses"][0]["attention"] is not None
    assert [h["attention"] for h in data["hypotheses"][1:]] == [None, None]

    class OldExport:  # no forced_attention function
        pass

    assert attention_view.forced_for_row(OldExport(), TEXT, outputs) is None


def test_every_token_is_escaped_and_the_data_cannot_end_its_block():
    outputs = hostile_outputs()
    for document in (True, False):
        page = attention_view.attention_html(outputs, 0, document=document)
        assert SCRIPT_TAG not in page and "<img" not in page and "<!--" not in page
        assert "<b>" not in page
        # The only <script> tags are the data block and the view's own script.
        assert page.count("<script") == 2
        data = page_data(page)
        assert data["source"] == hostile_outputs()["source_tokens"][0][:-1]
        assert data["hypotheses"][0]["target"] == ["'\"`", "<b>bold</b>", "[END]"]
        assert data["title"] == SCRIPT_TAG + ATTRIBUTE_BREAK
    document_page = attention_view.attention_html(outputs, 0)
    assert f"<title>{html.escape(SCRIPT_TAG + ATTRIBUTE_BREAK)}</title>" in document_page


def test_fragment_is_what_a_notebook_shows_inline(transformer_beam, transformer_translator):
    outputs, forced, _ = transformer_beam
    fragment = attention_view.attention_html(outputs, 0, forced, document=False)
    assert fragment.startswith('<div class="s2s-view"') and "<html" not in fragment
    from IPython.display import HTML

    assert HTML(fragment).data == fragment
    shown = plotting.show_attention(transformer_translator, TEXT)
    assert isinstance(shown, HTML) and "<html" not in shown.data
    [hypothesis] = page_data(shown.data)["hypotheses"]
    assert hypothesis["heads"] is not None  # a layer and head selector in the notebook too


def test_bad_arguments_name_themselves(transformer_beam):
    with pytest.raises(ValueError, match="index=5"):
        attention_view.attention_html(transformer_beam[0], 5)
    with pytest.raises(ValueError, match="no 'source_tokens' entry"):
        attention_view.attention_html({"text": [b"x"]}, 0)


# In a real browser: headless Chromium over the DevTools protocol.

BROWSER = find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium-based browser on PATH (Debian: apt-get install chromium)")
SOURCE_TOKENS = ".s2s-tokens[data-side=source] .s2s-token"
OUTPUT_TOKENS = ".s2s-tokens[data-side=output] .s2s-token"


@pytest.fixture(scope="module")
def browser():
    with Browser(BROWSER) as started:
        yield started


def marked(page, selector):
    """Indices of the tokens `selector` matches that the view marked as most attended."""
    return page.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})]"
                         ".flatMap((node, i) => node.classList.contains('s2s-top') ? [i] : [])")


def largest(weights):
    """Indices of a row's largest weights: one, unless two tie to the page's 4 decimals."""
    weights = np.round(weights, 4)
    return list(np.flatnonzero(weights == weights.max()))


def write(tmp_path, name, page):
    path = tmp_path / name
    path.write_text(page, encoding="utf-8")
    return path.as_uri()


@pytest.mark.subprocess  # starts the browser
@needs_browser
def test_hovering_a_token_highlights_what_it_attended_to(browser, transformer_beam, tmp_path):
    outputs, forced, page_html = transformer_beam
    url = write(tmp_path, "view.html", page_html)
    page = browser.open(url)
    data = page_data(page_html)
    # The best hypothesis, the last layer's average: the search's own attention.
    attention = np.array(data["hypotheses"][0]["heads"])[-1].mean(axis=0)  # (t, s)
    np.testing.assert_allclose(attention, outputs["attention"].numpy()[0][:attention.shape[0],
                                                                          :attention.shape[1]], atol=1e-3)
    assert page.evaluate(f"document.querySelectorAll('{OUTPUT_TOKENS}').length") == attention.shape[0]
    for row in range(attention.shape[0]):
        page.hover(f"{OUTPUT_TOKENS}:nth-child({row + 1})")
        assert marked(page, SOURCE_TOKENS) == largest(attention[row]), row
    # The reverse: a source token marks the output tokens that looked at it most.
    column = int(np.argmax(attention.max(axis=0)))
    page.hover(f"{SOURCE_TOKENS}:nth-child({column + 1})")
    assert marked(page, OUTPUT_TOKENS) == largest(attention[:, column])
    weights = page.evaluate(f"[...document.querySelectorAll('{OUTPUT_TOKENS}')].map(n => n.dataset.weight)")
    assert weights == [f"{weight:.2f}" for weight in attention[:, column]]

    png = page.screenshot()
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 200 and counts.max() / len(pixels) < 0.9  # text, tokens, heatmap

    # The third n-best entry, then the first layer's second head.
    page.click(".s2s-nbest li:nth-child(3) button")
    third = data["hypotheses"][2]
    assert page.evaluate(f"[...document.querySelectorAll('{OUTPUT_TOKENS}')].map(n => n.textContent)") \
        == third["target"]
    page.evaluate("(() => { for (const [name, value] of [['layer', '0'], ['head', '1']]) {"
                  "  const select = [...document.querySelectorAll('label')].find("
                  "    label => label.textContent.startsWith(name)).querySelector('select');"
                  "  select.value = value; select.dispatchEvent(new Event('change')); } })()")
    head = np.array(third["heads"])[0, 1]  # (t, s)
    for row in range(head.shape[0]):
        page.hover(f"{OUTPUT_TOKENS}:nth-child({row + 1})")
        assert marked(page, SOURCE_TOKENS) == largest(head[row]), row
    assert page.requested_urls() == [url] and page.errors() == []
    page.close()


@pytest.mark.subprocess
@needs_browser
def test_tab_reaches_the_tokens_and_focus_highlights_at_phone_width(browser, transformer_beam, tmp_path):
    url = write(tmp_path, "view.html", transformer_beam[2])
    page = browser.open(url, width=360, height=800, mobile=True)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]  # no sideways scrolling: the heatmap scrolls in its own box
    for _ in range(30):
        page.press("Tab", "Tab", 9)
        if page.evaluate("document.activeElement.classList.contains('s2s-token')"):
            break
    focused = page.evaluate("document.activeElement.parentNode.dataset.side")
    assert focused == "source"
    page.press("ArrowRight", "ArrowRight", 39)  # arrow keys move along the tokens
    assert page.evaluate("document.activeElement.dataset.index") == "1"
    painted = page.evaluate(f"[...document.querySelectorAll('{OUTPUT_TOKENS}')]"
                            ".filter(n => n.style.backgroundColor).length")
    assert painted == len(page_data(transformer_beam[2])["hypotheses"][0]["target"])
    assert "most attention from" in page.evaluate("document.querySelector('.s2s-status').textContent")
    assert page.errors() == []
    page.close()


@pytest.mark.subprocess
@needs_browser
def test_markup_in_the_source_text_stays_text(browser, rnn_translator, tmp_path):
    text = f"{SCRIPT_TAG} {ATTRIBUTE_BREAK}"
    translation = attention_view.translate_to_html(rnn_translator, text, tmp_path / "real.html")
    pages = {"real.html": None,
             "tokens.html": attention_view.attention_html(hostile_outputs(), 0),
             # Embedded as a notebook does: no Content-Security-Policy to fall back on.
             "fragment.html": attention_view.attention_html(hostile_outputs(), 0, document=False)}
    for name, content in pages.items():
        url = write(tmp_path, name, content) if content else (tmp_path / name).as_uri()
        page = browser.open(url)
        assert page.evaluate("typeof window.__pwned") == "undefined", name
        assert page.evaluate("document.images.length + document.querySelectorAll('b').length") == 0
        assert page.evaluate("document.querySelectorAll('script').length") == 2  # data, view
        title = page.evaluate("document.querySelector('.s2s-title').textContent")
        tokens = page.evaluate(f"[...document.querySelectorAll('{SOURCE_TOKENS}')].map(n => n.textContent)")
        if name == "real.html":
            assert title == f"{text} → {translation}"
            # Character tokens, as many as the model reads (max_source_length).
            assert len(tokens) > 40 and text.replace(" ", "▁").startswith("".join(tokens[:-1]))
        else:
            assert title == SCRIPT_TAG + ATTRIBUTE_BREAK
            assert tokens == hostile_outputs()["source_tokens"][0][:-1]
        assert page.requested_urls() == [url] and page.errors() == [], name
        page.close()

