"""Is a point's signal stable? The amplitude's spread over a sliding window of results.

One ``Sample`` per new result of the calibrated node: its amplitude (compensated, what the
fit uses), the raw amplitude, the cell temperature and the frequency. ``PointWindow`` keeps
the samples of the last ``window_s`` seconds; the window is stable once samples have come for
at least ``window_s`` seconds, it holds at least ``min_samples`` of them and the amplitude's
relative standard deviation is at most ``max_rsd_percent`` (or its standard deviation at most
``abs_std``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from firmware.calibration.settings import StabilitySettings


class Sample(NamedTuple):
    """One result as the calibration sees it (NaN where unknown)."""

    monotonic: float
    amplitude: float
    raw_amplitude: float
    temperature_c: float
    frequency_hz: float
    pressure_hpa: float
    detected: bool = True


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None, None
    mean = math.fsum(finite) / len(finite)
    if len(finite) < 2:
        return mean, 0.0
    variance = math.fsum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(variance)


@dataclass(frozen=True)
class WindowStats:
    """Means and sample standard deviations of a window (None when nothing was finite)."""

    samples: int
    span_s: float
    amplitude: float | None
    amplitude_std: float | None
    raw_amplitude: float | None
    temperature_c: float | None
    temperature_std: float | None
    frequency_hz: float | None
    frequency_std: float | None
    pressure_hpa: float | None
    detected_fraction: float = 1.0

    @property
    def rsd_percent(self) -> float | None:
        """The amplitude's relative standard deviation in percent (None at a zero mean)."""
        if self.amplitude is None or self.amplitude_std is None or self.amplitude == 0.0:
            return None
        return 100.0 * self.amplitude_std / abs(self.amplitude)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (a record's point keeps it)."""
        return {
            "samples": self.samples, "span_s": round(self.span_s, 3),
            "amplitude": self.amplitude, "amplitude_std": self.amplitude_std,
            "amplitude_rsd_percent": self.rsd_percent, "raw_amplitude": self.raw_amplitude,
            "temperature_c": self.temperature_c, "temperature_std": self.temperature_std,
            "frequency_hz": self.frequency_hz, "frequency_std": self.frequency_std,
            "pressure_hpa": self.pressure_hpa, "detected_fraction": self.detected_fraction,
        }


class PointWindow:
    """The samples of the last ``window_s`` seconds and the stability verdict on them.

    >>> from firmware.calibration.settings import StabilitySettings
    >>> w = PointWindow(StabilitySettings(window_s=1.0, min_samples=3, max_rsd_percent=1.0))
    >>> for t in (0.0, 0.5, 1.0):
    ...     w.add(Sample(t, 0.0200 + t * 1e-5, 0.02, 25.0, 2000.0, math.nan))
    >>> w.stable()
    True
    """

    def __init__(self, settings: StabilitySettings) -> None:
        self.settings = settings
        self._samples: deque[Sample] = deque()
        self._first: float | None = None

    @property
    def collected_s(self) -> float:
        """Seconds from the first sample to the newest one."""
        if self._first is None or not self._samples:
            return 0.0
        return self._samples[-1].monotonic - self._first

    def add(self, sample: Sample) -> None:
        """Append one sample and drop those older than the window."""
        self._samples.append(sample)
        if self._first is None:
            self._first = sample.monotonic
        horizon = sample.monotonic - self.settings.window_s
        while self._samples and self._samples[0].monotonic < horizon:
            self._samples.popleft()

    def clear(self) -> None:
        """Forget every sample (the gas changed)."""
        self._samples.clear()
        self._first = None

    def stats(self) -> WindowStats:
        """Means and spreads of the window now."""
        s = list(self._samples)
        amp, amp_std = _mean_std([x.amplitude for x in s])
        raw, _ = _mean_std([x.raw_amplitude for x in s])
        temp, temp_std = _mean_std([x.temperature_c for x in s])
        freq, freq_std = _mean_std([x.frequency_hz for x in s])
        pressure, _ = _mean_std([x.pressure_hpa for x in s])
        span = s[-1].monotonic - s[0].monotonic if s else 0.0
        detected = sum(x.detected for x in s) / len(s) if s else 0.0
        return WindowStats(len(s), span, amp, amp_std, raw, temp, temp_std, freq, freq_std,
                           pressure, detected)

    def stable(self) -> bool:
        """Whether the window is full and its amplitude steady enough."""
        return self.verdict(self.stats()) is None

    def verdict(self, stats: WindowStats) -> str | None:
        """None when stable, else why not (for the progress display)."""
        cfg = self.settings
        if stats.samples < cfg.min_samples:
            return f"{stats.samples} of at least {cfg.min_samples} samples"
        if self.collected_s < cfg.window_s:
            return f"window filling ({self.collected_s:.1f} of {cfg.window_s:g} s)"
        if stats.amplitude is None or stats.amplitude_std is None:
            return "no amplitude in the window"
        if stats.amplitude_std <= cfg.abs_std:
            return None
        rsd = stats.rsd_percent
        if rsd is not None and rsd <= cfg.max_rsd_percent:
            return None
        shown = "inf" if rsd is None else f"{rsd:.3g}"
        return (f"amplitude RSD {shown} % above {cfg.max_rsd_percent:g} % "
                f"(std {stats.amplitude_std:.3g})")
