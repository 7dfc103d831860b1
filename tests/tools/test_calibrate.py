"""`pafw calibrate` (firmware/tools/calibrate.py) against a running appliance: a scripted
zero + 3 span calibration rehearsed on the simulator, the record commands, and refusals
printed without a traceback."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from firmware.cli import main
from tests.web.conftest import TOKEN, WebRig, make_rig  # noqa: F401  (the fixture)
from tests.web.test_calibration_api import TRUTH, fast_calibration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig(make_rig: Any) -> WebRig:  # noqa: F811
    rig = make_rig(fast_calibration)
    rig.wait_for(lambda: rig.appliance.analyzer.frames > 5, what="frames")
    return rig


def pafw(rig: WebRig, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    original = sys.stdout
    sys.stdout = out
    try:
        code = main(["calibrate", *args, "--url", f"http://127.0.0.1:{rig.port}",
                     "--token", TOKEN])
    finally:
        sys.stdout = original
    return code, out.getvalue()


def test_a_scripted_calibration_then_list_show_rollback_activate(rig: WebRig) -> None:
    code, text = pafw(rig, "run", "--operator", "Eve", "--point", "0", "--point", "500",
                      "--point", "1000", "--point", "2000", "--cylinder", "Z1",
                      "--set-simulator-gas")
    assert code == 0, text
    assert "calibration started by Eve (gas CO2)" in text
    assert "fit: degree 2, R² " in text, text
    assert "2000 ppm stable after" in text
    record_id = text.split("calibration ")[-1].split()[0]
    assert text.rstrip().endswith(f"calibration {record_id} stored and active")
    manager = rig.appliance.calibration
    assert manager is not None and manager.node.active.record_id == record_id
    c1 = manager.node.active.calculator.polynomial.coefficients[1]
    assert c1 == pytest.approx(TRUTH[1], rel=0.05)

    code, text = pafw(rig, "list")
    assert code == 0 and text.startswith(f"* {record_id}") and "Eve" in text
    code, text = pafw(rig, "show", record_id)
    assert code == 0 and "cylinder Z1" in text and "cylinder -" in text
    code, text = pafw(rig, "rollback")
    assert code == 0 and text == "active now: the YAML coefficients\n"
    assert manager.node.active.record_id is None
    code, text = pafw(rig, "activate", record_id)
    assert code == 0 and manager.node.active.record_id == record_id
    code, text = pafw(rig, "status")
    assert code == 0 and f"record {record_id}" in text and "due: ok" in text


def test_zero_check_and_simulator_commands(rig: WebRig) -> None:
    code, text = pafw(rig, "zero-check", "--operator", "Eve", "--set-simulator-gas")
    assert code == 0, text
    assert "with calibration from the YAML; nothing refitted" in text
    code, text = pafw(rig, "gas", "profile")
    assert code == 0 and text == "simulator gas: profile\n"
    code, text = pafw(rig, "pressure", "1000")
    assert code == 0 and text == "pressure: 1000.0 hPa\n"


def test_refusals_are_one_line_without_traceback(rig: WebRig) -> None:
    base = [sys.executable, "-m", "firmware.cli", "calibrate"]
    where = ["--url", f"http://127.0.0.1:{rig.port}", "--token", TOKEN]
    done = subprocess.run([*base, "activate", "nope", *where], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert done.stderr == ("pafw: error: refused (404): no calibration record 'nope' (see "
                           "`pafw calibrate list`)\n")
    done = subprocess.run([*base, "run", "--point", "-5", "--operator", "X", *where],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "below zero" in done.stderr and "session aborted: nothing was stored" in done.stdout
    assert rig.get("/api/v1/calibration").body["session"] is None
    done = subprocess.run([*base, "list", "--url", "http://127.0.0.1:9", "--token", "x"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and "cannot reach the appliance" in done.stderr


def test_a_hook_switches_the_gas_before_each_point_and_a_failing_hook_stops(
        rig: WebRig) -> None:
    switch = (f"{sys.executable} -m firmware.cli calibrate gas {{ppm}} --url "
              f"http://127.0.0.1:{rig.port} --token {TOKEN}")
    code, text = pafw(rig, "run", "--operator", "Hal", "--point", "0", "--point", "1000",
                      "--point", "2000", "--before-point", switch)
    assert code == 0, text
    assert text.count("ran ") == 3 and "calibrate gas 2000 --url" in text
    assert "stored and active" in text
    assert getattr(rig.appliance.analyzer.source, "gas_ppm", None) == 2000.0
    records = rig.get("/api/v1/calibration/records").body["records"]
    code, text = pafw(rig, "run", "--operator", "Hal", "--point", "0",
                      "--before-point", "false {ppm}")
    assert code == 1 and "session aborted: nothing was stored" in text
    assert rig.get("/api/v1/calibration/records").body["records"] == records
