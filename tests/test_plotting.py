import warnings

import numpy as np
import pytest
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

    records = [{"loss": 2.0, "accuracy": 0.5, "val_loss": 1.5}, {"loss": 1.0, "accuracy": 0.8,
                                                                "val_loss": 1.1}]
    # Keras' History and the custom loop's records of the same epochs draw the same picture.
    keras_png = plotting.plot_history(History(), tmp_path / "keras.png").read_bytes()
    loop_png = plotting.plot_history(records, tmp_path / "loop.png").read_bytes()
    assert keras_png == loop_png
    without_validation = [{key: value for key, value in record.items() if key != "val_loss"}
                          for record in records]
    assert plotting.plot_history(without_validation, tmp_path / "train.png").read_bytes() != loop_png
    with Image.open(tmp_path / "loop.png") as image:
        assert image.size[0] > 2 * image.size[1]  # one panel per metric, side by side


def test_plot_translation_draws_one_row_of_a_translators_outputs(tmp_path):
    # Two rows padded to one shape, as a Translator returns them; row 1 is the short one.
    attention = np.zeros((2, 4, 5))
    attention[1, :2, :3] = np.eye(2, 3)
    outputs = {"attention": attention, "text": [b"x y z", b"q"],
               "source_tokens": [[b"a", b"b", b"c", b"d", b"[END]"], [b"e", b"f", b"[END]", b"", b""]],
               "target_tokens": [[b"x", b"y", b"z", b"[END]"], [b"q", b"[END]", b"", b""]]}
    path = plotting.plot_translation(outputs, 1, tmp_path / "row.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    shown = plotting.plot_translation(outputs, 1)  # no path: an image a notebook shows inline
    assert shown.data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="index=2"):
        plotting.plot_translation(outputs, 2, tmp_path / "none.png")


def test_korean_columns_stay_horizontal_and_a_long_title_is_not_clipped(tmp_path):
    pyplot = plotting._pyplot()
    source = ["나는", "어제", "친구와", "공원에서", "산책했다", "[END]"]
    title = "I took a walk in the park with a friend yesterday → 나는 어제 친구와 공원에서 산책했다"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without a Hangul font the boxes are as wide as glyphs
        with pyplot.rc_context({"font.family": plotting._font_families(source)}):
            figure, axes = pyplot.subplots(figsize=(2.5, 3.0))
            axes.imshow(np.eye(3, len(source)), aspect="auto")
            axes.set_xticks(range(len(source)), source, rotation=0)
            axes.set_title(title)
            plotting._widen_to_fit(figure, axes, horizontal_columns=True)
            renderer = figure.canvas.get_renderer()
            assert figure.get_tightbbox(renderer).width * figure.dpi <= figure.bbox.width + 1
            boxes = [label.get_window_extent(renderer) for label in axes.get_xticklabels()]
            assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))
            assert {label.get_rotation() for label in axes.get_xticklabels()} == {0.0}
            pyplot.close(figure)
