"""Concentration profiles: the simulator's ground truth over time.

Every profile (constant, steps, ramp, CSV schedule) is represented as one piecewise-linear
curve, optionally repeating, so ``value_at`` and the exact mean over an interval
(``mean_over``, used for a frame's ``truth_ppm``) share one implementation. ``parse_profile``
turns the CLI's short strings into the validated settings models.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import TypeAdapter, ValidationError

from firmware.dsp.sources.settings import (
    ConcentrationProfileSettings,
    ConstantProfile,
    CsvProfile,
    RampProfile,
    StepsProfile,
)
from firmware.errors import ConfigError


class ConcentrationProfile:
    """A concentration (ppm) as a function of time (s since the source opened).

    Knots ``times`` (non-decreasing, first 0) and ``values`` define a piecewise-linear curve;
    equal consecutive times make a step. Before 0 the first value holds; after the last knot
    the curve repeats with period ``times[-1]`` when ``repeat`` is set, else the last value
    holds.

    >>> p = build_profile(RampProfile(profile="ramp", start_ppm=0, end_ppm=100, duration_s=10))
    >>> p.value_at(5.0), p.mean_over(0.0, 10.0)
    (50.0, 50.0)
    """

    def __init__(self, times: list[float], values: list[float], *, repeat: bool = False) -> None:
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if t.ndim != 1 or t.size == 0 or t.size != v.size:
            raise ValueError("profile needs equally many times and values, at least one")
        if np.any(np.diff(t) < 0):
            raise ValueError("profile times must be non-decreasing")
        self.times, self.values = t, v
        self.period = float(t[-1] - t[0])
        self.repeat = repeat and self.period > 0
        widths = np.diff(t)
        areas = widths * (v[:-1] + v[1:]) / 2.0
        self._cum = np.concatenate(([0.0], np.cumsum(areas)))

    def _wrap(self, t: float) -> tuple[float, float]:
        """Split ``t`` into (number of whole periods, time within the curve)."""
        t0 = float(self.times[0])
        if self.repeat and t > t0 + self.period:
            cycles = math.floor((t - t0) / self.period)
            return float(cycles), t - cycles * self.period
        return 0.0, t

    def _local_value(self, t: float) -> float:
        times, values = self.times, self.values
        if t <= times[0]:
            return float(values[0])
        if t >= times[-1]:
            return float(values[-1])
        i = int(np.searchsorted(times, t, side="right")) - 1
        t_a, t_b = times[i], times[i + 1]
        frac = (t - t_a) / (t_b - t_a) if t_b > t_a else 1.0
        return float(values[i] + frac * (values[i + 1] - values[i]))

    def value_at(self, t_s: float) -> float:
        """Concentration (ppm) at time ``t_s``."""
        return self._local_value(self._wrap(t_s)[1])

    def _integral(self, t: float) -> float:
        """Integral of the curve from ``times[0]`` to ``t`` (ppm*s)."""
        times = self.times
        cycles, local = self._wrap(t)
        total = cycles * float(self._cum[-1])
        if local <= times[0]:
            return total + (local - float(times[0])) * float(self.values[0])
        if local >= times[-1]:
            return (total + float(self._cum[-1])
                    + (local - float(times[-1])) * float(self.values[-1]))
        i = int(np.searchsorted(times, local, side="right")) - 1
        v_here = self._local_value(local)
        v_knot = float(self.values[i])
        return total + float(self._cum[i]) + (local - float(times[i])) * (v_knot + v_here) / 2.0

    def _segment(self, t: float, *, end: bool) -> tuple[float, float, int]:
        """(cycles, local time, segment index) of ``t``; -1 / len-1 are the hold regions.

        An interval's end point belongs to the segment on its left, so a frame that ends
        exactly on a step is still wholly inside the step before it.
        """
        times = self.times
        cycles, local = self._wrap(t)
        if end and self.repeat and cycles > 0 and local == times[0]:
            cycles, local = cycles - 1.0, local + self.period
        side: Literal["left", "right"] = "left" if end else "right"
        return cycles, local, int(np.searchsorted(times, local, side=side)) - 1

    def _value_in(self, seg: int, local: float) -> float:
        """Value at ``local`` on segment ``seg`` (exact for constant segments)."""
        values = self.values
        if seg < 0:
            return float(values[0])
        if seg >= len(values) - 1:
            return float(values[-1])
        t_a, t_b = self.times[seg], self.times[seg + 1]
        frac = (local - t_a) / (t_b - t_a) if t_b > t_a else 0.0
        return float(values[seg] + frac * (values[seg + 1] - values[seg]))

    def mean_over(self, t0: float, t1: float) -> float:
        """Exact mean concentration over ``[t0, t1]`` (the value at ``t0`` if empty).

        Within one linear piece the mean is the average of its end values, so a frame inside
        a constant step reports that step's level exactly (no rounding from integration).
        """
        if t1 <= t0:
            return self.value_at(t0)
        c0, l0, s0 = self._segment(t0, end=False)
        c1, l1, s1 = self._segment(t1, end=True)
        if c0 == c1 and s0 == s1:
            return 0.5 * (self._value_in(s0, l0) + self._value_in(s1, l1))
        return float((self._integral(t1) - self._integral(t0)) / (t1 - t0))


def load_csv_schedule(path: Path) -> tuple[list[float], list[float]]:
    """Read ``time_s,concentration_ppm`` rows (optional header line, '#' comments)."""
    times: list[float] = []
    values: list[float] = []
    try:
        with open(path, newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                cells = [c.strip() for c in row]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if len(cells) < 2:
                    raise ConfigError(
                        f"{path}:{lineno}: expected 'time_s,concentration_ppm', got {row!r}"
                    )
                try:
                    t, c = float(cells[0]), float(cells[1])
                except ValueError:
                    if not times and lineno == 1:  # header line
                        continue
                    raise ConfigError(
                        f"{path}:{lineno}: expected two numbers, got {cells[0]!r},{cells[1]!r}"
                    ) from None
                if not (math.isfinite(t) and math.isfinite(c)) or c < 0:
                    raise ConfigError(f"{path}:{lineno}: concentration must be >= 0, got {c}")
                if times and t < times[-1]:
                    raise ConfigError(
                        f"{path}:{lineno}: time {t} s goes backwards (previous {times[-1]} s)"
                    )
                times.append(t)
                values.append(c)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read concentration schedule: {exc.strerror}") from None
    if not times:
        raise ConfigError(f"{path}: concentration schedule has no 'time_s,ppm' rows")
    if times[0] > 0:  # hold the first value from t=0
        times.insert(0, 0.0)
        values.insert(0, values[0])
    return times, values


def build_profile(settings: ConcentrationProfileSettings) -> ConcentrationProfile:
    """Build the profile described by a validated settings model."""
    if isinstance(settings, ConstantProfile):
        return ConcentrationProfile([0.0], [settings.value_ppm])
    if isinstance(settings, StepsProfile):
        times: list[float] = []
        values: list[float] = []
        for i, level in enumerate(settings.levels_ppm):
            times += [i * settings.step_s, (i + 1) * settings.step_s]
            values += [level, level]
        return ConcentrationProfile(times, values, repeat=settings.repeat)
    if isinstance(settings, RampProfile):
        return ConcentrationProfile(
            [0.0, settings.duration_s],
            [settings.start_ppm, settings.end_ppm],
            repeat=settings.repeat,
        )
    if isinstance(settings, CsvProfile):
        return ConcentrationProfile(*load_csv_schedule(settings.path))
    raise ConfigError(f"unknown concentration profile {settings!r}")


_ADAPTER: TypeAdapter[ConcentrationProfileSettings] = TypeAdapter(ConcentrationProfileSettings)
_USAGE = (
    "expected 'PPM', 'constant:PPM', 'ramp:START:END:SECONDS', "
    "'steps:L1,L2,...:STEP_SECONDS' or 'csv:PATH'"
)


def parse_profile(text: str) -> ConcentrationProfileSettings:
    """Parse the CLI's profile syntax into a settings model.

    >>> parse_profile("steps:0,500,1000:30").levels_ppm
    [0.0, 500.0, 1000.0]
    """
    spec = text.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    parts = rest.split(":") if rest else []
    try:
        if not rest and _is_number(kind):
            data: dict[str, object] = {"profile": "constant", "value_ppm": float(kind)}
        elif kind == "constant" and len(parts) == 1:
            data = {"profile": "constant", "value_ppm": float(parts[0])}
        elif kind == "ramp" and len(parts) == 3:
            data = {
                "profile": "ramp",
                "start_ppm": float(parts[0]),
                "end_ppm": float(parts[1]),
                "duration_s": float(parts[2]),
            }
        elif kind == "steps" and len(parts) == 2:
            levels = [float(x) for x in parts[0].split(",") if x.strip()]
            data = {"profile": "steps", "levels_ppm": levels, "step_s": float(parts[1])}
        elif kind == "csv" and rest:
            data = {"profile": "csv", "path": Path(rest)}
        else:
            raise ConfigError(f"concentration profile {text!r}: {_USAGE}")
        return _ADAPTER.validate_python(data)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        detail = _validation_detail(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"concentration profile {text!r}: {detail}; {_USAGE}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validation_detail(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'][1:]) or 'value'}: {err['msg']}"
        for err in exc.errors()
    )
