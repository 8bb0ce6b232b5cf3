import warnings

import numpy as np
from PIL import Image

from keras_s2s import plotting


def test_attention_heatmap_is_written_with_its_labels(tmp_path):
    attention = np.eye(4, 5)
    path = plotting.plot_attention(attention, ["a", "b", "c", "[END]", ""], ["x", "y", "z", "[END]"],
                                   tmp_path / "attention.png", title="a b c")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 200


def test_korean_labels_use_a_hangul_font_or_warn_clearly(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plotting.hangul_font_family.cache_clear()
        family = plotting.hangul_font_family()
        plotting.plot_attention(np.full((3, 3), 1 / 3), ["나는", "사과를", "먹는다"],
                                ["I", "eat", "apple"], tmp_path / "korean.png")
    missing_glyphs = [w for w in caught if "missing from" in str(w.message)]
    if family is None:
        # No Hangul font on this machine: the user is told how to get one.
        assert any("fonts-nanum" in str(w.message) for w in caught)
    else:
        assert missing_glyphs == []
        # A font whose Hangul glyphs are all placeholder boxes does not count.
        assert not family.startswith("Last Resort"), family


def test_learning_curves_from_keras_history_and_from_the_custom_loop(tmp_path):
    class History:
        history = {"loss": [2.0, 1.0], "accuracy": [0.5, 0.8], "val_loss": [1.5, 1.1]}

    assert plotting.plot_history(History(), tmp_path / "keras.png").exists()
    records = [{"loss": 2.0, "accuracy": 0.5}, {"loss": 1.0, "accuracy": 0.9}]
    assert plotting.plot_history(records, tmp_path / "loop.png").exists()
