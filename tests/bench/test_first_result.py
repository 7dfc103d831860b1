"""The first-result probe of `pafw bench` (firmware/bench/first_result.py): it times a fresh
process to its first concentration, and imports only what `pafw run` needs for one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from firmware.bench.first_result import first_result_seconds
from tests.paths import REPO


def test_the_probe_loads_no_scipy_and_reaches_a_result(state_env: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in state_env.items():
        monkeypatch.setenv(name, value)
    # the probe's own imports: the analyzer, not the benchmark's scipy reference
    imports = subprocess.run(
        [sys.executable, "-c", "import sys, firmware.bench.first_result; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"],
        capture_output=True, text=True, check=True, cwd=REPO, env={**os.environ})
    assert imports.stdout.strip() == "[]"
    seconds = first_result_seconds(None, runs=2)
    assert 0.0 < seconds < 120.0
