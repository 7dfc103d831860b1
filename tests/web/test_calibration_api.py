"""The calibration over HTTP on a running appliance (firmware/web/calibration_api.py): the
simulator's hidden calibration is recovered by a zero + 3 span calibration with its gas
switched while running, and every refusal says why and changes nothing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from tests.web.conftest import TOKEN, WebRig

#: the simulated cell's truth, ppm = c0 + c1 A + c2 A^2 (the analyzer's YAML says 50000 A)
TRUTH = [0.0, 42000.0, 90000.0]
SPANS = [500.0, 1000.0, 2000.0]


def fast_calibration(data: dict[str, Any]) -> None:
    data["scripts"] = {"worker_user": None}
    data["acquisition"]["simulator"]["calibration"] = TRUTH
    data["calibration"] = {"stability": {"window_s": 1.0, "min_samples": 6,
                                         "max_rsd_percent": 2.0, "abs_std": 0.001,
                                         "timeout_s": 20.0},
                           "interval_days": 30, "residual_tolerance_ppm": 10.0,
                           "residual_tolerance_percent": 1.0}


@pytest.fixture
def rig(make_rig: Any) -> WebRig:
    rig = make_rig(fast_calibration)
    rig.wait_for(lambda: rig.appliance.analyzer.frames > 5, what="frames")
    return rig


def post(rig: WebRig, path: str, body: Any = None) -> Any:
    return rig.post(path, body, token=TOKEN)


def measure(rig: WebRig, ppm: float) -> dict[str, Any]:
    """Fill the cell with ``ppm`` and measure the point until it is stable (or fails)."""
    assert post(rig, "/api/v1/simulator/gas", {"ppm": ppm}).status == 200
    answer = post(rig, "/api/v1/calibration/session/points",
                  {"concentration_ppm": ppm, "cylinder": f"CYL-{ppm:g}"})
    assert answer.status == 200, answer.body
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        session = rig.get("/api/v1/calibration/session").body
        if not session["measuring"]:
            return dict(session)
        time.sleep(0.1)
    raise AssertionError("point still measuring")


def test_zero_and_three_spans_recover_the_simulators_calibration(rig: WebRig) -> None:
    status = rig.get("/api/v1/calibration").body
    assert status["source"] == "yaml" and status["due"]["state"] == "due"
    assert post(rig, "/api/v1/calibration/session", {"operator": "Ada"}).status == 200
    for ppm in [0.0, *SPANS]:
        session = measure(rig, ppm)
        assert session["current"]["state"] == "stable", str(session["current"])
    fit = post(rig, "/api/v1/calibration/session/fit", {}).body
    assert fit["degree"] == 2  # a straight line misses the bend by more than 1 %
    answer = post(rig, "/api/v1/calibration/session/commit", {})
    assert answer.status == 200, answer.body
    record = answer.body["record"]
    coefficients = record["fit"]["coefficients"]
    lo, hi = record["fit"]["amplitude_range"]
    x = np.linspace(lo, hi, 200)[20:]  # the spans' range, away from the zero
    fitted = np.polynomial.polynomial.polyval(x, coefficients)
    truth = np.polynomial.polynomial.polyval(x, TRUTH)
    assert np.max(np.abs(fitted / truth - 1.0)) < 0.01
    assert [p["cylinder"] for p in record["points"]] == ["CYL-0", "CYL-500", "CYL-1000",
                                                        "CYL-2000"]
    assert len(record["fit"]["residuals_ppm"]) == 4 and record["fit"]["r_squared"] > 0.999
    assert record["operator"] == "Ada" and record["active"] is True

    # applied live: the analyzer now reads the cylinder right (the YAML said 50000 A)
    def reads(ppm: float) -> bool:
        result = rig.get("/api/v1/results").body["results"]["concentration"]
        return abs(result["concentration_ppm"] - ppm) < 0.02 * ppm
    assert post(rig, "/api/v1/simulator/gas", {"ppm": 1500.0}).status == 200
    rig.wait_for(lambda: reads(1500.0), timeout=10, what="1500 ppm read with the record")
    status = rig.get("/api/v1/calibration").body
    assert status["source"] == "record" and status["due"]["state"] == "ok"
    assert status["active_record"]["id"] == record["id"]

    # beyond the calibrated range (2000 ppm + 10 %): flagged on the result
    post(rig, "/api/v1/simulator/gas", {"ppm": 3000.0})
    rig.wait_for(lambda: "outside_calibrated_range" in rig.get("/api/v1/results").body[
        "results"]["concentration"]["flags"], timeout=10, what="the range flag")

    # rollback goes back to the YAML coefficients, live
    answer = post(rig, "/api/v1/calibration/rollback", {"operator": "Ada"})
    assert answer.status == 200 and answer.body["active"] is None
    assert answer.body["calibration"]["coefficients"] == [0.0, 50000.0]
    listing = rig.get("/api/v1/calibration/records").body
    assert [r["id"] for r in listing["records"]] == [record["id"]]
    assert [h["action"] for h in listing["history"]] == ["calibration", "rollback"]
    assert post(rig, f"/api/v1/calibration/records/{record['id']}/activate", {}).status == 200
    assert rig.get(f"/api/v1/calibration/records/{record['id']}").body["active"] is True


def test_refusals_say_why_and_change_nothing(rig: WebRig) -> None:
    before = rig.get("/api/v1/calibration").body
    early = post(rig, "/api/v1/calibration/session/points", {"concentration_ppm": 0})
    assert early.status == 422 and "no calibration session" in early.body["error"]["message"]
    assert post(rig, "/api/v1/calibration/session", {"operator": "Bo"}).status == 200
    again = post(rig, "/api/v1/calibration/session", {"operator": "Bo"})
    assert again.status == 409 and "in progress" in again.body["error"]["message"]
    below = post(rig, "/api/v1/calibration/session/points", {"concentration_ppm": -5})
    assert below.status == 422 and "below zero" in below.body["error"]["message"]
    measure(rig, 0.0)
    duplicate = post(rig, "/api/v1/calibration/session/points", {"concentration_ppm": 0})
    assert duplicate.status == 422 and "measured already" in duplicate.body["error"]["message"]
    few = post(rig, "/api/v1/calibration/session/commit", {"degree": 2})
    assert few.status == 422 and "needs at least 3 points; 1 measured" in \
        few.body["error"]["message"]
    assert rig.get("/api/v1/calibration/records").body["records"] == []
    assert post(rig, "/api/v1/calibration/session/abort").status == 200
    after = rig.get("/api/v1/calibration").body
    assert after["coefficients"] == before["coefficients"] and after["session"] is None
    bad_gas = post(rig, "/api/v1/simulator/gas", {"ppm": -1})
    assert bad_gas.status == 422
    missing = post(rig, "/api/v1/calibration/records/nope/activate", {})
    assert missing.status == 404 and "no calibration record 'nope'" in \
        missing.body["error"]["message"]
    nothing = post(rig, "/api/v1/calibration/rollback", {})
    assert nothing.status == 409 and "nothing to roll back" in nothing.body["error"]["message"]


def test_an_unstable_point_times_out_and_is_not_kept(make_rig: Any) -> None:
    def unstable(data: dict[str, Any]) -> None:
        fast_calibration(data)
        data["calibration"]["stability"].update({"max_rsd_percent": 0.01, "abs_std": 0.0,
                                                 "timeout_s": 2.0})
    rig = make_rig(unstable)
    assert post(rig, "/api/v1/calibration/session", {"operator": "Cy"}).status == 200
    session = measure(rig, 1000.0)
    assert session["current"]["state"] == "failed"
    assert "not stable within 2 s" in session["current"]["error"]
    assert session["points"] == []


def test_zero_check_records_the_offset_without_refitting(rig: WebRig) -> None:
    before = rig.get("/api/v1/calibration").body["coefficients"]
    assert post(rig, "/api/v1/calibration/session",
                {"operator": "Di", "mode": "zero_check"}).status == 200
    span = post(rig, "/api/v1/calibration/session/points", {"concentration_ppm": 100})
    assert span.status == 422 and "zero gas only" in span.body["error"]["message"]
    measure(rig, 0.0)
    answer = post(rig, "/api/v1/calibration/session/commit", {})
    assert answer.status == 200, answer.body
    check = answer.body["zero_check"]
    assert abs(check["offset_ppm"]) < 20.0 and check["record_id"] is None
    status = rig.get("/api/v1/calibration").body
    assert status["coefficients"] == before
    assert status["last_zero_check"]["id"] == check["id"]


def test_pressure_compensation_is_applied_live(rig: WebRig) -> None:
    answer = post(rig, "/api/v1/calibration/pressure", {"hpa": 900.0})
    assert answer.status == 200 and answer.body["pressure_hpa"] == 900.0
    bad = post(rig, "/api/v1/calibration/pressure", {"hpa": -3})
    assert bad.status == 422
