"""The decoding benchmarks run end to end on a small export and report what they measured."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from keras_s2s.metrics import corpus_bleu, corpus_chrf
from keras_s2s.training import load_trained_model

from .helpers import ENV

pytestmark = pytest.mark.subprocess  # each benchmark script runs in its own process

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script, *arguments):
    result = subprocess.run([sys.executable, script, *map(str, arguments)], cwd=BENCHMARKS,
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def write_sources(dates_model, tmp_path):
    path = tmp_path / "sources.txt"
    path.write_text("\n".join(source for source, _ in dates_model[2][:16]) + "\n", encoding="utf-8")
    return path


def test_decoding_speed_reports_every_figure(dates_model, dates_export, tmp_path):
    report_path = tmp_path / "report.json"
    run_benchmark("decoding_speed.py", "--model", dates_export,
                  "--source", write_sources(dates_model, tmp_path), "--sentences", 16,
                  "--batch-sizes", "1,4", "--beam-sizes", "2", "--intra-op-threads", 1,
                  "--output", report_path)
    report = json.loads(report_path.read_text())
    # What it says of the export is what the export is: its size on disk, the tokens its
    # greedy search writes for these sentences.
    export_bytes = sum(path.stat().st_size for path in Path(dates_export).rglob("*") if path.is_file())
    assert report["intra_op_threads"] == 1 and report["saved_model_bytes"] == export_bytes
    sources = [source for source, _ in dates_model[2][:16]]
    lengths = dates_model[0].translator().greedy(tf.constant(sources))["length"].numpy()
    floor = report["matmul floor, greedy"]
    assert floor["mean output tokens"] == pytest.approx(lengths.mean(), abs=0.005)
    # The batch-1 floor is the sum of its parts: a decoder step per output token, an
    # encoder position per source token.
    assert floor["batch 1 floor ms"] == pytest.approx(
        floor["mean output tokens"] * floor["decoder step ms, 1 rows"]
        + floor["mean source tokens"] * floor["encoder position ms, 1 rows"], rel=0.01, abs=0.01)
    for decoder in ("greedy", "beam 2"):
        figures = report["decoders"][decoder]
        assert figures["batch 1"] > 0 and figures["batch 4"] > 0
        assert 0 < figures["batch 1 p50 ms"] <= figures["batch 1 p99 ms"]


def test_ab_decoding_times_two_exports_in_turns(dates_model, dates_export, tmp_path):
    sharded = dates_model[0].export(str(tmp_path / "sharded"), shards=2)
    output = run_benchmark("ab_decoding.py", "--before", dates_export, "--after", sharded,
                           "--source", write_sources(dates_model, tmp_path), "--sentences", 16,
                           "--batch-sizes", "1,8", "--rounds", 1, "--beam-size", 2)
    number = r"(\d+\.\d+)"
    for batch, unit in (("1", "median ms"), ("8", "sentences/s")):
        line = re.search(rf"beam 2 batch {batch} {unit}: before {number}, after {number} "
                         rf"\(after/before {number}\); cores busy: before {number}, after {number}",
                         output)
        assert line, output
        # Two shards translate as one loop does.
        assert f"beam 2 batch {batch}: 16 of 16 translations identical" in output
        before, after, ratio = (float(value) for value in line.groups()[:3])
        assert before > 0 and after > 0 and abs(ratio - after / before) < 0.01


def test_op_trace_names_the_loops_and_the_costliest_ops(dates_model, dates_export, tmp_path):
    output = run_benchmark("op_trace.py", "--model", dates_export,
                           "--source", write_sources(dates_model, tmp_path), "--batch-size", 8,
                           "--top", 5)
    assert re.search(r"greedy, batch 8: \d+ ops, [\d.]+ ms of op time, \d+ decoding steps", output)
    for loop in ("decoding loop", "encoder loop", "outside loops"):
        assert re.search(rf"^{loop} +[\d.]+ +[\d.]+% +\d+$", output, re.MULTILINE), output
    ranked = output.split("runs\n", 1)[1].strip().splitlines()
    assert len(ranked) == 5
    by_type = output.split("decoding loop by op type", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(by_type) == 5 and any("MatMul" in row for row in by_type), output


def test_op_trace_finds_the_transformers_decoding_loop(transformer_dates_model,
                                                       transformer_dates_export, tmp_path):
    output = run_benchmark("op_trace.py", "--model", transformer_dates_export,
                           "--source", write_sources(transformer_dates_model, tmp_path),
                           "--batch-size", 8, "--top", 5)
    assert re.search(r"^decoding loop +[\d.]+ +[\d.]+% +\d+$", output, re.MULTILINE), output
    assert re.search(r"^decoding loop: [\d.]+ ops a step$", output, re.MULTILINE), output


def test_op_choices_times_both_forms_of_every_pair(tmp_path):
    report_path = tmp_path / "report.json"
    run_benchmark("op_choices.py", "--repeats", 5, "--rounds", 2, "--output", report_path)
    results = json.loads(report_path.read_text())["results"]
    assert len(results) == 8  # four pairs, two forms each
    for figures in results.values():
        assert 0 < figures["min_us"] <= figures["median_us"] <= figures["max_us"]


def test_decoding_choices_scores_each_average_beam_and_penalty(tiny_runs, tmp_path):
    pairs = tiny_runs["pairs"][:12]
    sources, references = [source for source, _ in pairs], [target for _, target in pairs]
    source_path, reference_path = tmp_path / "source.txt", tmp_path / "reference.txt"
    source_path.write_text("".join(f"{line}\n" for line in sources), encoding="utf-8")
    reference_path.write_text("".join(f"{line}\n" for line in references), encoding="utf-8")
    report_path = tmp_path / "choices.json"
    run_benchmark("decoding_choices.py", "--checkpoint-dir", tiny_runs[2], "--source", source_path,
                  "--reference", reference_path, "--average-last", "1,2", "--beam-sizes", "1,2",
                  "--length-penalties", "0.6,1.0", "--output", report_path)
    rows = json.loads(report_path.read_text())["rows"]
    assert [(row["average_last"], row["length_penalty"], row["beam_size"]) for row in rows] == [
        (average, alpha, beam) for average in (1, 2) for alpha in (0.6, 1.0) for beam in (1, 2)]
    # Each greedy row scores what the run's model translates (the newest checkpoint, or
    # the mean of two); the length penalty only ranks beams, so it cannot change greedy.
    for average_last in (1, 2):
        model = load_trained_model(str(tiny_runs[2]), average_last)
        hypotheses = model.translate(sources)
        expected = (round(corpus_bleu(hypotheses, references), 2),
                    round(corpus_chrf(hypotheses, references), 2))
        greedy = [(row["bleu"], row["chrf"]) for row in rows
                  if row["average_last"] == average_last and row["beam_size"] == 1]
        assert greedy == [expected, expected] and expected[1] > 0


@pytest.mark.slow  # three trainings of the dates model: 45 s
def test_training_trace_and_ab_training_report_what_they_measured(tmp_path):
    trace_path, ab_path = tmp_path / "trace.json", tmp_path / "ab.json"
    run_benchmark("training_trace.py", "--preset", "dates", "--steps", 6, "--output", trace_path)
    trace = json.loads(trace_path.read_text())
    by_type = trace["by_type"]
    # The op time adds up, and the matmuls' share is what the matmul rows say it is.
    assert sum(row["share"] for row in by_type.values()) == pytest.approx(1.0, abs=0.01)
    matmul_share = sum(row["share"] for op_type, row in by_type.items() if "MatMul" in op_type)
    assert trace["matmul_share_of_op_time"] == pytest.approx(matmul_share, abs=0.01)
    assert 0 < trace["matmul_share_of_op_time"] < 1 and trace["steps"] == 6
    for compare in ("loss", "gradient"):
        run_benchmark("ab_training.py", "--compare", compare, "--preset", "dates", "--steps", 4,
                      "--rounds", 2, "--output", ab_path)
        report = json.loads(ab_path.read_text())
        (ms_a, ms_b) = report["median_step_ms"].values()
        assert report["b_over_a_time"] == pytest.approx(ms_b / ms_a, rel=0.01)
        # Both steps train one model in turns: every round's loss is finite and the last is lower.
        for losses in report["mean_loss_each_round"].values():
            assert len(losses) == 2 and losses[-1] < losses[0]


@pytest.mark.slow
def test_soak_serves_every_signature_from_8_threads_for_2_minutes(dates_model, dates_export,
                                                                 tmp_path):
    report_path = tmp_path / "soak.json"
    run_benchmark("soak.py", "--model", dates_export, "--source",
                  write_sources(dates_model, tmp_path), "--minutes", 2,
                  "--interval-seconds", 20, "--output", report_path)
    report = json.loads(report_path.read_text())
    assert report["threads"] == 8 and len(report["intervals"]) == 6
    # Hostile inputs included, every request got an answer, and the answer it got alone.
    assert report["errors"] == 0 and report["wrong_answers"] == 0
    for row in report["intervals"]:
        assert row["requests"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["resident_mb"] > 0
    assert report["requests"] == sum(row["requests"] for row in report["intervals"])
    # Two minutes cannot show a slow leak (the 30-minute runs in benchmarks/README.md do),
    # but they catch one that grows with every request.
    assert abs(report["resident_growth_percent"]) < 20


def test_marian_agreement_reports_every_variant(tmp_path):
    report_path = tmp_path / "agreement.json"
    run_benchmark("marian_agreement.py", "--sentences", 4, "--seeds", 1, "--output", report_path)
    rows = json.loads(report_path.read_text())["rows"]
    assert [(row["norm"], row["activation"]) for row in rows] == [
        (norm, activation) for norm in ("post-norm", "pre-norm")
        for activation in ("swish", "relu", "gelu")]
    for row in rows:
        assert row["identical_greedy"] == row["sentences"] == 4
        assert 0 <= row["max_log_prob_difference"] < 1e-4 and row["tokens_scored"] >= 4


def test_data_pipeline_measures_both_paths_at_each_size(tmp_path):
    import gzip

    from keras_s2s import tasks

    pairs, _ = tasks.load_task("dates", 2000, 10, seed=5)
    (tmp_path / "anki").mkdir()
    with gzip.open(tmp_path / "anki" / "spa-eng.txt.gz", "wt", encoding="utf-8") as file:
        file.writelines(f"{target}\t{source}\tattribution\n" for source, target in pairs)
    report_path = tmp_path / "report.json"
    run_benchmark("data_pipeline.py", "--data-dir", tmp_path, "--sizes", "2000,5000", "--batches", 5,
                  "--train-batches", 4, "--output", report_path)
    report = json.loads(report_path.read_text())
    assert set(report["sizes"]) == {"2000", "5000"}
    for size, figures in report["sizes"].items():
        for path in ("memory", "stream"):
            assert 0 < figures[path]["first batch s"] and figures[path]["pipeline batches/s"] > 0
            assert figures[path]["peak RSS MB"] >= figures[path]["growth MB"] > 0
    assert report["sizes"]["2000"]["train"]["train batches/s"] > 0
