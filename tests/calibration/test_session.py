"""A calibration session's points (firmware/calibration/session.py): which points are refused
before measuring, and the measurement's outcome from the samples it reads."""

from __future__ import annotations

import itertools
import math
import time

import pytest

from firmware.calibration.errors import CalibrationError
from firmware.calibration.session import Session
from firmware.calibration.settings import StabilitySettings
from firmware.calibration.stability import Sample

STABILITY = StabilitySettings(window_s=0.1, min_samples=3, max_rsd_percent=1.0, timeout_s=2.0)


def steady(amplitude: float) -> object:
    counter = itertools.count()

    def read() -> tuple[int, Sample]:
        return next(counter), Sample(time.monotonic(), amplitude, amplitude, 25.0, 2000.0,
                                     math.nan, True)
    return read


def test_points_are_kept_sorted_with_their_readings() -> None:
    session = Session(mode="calibration", operator="Ada", gas="CO2", stability=STABILITY,
                      read_sample=steady(0.02))  # type: ignore[arg-type]
    session.start_point(1000.0, gas="CO2", cylinder="A1")
    assert session.measuring
    assert session.wait(5)
    session.read_sample = steady(0.0)  # type: ignore[assignment]
    session.start_point(0.0, gas="N2", cylinder=None)
    assert session.wait(5)
    assert [p.concentration_ppm for p in session.points] == [0.0, 1000.0]
    assert session.points[1].amplitude == 0.02 and session.points[0].gas == "N2"
    assert session.to_dict()["points"][1]["readings"]["samples"] >= 3


@pytest.mark.parametrize(("mode", "existing", "ppm", "message"), [
    ("calibration", [], -1.0, "a span of -1 ppm is below zero"),
    ("calibration", [], math.nan, "expected a number"),
    ("calibration", [500.0], 500.0, "a 500 ppm point was measured already"),
    ("zero_check", [], 50.0, "a zero check measures zero gas only, not 50 ppm"),
    ("zero_check", [0.0], 0.0, "the zero check has its point"),
])
def test_refused_points(mode: str, existing: list[float], ppm: float, message: str) -> None:
    session = Session(mode=mode, operator="Ada", gas="CO2",  # type: ignore[arg-type]
                      stability=STABILITY, read_sample=steady(0.02))  # type: ignore[arg-type]
    for value in existing:
        session.start_point(value, gas="CO2", cylinder=None)
        assert session.wait(5)
    with pytest.raises(CalibrationError, match=message):
        session.start_point(ppm, gas="CO2", cylinder=None)


def test_a_second_point_waits_for_the_first_and_cancel_drops_it() -> None:
    session = Session(mode="calibration", operator="Ada", gas="CO2",
                      stability=StabilitySettings(window_s=60, timeout_s=60),
                      read_sample=steady(0.02))  # type: ignore[arg-type]
    session.start_point(100.0, gas="CO2", cylinder=None)
    with pytest.raises(CalibrationError, match="the 100 ppm point is still being measured"):
        session.start_point(200.0, gas="CO2", cylinder=None)
    session.cancel()
    assert session.current is not None and session.current.state == "cancelled"
    assert session.points == []
