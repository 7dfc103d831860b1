"""RateSampler: the DSP loop's frames/s, real-time factor and CPU share over a time window.

Used by `pafw run`'s status line and by the web API's status, from their own threads: it
only reads the analyzer's counters. Both see the same figure: the rate is counted between
frame completions (``Analyzer.last_frame_done``), not between the moments someone asked, and
over the same window (``WINDOW_S``). Counting frames between two arbitrary instants a second
apart gives 11 or 12 frames for a stream of 11.72 frames/s: the dashboard showed 11.0 while
the log, over five seconds, said 11.7.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from firmware.app.analyzer import Analyzer

#: the window every user of the rates averages over (seconds)
WINDOW_S = 5.0


class _Sample(NamedTuple):
    at: float  # monotonic time of the sample
    frame_at: float  # monotonic time the newest frame completed (``at`` before any)
    frames: int
    cpu_s: float


class RateSampler:
    """frames/s, real-time factor and DSP CPU share over the last ``window_s`` of samples.

    Call ``sample`` regularly (every second, or every status line); the figures cover the
    span from the oldest sample still in the window to the newest, at least
    ``min_interval_s`` (a shorter span is too short to mean anything: not updated).
    """

    def __init__(self, analyzer: Analyzer, *, window_s: float = WINDOW_S,
                 min_interval_s: float = 0.2) -> None:
        self.analyzer = analyzer
        self.window_s = window_s
        self.min_interval_s = min_interval_s
        self._samples: deque[_Sample] = deque([self._now()])
        self.frames_per_s: float | None = None
        self.realtime_factor: float | None = None
        self.dsp_cpu_percent: float | None = None

    def _now(self) -> _Sample:
        now = time.monotonic()
        done = self.analyzer.last_frame_done
        return _Sample(now, now if done is None else done, self.analyzer.frames,
                       self.analyzer.dsp_cpu_s)

    def sample(self) -> None:
        """Take a sample and update the figures over the window."""
        new = self._now()
        samples = self._samples
        if new.at - samples[-1].at < self.min_interval_s and len(samples) > 1:
            return
        samples.append(new)
        # keep one sample at least ``window_s`` old (the window's start), drop older ones
        while len(samples) > 2 and new.at - samples[1].at >= self.window_s:
            samples.popleft()
        base = samples[0]
        elapsed = new.at - base.at
        if elapsed < self.min_interval_s or elapsed <= 0.0:
            return
        frames = new.frames - base.frames
        span = new.frame_at - base.frame_at
        frame_s = self.analyzer.frame_size / self.analyzer.sample_rate
        flowing = base.frames > 0 and new.at - new.frame_at < 2.0 * frame_s + 0.5
        # between frame completions: no counting quantum; from the sampling times when
        # there is no frame to count from yet, or the frames stopped coming (a stall)
        rate = frames / span if frames > 0 and span > 0.0 and flowing else frames / elapsed
        self.frames_per_s = round(rate, 3)
        self.realtime_factor = round(rate * frame_s, 4)
        self.dsp_cpu_percent = round(100.0 * (new.cpu_s - base.cpu_s) / elapsed, 2)
