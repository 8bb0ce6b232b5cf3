"""Every `>>>` example in the package's docstrings runs and shows what it says (doctest).

The modules are found by reading their text for `>>>`, so collecting these tests imports
nothing; each test imports one module and runs its examples in that module's namespace (the
`tf` an example uses is the module's own import).
"""

import doctest
import importlib
import io
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_s2s"
MODULES = sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                 for path in PACKAGE.rglob("*.py") if ">>>" in path.read_text(encoding="utf-8"))


def test_the_package_has_docstring_examples():
    assert "keras_s2s.attention" in MODULES and "keras_s2s.decoder" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    # A `>>>` outside a docstring (a comment, a string) would never run: say so.
    assert sum(len(test.examples) for test in tests), f"{name} has '>>>' but no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
