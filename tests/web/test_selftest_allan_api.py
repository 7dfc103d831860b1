"""The self-test and the live Allan-Werle deviation over HTTP, on a running appliance: POST
/api/v1/selftest runs a test on the live source and answers its report (a read: loopback
needs no token), GET shows the newest and the counters, and a failed check is a flag on the
results; GET /api/v1/allan computes the deviation from the trend (restored from the state
dir, as after a restart), every answer validated against the served OpenAPI description."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.app.trend_store import ROW
from tests.web.conftest import WebRig
from tests.web.test_api import OpenApi


def write_trend(state_dir: Path, seconds: int, sigma: float = 2.0) -> None:
    """A saved one-second concentration trend of white noise, ending now."""
    now = int(time.time())
    centres = np.arange(now - seconds, now) + 0.5
    means = np.random.default_rng(2).normal(1000.0, sigma, seconds)
    rows = np.column_stack([centres, means, means - 1.0, means + 1.0])
    path = state_dir / "trend" / "concentration_ppm" / "concentration.f64"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.ascontiguousarray(rows, dtype=ROW).tobytes())


@pytest.fixture
def rig(make_rig: Any, state_env: dict[str, str]) -> WebRig:
    write_trend(Path(state_env["PAFW_STATE_DIR"]), 1800)

    def change(data: dict[str, Any]) -> None:
        data["selftest"] = {"duration_s": 1.0, "resonance_hz": 2100.0, "band_hz": 600.0}
        # the live seconds join the saved trend at its level (the default profile steps
        # between 400 and 2500 ppm: one such jump would dominate the deviation at 1 s)
        data["acquisition"]["simulator"]["concentration"] = {"profile": "constant",
                                                             "value_ppm": 1000.0}

    rig = make_rig(change)
    rig.wait_for(lambda: rig.appliance.selftest.last is not None, what="the test at start")
    return rig


@pytest.fixture
def openapi(rig: WebRig) -> OpenApi:
    return OpenApi(rig.get("/api/v1/openapi.json").body)


def test_the_self_test_runs_on_demand_and_flags_results(rig: WebRig,
                                                        openapi: OpenApi) -> None:
    answer = rig.post("/api/v1/selftest")  # no token: loopback reads are open
    assert answer.status == 200, answer.body
    openapi.validate_response("POST", "/api/v1/selftest", 200, answer.body)
    assert answer.body["trigger"] == "api"
    assert answer.body["failed"] == ["resonance_frequency"]
    status = rig.get("/api/v1/selftest")
    openapi.validate_response("GET", "/api/v1/selftest", 200, status.body)
    assert status.body["runs"] == 2 and status.body["failures"] == 2
    assert status.body["last"]["trigger"] == "api" and status.body["running"] is None
    results = rig.get("/api/v1/results").body["results"]
    assert results["concentration"]["flags"] == ["resonance_frequency"]


def test_the_allan_deviation_of_the_live_trend(rig: WebRig, openapi: OpenApi) -> None:
    answer = rig.get("/api/v1/allan?seconds=3600")
    assert answer.status == 200, answer.body
    openapi.validate_response("GET", "/api/v1/allan", 200, answer.body)
    body = answer.body
    assert body["node"] == "concentration" and body["unit"] == "ppm"
    assert body["values"] >= 1800 and body["tau_s"][0] == 1.0
    # the saved trend is white noise of 2 ppm; the live seconds since start join it
    assert body["sigma"][0] == pytest.approx(2.0, rel=0.15)
    assert body["lod_1s"] == pytest.approx(3 * body["sigma_1s"])
    assert len(body["sigma"]) == len(body["tau_s"]) == len(body["white_sigma"])
    short = rig.get("/api/v1/allan?seconds=60&node=concentration").body
    assert short["values"] <= 61


@pytest.mark.parametrize(("query", "status", "message"), [
    ("?node=nope", 404, "node 'nope' has no trend"),
    ("?seconds=5", 400, "seconds must be between 60 and"),
])
def test_bad_allan_queries(rig: WebRig, query: str, status: int, message: str) -> None:
    answer = rig.get(f"/api/v1/allan{query}")
    assert answer.status == status and message in answer.body["error"]["message"]
