"""The stability window (firmware/calibration/stability.py): a full window, enough samples,
the RSD or the absolute spread."""

from __future__ import annotations

import math

from firmware.calibration.settings import StabilitySettings
from firmware.calibration.stability import PointWindow, Sample


def sample(t: float, amplitude: float, *, detected: bool = True) -> Sample:
    return Sample(t, amplitude, amplitude, 25.0 + t * 0.01, 2000.0 + t, math.nan, detected)


def test_stable_only_once_the_window_is_full_and_steady() -> None:
    window = PointWindow(StabilitySettings(window_s=2.0, min_samples=4, max_rsd_percent=1.0))
    for i in range(4):
        window.add(sample(i * 0.5, 0.02))
    assert window.verdict(window.stats()) == "window filling (1.5 of 2 s)"
    window.add(sample(2.0, 0.02))
    assert window.stable()
    stats = window.stats()
    assert stats.samples == 5 and stats.amplitude == 0.02 and stats.amplitude_std == 0.0
    assert stats.temperature_c is not None and stats.frequency_std is not None


def test_a_drifting_signal_is_not_stable_until_it_settles() -> None:
    window = PointWindow(StabilitySettings(window_s=1.0, min_samples=3, max_rsd_percent=1.0))
    for i in range(11):
        window.add(sample(i * 0.1, 0.01 + i * 0.001))  # rising 10 % per step
    verdict = window.verdict(window.stats()) or ""
    assert verdict.startswith("amplitude RSD") and "above 1 %" in verdict
    for i in range(11, 30):
        window.add(sample(i * 0.1, 0.02))
    assert window.stable()  # the ramp has left the window


def test_the_absolute_spread_lets_a_zero_point_settle() -> None:
    strict = StabilitySettings(window_s=1.0, min_samples=3, max_rsd_percent=1.0)
    loose = StabilitySettings(window_s=1.0, min_samples=3, max_rsd_percent=1.0, abs_std=1e-3)
    for settings, stable in ((strict, False), (loose, True)):
        window = PointWindow(settings)
        for i in range(12):
            window.add(sample(i * 0.1, 0.0 if i % 3 else 2e-4, detected=i % 3 == 0))
        assert window.stable() is stable
        assert 0.2 < window.stats().detected_fraction < 0.4


def test_clear_starts_over() -> None:
    window = PointWindow(StabilitySettings(window_s=1.0, min_samples=2))
    for i in range(20):
        window.add(sample(i * 0.1, 0.02))
    window.clear()
    window.add(sample(5.0, 0.02))
    assert not window.stable() and window.collected_s == 0.0
