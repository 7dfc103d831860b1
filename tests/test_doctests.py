"""The examples written in the docstrings of every module of ``firmware/`` run as doctests.

Every module is imported, including the ones run as processes of their own (the PythonAction
worker, the web benchmark's load process): importing a module must start nothing.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def module_names() -> list[str]:
    names = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        parts = list(path.relative_to(FIRMWARE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failures: list[str] = []
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
