"""RateSampler: the DSP loop's frames/s, real-time factor and CPU share between two samples.

Used by `pafw run`'s status line and by the web API's status, from their own threads: it
only reads the analyzer's counters.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.appliance import Analyzer


class RateSampler:
    """frames/s, real-time factor and DSP CPU share between two ``sample`` calls."""

    def __init__(self, analyzer: Analyzer, *, min_interval_s: float = 0.2) -> None:
        self.analyzer = analyzer
        self.min_interval_s = min_interval_s
        self._t = time.monotonic()
        self._frames = self.analyzer.frames
        self._cpu = self.analyzer.dsp_cpu_s
        self.frames_per_s: float | None = None
        self.realtime_factor: float | None = None
        self.dsp_cpu_percent: float | None = None

    def sample(self) -> None:
        """Update the figures from the counters' change since the last sample (a sample
        less than ``min_interval_s`` after the previous one is skipped: too short to mean
        anything)."""
        now, frames, cpu = time.monotonic(), self.analyzer.frames, self.analyzer.dsp_cpu_s
        elapsed = now - self._t
        if elapsed < self.min_interval_s or elapsed <= 0.0:
            return
        rate = (frames - self._frames) / elapsed
        frame_s = self.analyzer.frame_size / self.analyzer.sample_rate
        self.frames_per_s = round(rate, 3)
        self.realtime_factor = round(rate * frame_s, 4)
        self.dsp_cpu_percent = round(100.0 * (cpu - self._cpu) / elapsed, 2)
        self._t, self._frames, self._cpu = now, frames, cpu
