"""Every SavedModel shipped in saved_models/<name>/<version>/ loads and translates."""

import glob
import os

import pytest
import tensorflow as tf

from keras_s2s import translator as translator_lib

ROOT = os.path.join(os.path.dirname(__file__), "..", "saved_models")
SHIPPED = sorted(os.path.dirname(path) for path in glob.glob(os.path.join(ROOT, "*", "*", "saved_model.pb")))

# A few inputs per model and words one of which the output must contain: what any working
# model of that corpus gets right, so a broken export cannot pass.
PROBES = {
    "multi30k-de-en": [("Ein Hund läuft durch den Schnee.", ("dog",)),
                       ("Zwei Männer spielen Fußball.", ("soccer", "football")),
                       ("Eine Frau sitzt auf einer Bank.", ("woman",))],
    # The Transformer keeps case: the probes are matched lower-cased all the same.
    "multi30k-de-en-transformer": [("Ein Hund läuft durch den Schnee.", ("dog",)),
                                   ("Zwei Männer spielen Fußball.", ("soccer", "football")),
                                   ("Eine Frau sitzt auf einer Bank.", ("woman",))],
    "spa-en-small": [("¿Dónde está el baño?", ("where",)),
                     ("Me gusta mucho el café.", ("coffee",)),
                     ("Tom tiene tres perros.", ("dogs",))],
    # "I'm hungry" wants food, "I'm so tired today" wants rest.
    "ko-chatbot": [("배고파", ("음식", "먹", "밥")), ("오늘 너무 피곤해", ("쉬", "잠", "자"))],
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
        assert any(word in translation.lower() for word in expected), (text, translation)


@pytest.mark.subprocess
@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: os.path.relpath(path, ROOT))
def test_fresh_process_with_only_tensorflow_matches_this_process(path):
    import json
    import subprocess
    import sys

    texts = [text for text, _ in PROBES[os.path.basename(os.path.dirname(path))]] + [""]
    script = ("import json, sys\n"
              "import tensorflow as tf, tensorflow_text\n"
              "loaded = tf.saved_model.load(sys.argv[1])\n"
              "out = loaded.signatures['serving_default'](text=tf.constant(json.loads(sys.argv[2])))\n"
              "print(json.dumps([t.decode() for t in out['text'].numpy()]))\n"
              "assert 'keras_s2s' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", script, path, json.dumps(texts)], capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd="/", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = translator_lib.load(path)  # keep it: its functions use the variables it owns
    here = loaded.translate(tf.constant(texts))["text"].numpy()
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [text.decode() for text in here]
