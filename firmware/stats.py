"""Percentiles of recorded durations: the one definition every status payload uses.

Linear interpolation between the closest ranks (numpy's default), so the p95 the web API
shows for an action's trigger latency and the one ``pafw status`` shows for its worker's calls
mean the same thing.

>>> percentiles([1.0, 2.0, 3.0, 4.0], (50, 100))
[2.5, 4.0]
>>> latency_summary([0.001, 0.002, 0.003])
{'count': 3, 'p50': 2.0, 'p95': 2.9, 'p99': 2.98}
>>> latency_summary([])
{'count': 0, 'p50': None, 'p95': None, 'p99': None}
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np


def percentiles(values: Collection[float], qs: Sequence[float]) -> list[float]:
    """The percentiles ``qs`` (0-100) of ``values`` (not empty), interpolated linearly."""
    if len(values) == 0:
        raise ValueError("percentiles of no values")
    return [float(v) for v in np.percentile(np.fromiter(values, float, len(values)), qs)]


def latency_summary(seconds: Collection[float]) -> dict[str, Any]:
    """count and p50/p95/p99 in milliseconds (3 decimals) of durations in seconds."""
    if len(seconds) == 0:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    p50, p95, p99 = (round(v * 1e3, 3) for v in percentiles(seconds, (50, 95, 99)))
    return {"count": len(seconds), "p50": p50, "p95": p95, "p99": p99}
