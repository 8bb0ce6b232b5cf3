"""Every SavedModel shipped in saved_models/<name>/<version>/ loads and translates."""

import glob
import os

import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib

ROOT = os.path.join(os.path.dirname(__file__), "..", "saved_models")
SHIPPED = sorted(os.path.dirname(path) for path in glob.glob(os.path.join(ROOT, "*", "*", "saved_model.pb")))

# A few inputs per model and a word each translation must contain: what any working model
# of that corpus gets right, so a broken export cannot pass.
PROBES = {
    "multi30k-de-en": [("Ein Hund läuft durch den Schnee.", "dog"),
                       ("Zwei Männer spielen Fußball.", "soccer"),
                       ("Eine Frau sitzt auf einer Bank.", "woman")],
    "anki-kor-eng": [("나는 학생이에요.", "student"), ("고양이를 좋아해요.", "cat")],
    "anki-eng-kor": [("I am a student.", "학생"), ("I like cats.", "고양이")],
    "ko-chatbot": [("배고파", ""), ("오늘 너무 피곤해", "")],
}


def test_every_shipped_model_is_listed_in_the_probes():
    names = {os.path.basename(os.path.dirname(path)) for path in SHIPPED}
    assert names <= set(PROBES), names - set(PROBES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: os.path.relpath(path, ROOT))
def test_shipped_model_loads_translates_and_stays_small(path):
    size = sum(os.path.getsize(file) for file in glob.glob(os.path.join(path, "**"), recursive=True)
               if os.path.isfile(file))
    assert size <= 25 * 2 ** 20, f"{path} is {size / 2 ** 20:.1f} MiB"
    assert os.path.exists(os.path.join(os.path.dirname(path), "README.md"))
    translator = translator_lib.load(path)
    probes = PROBES[os.path.basename(os.path.dirname(path))]
    outputs = translator.translate(tf.constant([text for text, _ in probes]))
    for (text, expected), translation in zip(probes, outputs["text"].numpy()):
        translation = translation.decode("utf-8")
        assert translation.strip(), text
        assert expected in translation.lower(), (text, translation)
