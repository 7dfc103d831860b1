"""Per-node timing statistics (firmware/dsp/timing.py): count, mean and max over the whole run,
percentiles over the last ``window`` durations only, ``reset`` after warm-up, and a summary
that is JSON-safe before the first frame too."""

from __future__ import annotations

import json

import pytest

from firmware.dsp.timing import TimingStats


def test_no_duration_yet_gives_no_figures() -> None:
    assert TimingStats().summary() == {"count": 0, "mean_us": None, "p50_us": None,
                                       "p99_us": None, "max_us": None}


def test_figures_in_microseconds() -> None:
    stats = TimingStats()
    for ns in (1000, 2000, 3000, 4000, 100_000):
        stats.record(ns)
    summary = stats.summary()
    assert summary == {"count": 5, "mean_us": 22.0, "p50_us": 3.0,
                       "p99_us": pytest.approx(96.16), "max_us": 100.0}
    assert (stats.count, stats.total_ns, stats.max_ns) == (5, 110_000, 100_000)
    assert json.loads(json.dumps(summary)) == summary
    assert all(type(summary[k]) is float for k in ("mean_us", "p50_us", "p99_us", "max_us"))


def test_values_are_rounded_to_hundredths_of_a_microsecond() -> None:
    stats = TimingStats()
    stats.record(1234)
    stats.record(1235)
    summary = stats.summary()
    assert summary["mean_us"] == 1.23 and summary["max_us"] == 1.24


def test_percentiles_cover_the_last_window_only() -> None:
    stats = TimingStats(window=4)
    for ns in (1_000_000, 1000, 1000, 1000, 1000, 1000):
        stats.record(ns)
    summary = stats.summary()
    # the 1 ms outlier left the ring, but the whole-run figures still hold it
    assert summary["p50_us"] == 1.0 and summary["p99_us"] == 1.0
    assert summary["max_us"] == 1000.0
    assert summary["count"] == 6
    assert summary["mean_us"] == pytest.approx((1_000_000 + 5 * 1000) / 6 / 1000, abs=0.01)


def test_reset_forgets_everything_recorded_before() -> None:
    stats = TimingStats(window=8)
    for _ in range(5):
        stats.record(1_000_000)  # warm-up: compile time
    stats.reset()
    assert stats.summary()["count"] == 0 and stats.summary()["p50_us"] is None
    stats.record(2000)
    assert stats.summary() == {"count": 1, "mean_us": 2.0, "p50_us": 2.0, "p99_us": 2.0,
                               "max_us": 2.0}
