"""user_scripts/trend_predictor.py on the real appliance: a concentration ramp that stays
below the threshold gets the early warning (log + notification) with a time-to-threshold
close to the true one; a far threshold gets none."""

from __future__ import annotations

import logging
from typing import Any

from tests.user_scripts.appliance_run import FRAME_S, docstring_node, example_run
from tests.waiting import wait_until

THRESHOLD = 2000.0
RAMP = {"profile": "ramp", "start_ppm": 400.0, "end_ppm": 1800.0, "duration_s": 10.0}
PACE_S = 0.025  # wall seconds between frames (at least): the script's clock runs ~3.4x fast
FRAMES = round(RAMP["duration_s"] / FRAME_S)
PPM_PER_FRAME = (RAMP["end_ppm"] - RAMP["start_ppm"]) / RAMP["duration_s"] * FRAME_S
HORIZON_S = 2.0  # warn when the threshold is predicted within 2 s (~950 ppm below it)


def node(node_id: str, threshold: float) -> dict[str, Any]:
    n = docstring_node("trend_predictor.py")
    n["id"] = node_id
    n["parameters"]["buffer_size"] = 200
    n["parameters"]["python_config"].update(
        threshold_ppm=threshold, horizon_s=HORIZON_S, window_s=1.0, min_points=10,
        history_points=100, evaluate_every_s=0.0)
    return n


def test_ramp_below_threshold_warns_before_it_is_reached(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pafw.script")
    nodes = [node("co2_trend", THRESHOLD), node("co2_trend_far", 5000.0)]
    with example_run(tmp_path, "trend_predictor.py", nodes=nodes, profile=RAMP) as run:
        run.frames(FRAMES, pace_s=PACE_S)
        near, far = run.handler("co2_trend"), run.handler("co2_trend_far")
        wait_until(lambda: near.api.notifications == 1)
        warned, quiet = run.script_status("co2_trend"), run.script_status("co2_trend_far")
        updates = [e for e in near.history.recent() if e.kind == "update"]
    seen = [e.data["concentration_ppm"] for e in updates
            if e.data["concentration_ppm"] is not None]
    # the ramp as the script saw it, in ppm per second of frame timestamps
    stamps = sorted(e.timestamp for e in updates)
    slope = PPM_PER_FRAME * (len(stamps) - 1) / (stamps[-1] - stamps[0])

    # the threshold was never reached, yet the warning came, once
    assert max(seen) < THRESHOLD
    assert warned["warnings"] == 1 and warned["armed"] is False
    warning = warned["last_warning"]
    assert 0 < warning["eta_s"] <= HORIZON_S and warning["level_ppm"] < THRESHOLD
    # ... at the level where the true time-to-threshold is about the horizon
    true_eta = (THRESHOLD - warning["level_ppm"]) / slope
    assert 0.75 * true_eta <= warning["eta_s"] <= 1.33 * true_eta, (warning, true_eta)
    assert 0.8 * slope <= warning["slope_ppm_per_min"] / 60 <= 1.25 * slope
    assert abs(warning["level_ppm"] - (THRESHOLD - HORIZON_S * slope)) < 200

    notes = [e.data for e in near.history.recent() if e.kind == "notification"]
    assert len(notes) == 1 and notes[0]["severity"] == "warning"
    assert f"{THRESHOLD:.0f} ppm expected in" in notes[0]["message"]
    logged = [r for r in caplog.records if r.name == "pafw.script.co2_trend"]
    assert any(r.levelno == logging.WARNING and "expected in" in r.getMessage()
               for r in logged)

    # 5000 ppm is never within the horizon of this ramp
    assert quiet["warnings"] == 0 and quiet["armed"] is True and far.api.notifications == 0
    assert quiet["forecast"]["eta_s"] is None or quiet["forecast"]["eta_s"] > HORIZON_S
