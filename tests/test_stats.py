"""firmware.stats: the one percentile definition of every status payload."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from firmware.stats import latency_summary, percentiles


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values, (0, 50, 95, 100)) == pytest.approx([1.0, 50.5, 95.05, 100.0])
    assert percentiles([7.0], (50, 99)) == [7.0, 7.0]


def test_percentiles_take_rings_and_arrays() -> None:
    ring = deque([3.0, 1.0, 2.0], maxlen=8)
    assert percentiles(ring, (50,)) == [2.0]
    assert percentiles(np.array([1.0, 3.0]), (50,)) == [2.0]


def test_percentiles_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentiles([], (50,))


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001 * v for v in range(1, 101)])
    assert summary == {"count": 100, "p50": 50.5, "p95": 95.05, "p99": 99.01}


def test_latency_summary_of_nothing_has_no_figures() -> None:
    assert latency_summary(deque()) == {"count": 0, "p50": None, "p95": None, "p99": None}
    assert latency_summary(np.array([])) == {"count": 0, "p50": None, "p95": None, "p99": None}
