"""Every tutorial notebook runs from top to bottom in SMOKE mode (small data, one epoch) and
shows something: at least one image (a plot) and at least one printed result.

The notebooks are executed with nbclient in a kernel of this Python, with `tutorials/` as the
working directory, as a reader would run them.
"""

import os
import pathlib
import sys

import pytest

pytestmark = pytest.mark.notebooks

nbformat = pytest.importorskip("nbformat", reason="the [test] extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the [test] extra installs nbclient")
pytest.importorskip("ipykernel", reason="the [test] extra installs ipykernel")

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
# Each notebook takes well under a minute in SMOKE mode; the timeout is per cell.
CELL_TIMEOUT_SECONDS = 240


def test_the_nine_tutorials_are_there():
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08",
                                                     "09"]


def _outputs(notebook, output_type):
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") in output_type]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_mode(path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None  # judge this run, not the committed one
    # The kernel inherits this environment: SMOKE shrinks the run, the Python is this one.
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    errors = _outputs(notebook, {"error"})
    assert not errors, errors
    text = "".join(output.get("text", "") for output in _outputs(notebook, {"stream"}))
    assert "SMOKE=True" in text, "the notebook must read the SMOKE switch and say so"
    images = [output for output in _outputs(notebook, {"display_data", "execute_result"})
              if "image/png" in output.get("data", {})]
    assert images, f"{path.name} showed no plot"
