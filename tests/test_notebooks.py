"""The tutorials: every figure their prose quotes is shown above it, every English notebook has
an up-to-date Korean edition with the same code, and both run from top to bottom in SMOKE mode
(small data, one epoch) and show something: at least one plot and one printed result.

The notebooks are executed with nbclient in a kernel of this Python, with `tutorials/` as the
working directory, as a reader would run them. The prose checks only read the committed files,
so they run in the quick loop.
"""

import importlib.util
import json
import os
import pathlib
import re
import sys

import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"
_spec = importlib.util.spec_from_file_location("korean_edition", TUTORIALS / "korean_edition.py")
korean_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(korean_edition)

ENGLISH = korean_edition.english_notebooks()
KOREAN = [korean_edition.korean_path(path) for path in ENGLISH]
# Each notebook takes well under a minute in SMOKE mode; the timeout is per cell.
CELL_TIMEOUT_SECONDS = 240

# A measured-looking figure: a number with a unit of time, speed, size, share or score, in
# English or Korean prose (초 seconds, 분 minutes, 배 times).
UNIT = (r"(?:%|\s?(?:ms|µs|s|min|×|x|sentences/s|tokens/s|MB|MiB|GB|BLEU|chrF|points?)"
        r"|\s?(?:초|분|배|퍼센트|포인트))")
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)" + UNIT + r"(?![A-Za-z])")
# Inline code, link targets and LaTeX hold code and equations, not measurements; nor does
# the line that tells how long a notebook takes to read.
NOT_MEASURED = re.compile(r"`[^`]*`|\]\([^)]*\)|\$\$.*?\$\$|\$[^$]*\$"
                          r"|^.*(?:Reading time|읽는 데|읽는 시간).*$", re.S | re.M)

# Figures the prose may quote without an output showing them, each with its source. Keyed by
# the English notebook's name; a Korean edition has the same exceptions.
CITED = {
    "08_export_and_serve": {
        # benchmarks/README.md, note 6 (and serving/README.md, Threads): two shards against one
        # loop at batch 64.
        "1.5배", "1.5 times",
        # benchmarks/README.md, note 5 (and serving/README.md): --jit-compile's batch-1 latency.
        "0.70배", "0.70 times", "0.48배", "0.48 times"},
    "09_from_rnn_attention_to_the_transformer": {
        # saved_models/README.md, "Multi30k de→en with the Transformer": the shipped model's
        # training time, an earlier wider one's training time and export size, and the size
        # a shipped model may take.
        "53 s", "53초", "63 min", "63분", "33 MB", "25 MB"},
}


def _outputs(notebook, output_type):
    return [output for cell in notebook["cells"] if cell["cell_type"] == "code"
            for output in cell.get("outputs", []) if output.get("output_type") in output_type]


def _shown_numbers(notebook):
    """Every number a code cell states or prints (text, HTML and markdown outputs)."""
    texts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        texts.append(korean_edition.cell_text(cell))  # a constant or argument is not measured
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                texts.append("".join(output.get("data", {}).get(mime, "")))
    return {number.replace(",", "") for number in re.findall(r"\d[\d,]*(?:\.\d+)?", "\n".join(texts))}


def _is_shown(number, shown):
    """True if `number` is shown, or is a shown figure rounded (98.5 for 98.47)."""
    if number in shown:
        return True
    digits = len(number.split(".")[1]) if "." in number else 0
    return any(re.fullmatch(r"\d+(?:\.\d+)?", value) and round(float(value), digits) == float(number)
               for value in shown)


def unexplained_figures(path):
    """(cell index, figure) for each figure in the prose that no output or code shows and
    that `CITED` does not list."""
    notebook = korean_edition.read_notebook(path)
    shown = _shown_numbers(notebook)
    cited = CITED.get(path.name.split(".")[0], set())
    missing = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = NOT_MEASURED.sub(" ", korean_edition.cell_text(cell))
        for match in FIGURE.finditer(text):
            number = match.group(1).replace(",", "")
            if (re.fullmatch(r"(19|20)\d\d", number) or _is_shown(number, shown)
                    or match.group(0).strip() in cited):
                continue
            missing.append((index, match.group(0).strip()))
    return missing


def test_the_eleven_tutorials_are_there():
    assert [path.name[:2] for path in ENGLISH] == [f"{number:02d}" for number in range(1, 12)]


def test_the_figure_check_finds_a_stale_figure(tmp_path):
    cells = [{"cell_type": "code", "id": "a", "metadata": {}, "source": "seconds = 203.6",
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "took 173.1 s\n"}]},
             {"cell_type": "markdown", "id": "b", "metadata": {},
              "source": "It took 173 s, then 48 s; the constant is 203.6 s; `99 s` is code; 48초."}]
    path = tmp_path / "01_example.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}}), encoding="utf-8")
    assert unexplained_figures(path) == [(1, "48 s"), (1, "48초")]


@pytest.mark.parametrize("path", ENGLISH + KOREAN, ids=lambda path: path.name)
def test_every_figure_in_the_prose_is_shown(path):
    if not path.exists():
        pytest.fail(f"{path.name} is missing: run python tutorials/korean_edition.py")
    assert unexplained_figures(path) == []


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.stem)
def test_the_korean_edition_is_up_to_date(path):
    """Same code cells and outputs, every markdown cell translated from today's English."""
    assert korean_edition.problems(path) == []
    korean = korean_edition.read_notebook(korean_edition.korean_path(path))
    assert korean == korean_edition.build(path), (
        f"{korean_edition.korean_path(path).name} is not built from today's sources: "
        "run python tutorials/korean_edition.py")
    english = korean_edition.read_notebook(path)
    code = [[(cell["id"], korean_edition.cell_text(cell)) for cell in notebook["cells"]
             if cell["cell_type"] == "code"] for notebook in (english, korean)]
    assert code[0] == code[1]
    prose = [korean_edition.cell_text(cell) for cell in korean["cells"] if cell["cell_type"] == "markdown"]
    assert all(re.search(r"[가-힣]", text) for text in prose), "a markdown cell has no Korean"


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.stem)
def test_no_output_shows_a_log_line_or_a_machine_path(path):
    notebook = korean_edition.read_notebook(path)
    texts = ["".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
             for output in _outputs(notebook, {"stream", "execute_result", "display_data"})]
    for text in texts:
        assert not re.search(r"LOG\(INFO\)|^[IWE]\d{4} \d\d:\d\d|^WARNING:absl", text, re.M), text
        assert not re.search(r"/(?:work|root|home|tmp)/", text), text


@pytest.mark.notebooks
@pytest.mark.parametrize("path", ENGLISH + KOREAN, ids=lambda path: path.name)
def test_notebook_runs_in_smoke_mode(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the [test] extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the [test] extra installs nbclient")
    pytest.importorskip("ipykernel", reason="the [test] extra installs ipykernel")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None  # judge this run, not the committed one
    # The kernel inherits this environment: SMOKE shrinks the run, the Python is this one.
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the committed outputs were made
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    executed = json.loads(nbformat.writes(notebook))
    assert not _outputs(executed, {"error"})
    text = "".join("".join(output.get("text", "")) for output in _outputs(executed, {"stream"}))
    assert "SMOKE=True" in text, "the notebook must read the SMOKE switch and say so"
    assert not re.search(r"LOG\(INFO\)", text), "a library log line reached the output"
    images = [output for output in _outputs(executed, {"display_data", "execute_result"})
              if "image/png" in output.get("data", {})]
    assert images, f"{path.name} showed no plot"


def _headings(path):
    notebook = korean_edition.read_notebook(path)
    return {line.lstrip("#").strip() for cell in notebook["cells"] if cell["cell_type"] == "markdown"
            for line in korean_edition.cell_text(cell).splitlines() if line.startswith("#")}


def test_the_korean_glossary_points_at_sections_that_exist():
    """README.ko.md's glossary names, for each term, the notebook sections that teach it."""
    readme = (TUTORIALS.parent / "README.ko.md").read_text(encoding="utf-8")
    glossary = readme[readme.index("## 용어집"):]
    rows = [line for line in glossary.splitlines() if line.startswith("| ") and "](tutorials/" in line]
    assert len(rows) >= 40
    for row in rows:
        places = row.rstrip(" |").split(" | ")[-1]
        for link, sections in re.findall(r"\[\d+\]\((tutorials/[^)]+)\) ?([^\[]*)", places):
            path = TUTORIALS.parent / link
            assert path.exists(), row
            sections = sections.strip().rstrip(",").strip()
            if sections:
                headings = _headings(path)
                parts = [sections] if sections in headings else [part.strip() for part in sections.split(",")]
                assert all(part in headings for part in parts), (row, parts)
