"""The Allan-Werle plot (firmware/tools/allan_plot.py): a PNG is drawn from a report (log-log,
the white-noise line, the optimum); without matplotlib `pafw allan --plot` says how to get it
instead of a traceback; and nothing `pafw run` imports loads matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.errors import PafwError
from firmware.tools.allan import AllanReport, ConcentrationSeries, allan_report
from firmware.tools.allan_plot import plot_allan

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report() -> AllanReport:
    values = np.random.default_rng(1).normal(1000.0, 2.0, 3000)
    return allan_report(ConcentrationSeries("concentration", 0.085, values, "test"))


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "allan.png"
    plot_allan(report(), path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (840, 576)  # 7 x 4.8 in at 120 dpi


def test_an_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PafwError, match="cannot write the plot"):
        plot_allan(report(), tmp_path / "missing" / "allan.png")


def test_without_matplotlib_the_error_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(PafwError, match=r"pip install 'pafw\[plot\]'"):
        plot_allan(report(), tmp_path / "allan.png")
    assert not (tmp_path / "allan.png").exists()


def test_the_appliance_never_imports_matplotlib() -> None:
    code = ("import sys, firmware.cli, firmware.service.run, firmware.tools.allan, "
            "firmware.web.server; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
