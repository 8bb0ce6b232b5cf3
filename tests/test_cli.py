"""The command line, run as a user runs it: in a subprocess."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers import ENV, keras_s2s, write_apple_pairs

pytestmark = pytest.mark.subprocess  # every test here starts the command in a new process


@pytest.mark.slow  # a full training to 99 %: the default run trains and exports through `train` below
def test_demo_reaches_99_percent_and_writes_its_files(tmp_path):
    result = keras_s2s("demo", "--output-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    exact = float(re.search(r"Exact match on 1000 held-out pairs: ([\d.]+)%", result.stdout).group(1))
    assert exact >= 99.0
    assert re.search(r"Took [\d.]+ s in all", result.stdout)
    assert "looks at:" in result.stdout
    for name in ("attention.png", "history.png", "saved_model/saved_model.pb", "test.source.txt",
                 "test.reference.txt"):
        assert (tmp_path / name).exists(), name


def test_train_resumes_then_exports_and_translates(tmp_path):
    checkpoints, export = tmp_path / "run", tmp_path / "export"
    # A few hundred pairs: what is checked is resumption, export and decoding, not accuracy.
    common = ["train", "--task", "dates", "--train-size", "300", "--test-size", "20",
              "--checkpoint-dir", checkpoints]
    first = keras_s2s(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (checkpoints / "config.json").exists() and (checkpoints / "source_vocab.txt").exists()

    second = keras_s2s(*common, "--epochs", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from" in second.stdout and "after epoch 1" in second.stdout
    assert "Epoch 1/2" not in second.stdout and "Epoch 2/2" in second.stdout

    other = keras_s2s("train", "--task", "toy-ko", "--checkpoint-dir", checkpoints, "--epochs", "3")
    assert other.returncode == 2 and "task: was 'dates', now 'toy-ko'" in other.stderr

    exported = keras_s2s("export", "--checkpoint-dir", checkpoints, "--output", export)
    assert exported.returncode == 0, exported.stderr[-3000:]
    translated = keras_s2s("translate", "--model", export, "March 3, 2021", "")
    assert translated.returncode == 0, translated.stderr[-3000:]
    assert len(translated.stdout.splitlines()) == 2
    assert re.fullmatch(r"[\d-]*", translated.stdout.splitlines()[0])

    again = keras_s2s("export", "--checkpoint-dir", checkpoints, "--output", export)
    assert again.returncode == 2 and "not empty" in again.stderr
    for version, dtype in (("1", "float32"), ("2", "bfloat16")):  # versions never overwrite
        named = keras_s2s("export", "--checkpoint-dir", checkpoints, "--name", "dates",
                          "--base-dir", tmp_path / "models", "--average-last", "2",
                          "--projection-dtype", dtype)
        assert named.returncode == 0, named.stderr[-3000:]
        assert (tmp_path / "models" / "dates" / version / "saved_model.pb").exists()
        stored = tf.train.load_checkpoint(str(tmp_path / "models" / "dates" / version / "variables"
                                              / "variables")).get_variable_to_dtype_map()
        assert (tf.bfloat16 in stored.values()) == (dtype == "bfloat16")
    compiled = keras_s2s("export", "--checkpoint-dir", checkpoints, "--name", "dates",
                         "--base-dir", tmp_path / "models", "--average-last", "2", "--jit-compile",
                         "--shards", "2")
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    versions = [tmp_path / "models" / "dates" / version for version in ("1", "3")]
    # Two sentences take the XLA path; five, two shards decoded at once.
    for texts in (["March 3, 2021", ""], ["March 3, 2021", "", "1 jan 1999", "12/12/2012", "?"]):
        outputs = [keras_s2s("translate", "--model", version, *texts).stdout for version in versions]
        assert outputs[0] == outputs[1] and len(outputs[1].splitlines()) == len(texts)


def test_train_on_a_pair_file_reports_malformed_lines(tmp_path):
    pairs = write_apple_pairs(tmp_path)
    result = keras_s2s("train", "--pairs", pairs, "--epochs", "1", "--checkpoint-dir",
                       tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "60 pairs from 61 lines, 1 malformed" in result.stdout
    assert "line 31" in result.stderr


def test_user_errors_exit_with_a_message_not_a_traceback(tmp_path):
    result = keras_s2s("translate", "--model", tmp_path / "missing", "hello")
    assert result.returncode == 2
    assert "No SavedModel" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_scores_a_gzipped_file_with_greedy_and_beam(dates_model, dates_export, tmp_path):
    import gzip
    import json

    _, _, test_pairs = dates_model
    with gzip.open(tmp_path / "source.txt.gz", "wt", encoding="utf-8") as file:
        file.writelines(source + "\n" for source, _ in test_pairs)
    (tmp_path / "reference.txt").write_text("".join(target + "\n" for _, target in test_pairs))
    results = {}
    for beam in (None, 4):
        extra = ["--beam-size", beam] if beam else []
        result = keras_s2s("evaluate", "--model", dates_export, "--source", tmp_path / "source.txt.gz",
                           "--reference", tmp_path / "reference.txt", "--hypotheses",
                           tmp_path / f"hypotheses_{beam}.txt", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        results[beam] = json.loads(result.stdout.strip().splitlines()[-1])
        assert set(results[beam]) == {"bleu", "chrf", "exact_match", "sentences", "seconds",
                                      "sentences_per_second"}
        assert results[beam]["sentences"] == len(test_pairs)
        written = (tmp_path / f"hypotheses_{beam}.txt").read_text().splitlines()
        assert len(written) == len(test_pairs)
        assert results[beam]["exact_match"] == pytest.approx(
            sum(h == t for h, (_, t) in zip(written, test_pairs)) / len(test_pairs), abs=1e-4)
    assert results[None]["bleu"] > 50 and results[4]["bleu"] > 50


def test_evaluate_refuses_misaligned_files(dates_export, tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.txt").write_text("one\n")
    result = keras_s2s("evaluate", "--model", dates_export, "--source", tmp_path / "a.txt",
                       "--reference", tmp_path / "b.txt")
    assert result.returncode == 2 and "has 2 lines" in result.stderr


def test_plot_draws_the_attention_of_one_sentence(dates_export, tmp_path):
    result = keras_s2s("plot", "--model", dates_export, "March 3, 2021", "--output",
                       tmp_path / "march.png", "--beam-size", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "march.png").stat().st_size > 5000
    assert re.fullmatch(r"[\d-]+", result.stdout.splitlines()[0])


def test_plot_html_writes_the_interactive_view_with_the_nbest_list(dates_export, tmp_path):
    result = keras_s2s("plot", "--model", dates_export, "March 3, 2021", "--html",
                       tmp_path / "march.html", "--beam-size", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    translation, wrote = result.stdout.splitlines()
    assert re.fullmatch(r"[\d-]+", translation) and wrote == f"Wrote {tmp_path / 'march.html'}"
    page = (tmp_path / "march.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'class="s2s-data">(.*?)</script>', page, re.S).group(1))
    assert data["title"] == f"March 3, 2021 → {translation}"
    assert len(data["hypotheses"]) == 3 and data["hypotheses"][0]["text"] == translation
    assert all(hypothesis["attention"] for hypothesis in data["hypotheses"])
    assert not (tmp_path / "attention.png").exists() and list(tmp_path.iterdir()) == [tmp_path / "march.html"]


def test_help_answers_without_importing_tensorflow():
    script = ("import sys\n"
              "import keras_s2s.cli\n"
              "for argv in (['--help'], ['train', '--help'], ['export', '--help']):\n"
              "    try:\n"
              "        keras_s2s.cli.main(argv)\n"
              "    except SystemExit:\n"
              "        pass\n"
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "False False"


def test_a_command_prints_none_of_tensorflows_log_lines(dates_export):
    # Without a log level of the user's own, the command chooses one and filters the lines
    # TensorFlow's libraries print while they load.
    environment = {key: value for key, value in ENV.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    installed = shutil.which("keras-s2s")
    command = [installed] if installed else [sys.executable, "-m", "keras_s2s"]
    result = subprocess.run(command + ["translate", "--model", dates_export, "March 3, 2021"],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"[\d-]+", result.stdout.strip())
    for marker in ("I0000", "W0000", "E0000", "cuInit", "oneDNN", "absl::InitializeLog"):
        assert marker not in result.stderr, result.stderr[-3000:]
