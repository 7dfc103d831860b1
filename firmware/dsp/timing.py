"""Per-node processing-time statistics with a fixed-size ring (no allocation per frame)."""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware.stats import percentiles


class TimingStats:
    """Count, mean, max over the whole run and p50/p99 over the last ``window`` samples."""

    def __init__(self, window: int = 2048) -> None:
        # a list: storing a Python int there costs a third of a numpy item assignment, and
        # record() runs for every node on every frame
        self._ring = [0] * window
        self._window = window
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def record(self, duration_ns: int) -> None:
        """Add one duration (nanoseconds)."""
        self._ring[self.count % self._window] = duration_ns
        self.count += 1
        self.total_ns += duration_ns
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns

    def reset(self) -> None:
        """Forget everything (after warm-up, so compile time does not count)."""
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def summary(self) -> dict[str, Any]:
        """JSON-safe figures in microseconds."""
        filled = np.asarray(self._ring[: min(self.count, self._window)], dtype=np.int64)
        if self.count == 0:
            return {"count": 0, "mean_us": None, "p50_us": None, "p99_us": None, "max_us": None}
        p50, p99 = (v / 1000.0 for v in percentiles(filled, (50, 99)))
        return {
            "count": self.count,
            "mean_us": round(self.total_ns / self.count / 1000.0, 2),
            "p50_us": round(float(p50), 2),
            "p99_us": round(float(p99), 2),
            "max_us": round(self.max_ns / 1000.0, 2),
        }
