"""TrendRecorder: one value per node per second (mean, min, max) for the last hours.

Sampled by the web server from ComputingState (never on the DSP thread), kept in fixed numpy
rings (24 h of one-second buckets is 2.8 MB per node), and re-bucketed on request to as many
points as a chart can show.
"""

from __future__ import annotations

import math

import numpy as np

from firmware.state import ComputingResult

#: the value a trend follows for each result kind, and its unit
TREND_FIELDS = {"concentration": ("concentration_ppm", "ppm"),
                "peak": ("amplitude", "FS"), "lockin": ("amplitude", "FS")}


class NodeTrend:
    """The one-second buckets of one node: epoch second, mean, min, max."""

    def __init__(self, node_id: str, field: str, unit: str, capacity: int) -> None:
        self.node_id, self.field, self.unit = node_id, field, unit
        self._data = np.full((capacity, 4), np.nan)
        self._capacity = capacity
        self._count = 0  # buckets closed so far
        self._second = -1
        self._sum = 0.0
        self._n = 0
        self._min = math.inf
        self._max = -math.inf

    def add(self, timestamp: float, value: float) -> None:
        """Add a sample; a sample of a new second closes the previous bucket."""
        if not math.isfinite(value):
            return
        second = int(timestamp)
        if second != self._second:
            self._close()
            self._second = second
        self._sum += value
        self._n += 1
        self._min = min(self._min, value)
        self._max = max(self._max, value)

    def _close(self) -> None:
        if self._n:
            self._data[self._count % self._capacity] = (
                self._second + 0.5, self._sum / self._n, self._min, self._max)
            self._count += 1
        self._sum, self._n, self._min, self._max = 0.0, 0, math.inf, -math.inf

    @property
    def count(self) -> int:
        """Buckets closed since the trend started (restored ones included)."""
        return self._count

    def closed_since(self, count: int) -> tuple[np.ndarray, int]:
        """The buckets closed after the first ``count`` (those still in the ring), oldest
        first, and the current count: what a store appends since its last save."""
        new = min(self._count - count, self._capacity)
        if new <= 0:
            return np.empty((0, 4)), self._count
        return self.closed_rows()[-new:], self._count

    def closed_rows(self) -> np.ndarray:
        """The closed buckets, oldest first: an (n, 4) copy of epoch s, mean, min, max."""
        if self._count <= self._capacity:
            return self._data[:self._count].copy()
        split = self._count % self._capacity  # the ring wrapped: oldest from here on
        return np.concatenate([self._data[split:], self._data[:split]])

    def rows(self, since: float = -math.inf, until: float = math.inf) -> np.ndarray:
        """Buckets whose centre is in [``since``, ``until``], the open one included."""
        rows = self.closed_rows()
        if self._n:
            rows = np.vstack([rows, [(self._second + 0.5, self._sum / self._n, self._min,
                                      self._max)]])
        return rows[(rows[:, 0] >= since) & (rows[:, 0] <= until)]

    def restore(self, rows: np.ndarray) -> None:
        """Start from saved buckets (oldest first; the newest ``capacity`` are kept), before
        any sample: the buckets of this run come after them."""
        rows = np.asarray(rows, dtype=float).reshape(-1, 4)[-self._capacity:]
        rows = rows[np.isfinite(rows).all(axis=1)]
        self._data[:rows.shape[0]] = rows
        self._count = rows.shape[0]

    def points(self, since: float, max_points: int) -> tuple[float, list[list[float]]]:
        """Buckets newer than ``since`` (the open one included), merged so that at most
        ``max_points`` remain; returns the bucket width in seconds and the points."""
        rows = self.rows(since)
        if rows.shape[0] == 0:
            return 1.0, []
        group = max(1, math.ceil(rows.shape[0] / max_points))
        if group > 1:
            n = rows.shape[0] // group * group
            head = rows[rows.shape[0] - n:].reshape(-1, group, 4)
            rows = np.column_stack([head[:, :, 0].mean(axis=1), head[:, :, 1].mean(axis=1),
                                    head[:, :, 2].min(axis=1), head[:, :, 3].max(axis=1)])
        return float(group), np.round(rows, 6).tolist()


class TrendRecorder:
    """The trends of every computing node, fed with each node's newest result."""

    def __init__(self, hours: float) -> None:
        self._capacity = max(60, int(hours * 3600))
        self.trends: dict[str, NodeTrend] = {}
        self._last: dict[str, tuple[int, float]] = {}

    @property
    def capacity(self) -> int:
        """One-second buckets kept per node."""
        return self._capacity

    def restore(self, node_id: str, field: str, unit: str, rows: np.ndarray) -> NodeTrend:
        """A node's trend started from saved buckets (see ``NodeTrend.restore``)."""
        trend = self.trends[node_id] = NodeTrend(node_id, field, unit, self._capacity)
        trend.restore(rows)
        return trend

    def sample(self, results: dict[str, ComputingResult]) -> None:
        """Add each result not seen before (by sequence and time)."""
        for node_id, result in results.items():
            key = (result.sequence, result.monotonic)
            if self._last.get(node_id) == key:
                continue
            self._last[node_id] = key
            trend = self.trends.get(node_id)
            field, unit = TREND_FIELDS.get(result.kind, ("amplitude", ""))
            if trend is None or trend.field != field:  # new, or restored for another kind
                trend = self.trends[node_id] = NodeTrend(node_id, field, unit, self._capacity)
            trend.add(result.timestamp, getattr(result, trend.field))
