"""The live Allan-Werle deviation (firmware/app/allan_live.py) from a trend's one-second
buckets: white noise gives the tau^-1/2 curve and its LOD; too few seconds give an empty
curve with null figures; a gap in the trend (the appliance stopped a while) is left out."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.app.allan_live import MIN_POINTS, allan_payload
from firmware.app.trend import NodeTrend

T0 = 1_700_000_000.0


def trend_of(values: np.ndarray, *, skip: slice | None = None) -> NodeTrend:
    trend = NodeTrend("concentration", "concentration_ppm", "ppm", 100_000)
    for k, value in enumerate(values):
        if skip is not None and skip.start <= k < skip.stop:
            continue
        trend.add(T0 + k + 0.25, float(value))
        trend.add(T0 + k + 0.75, float(value))  # two results per second: the mean is kept
    trend.add(T0 + len(values) + 0.5, 0.0)  # closes the last bucket (the open one is left)
    return trend


def live(trend: NodeTrend) -> tuple[NodeTrend, np.ndarray]:
    return trend, trend.closed_rows()


def test_white_noise_gives_the_inverse_square_root_curve() -> None:
    values = np.random.default_rng(3).normal(800.0, 1.5, 3600)
    payload = allan_payload(*live(trend_of(values)), since=T0)
    assert payload["values"] == 3600 and payload["span_s"] == 3600.0
    assert payload["tau_s"][0] == 1.0 and payload["tau_s"][-1] == 1200.0
    sigma, white = np.array(payload["sigma"]), np.array(payload["white_sigma"])
    short = np.array(payload["tau_s"]) <= 100
    np.testing.assert_allclose(sigma[short], white[short], rtol=0.25)
    assert payload["sigma_1s"] == pytest.approx(1.5, rel=0.05)
    assert payload["lod_1s"] == pytest.approx(3 * payload["sigma_1s"])
    assert payload["lod_optimum"] < payload["lod_1s"] / 5
    assert (payload["node"], payload["unit"]) == ("concentration", "ppm")


def test_the_window_and_too_few_seconds() -> None:
    trend = trend_of(np.arange(20.0))
    assert allan_payload(*live(trend), since=T0)["values"] == 20
    recent = allan_payload(*live(trend), since=T0 + 20 - MIN_POINTS + 1)
    assert recent["values"] == MIN_POINTS - 1
    assert recent["tau_s"] == [] and recent["sigma"] == []
    assert recent["lod_1s"] is None and recent["optimum_tau_s"] is None
    assert recent["min_values"] == MIN_POINTS


def test_a_gap_is_left_out() -> None:
    values = np.random.default_rng(4).normal(800.0, 1.5, 2000)
    payload = allan_payload(*live(trend_of(values, skip=slice(900, 1000))), since=T0)
    assert payload["values"] == 1900 and payload["span_s"] == 2000.0
    assert payload["sigma_1s"] == pytest.approx(1.5, rel=0.08)
