"""Allan-Werle deviation of a regularly sampled series: the detection limit of an analyzer.

The overlapping Allan variance at averaging time ``tau = m * dt`` is half the mean squared
difference of consecutive ``m``-sample averages, taken at every start sample::

    sigma^2(tau) = 1 / (2 (N - 2m + 1)) * sum_k (mean(y[k+m : k+2m]) - mean(y[k : k+m]))^2

White noise falls as ``tau^-1/2``; drift makes the curve turn up again. The minimum is the
best averaging time and ``3 sigma`` there the best detection limit (LOD). Windows holding a
missing value (NaN) are left out of the sums, so a series with gaps gives the deviation of
the data that is there instead of an error.

Computed with cumulative sums, one vectorised pass per averaging time: a day of one-second
values (86 400) over 50 averaging times takes milliseconds.

>>> import numpy as np
>>> y = np.random.default_rng(1).normal(0.0, 1.0, 20000)
>>> adev = allan_deviation(y, dt_s=1.0)
>>> round(float(adev.sigma[0]), 1), float(adev.tau_s[0])
(1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: the longest averaging time, as a fraction of the record (fewer windows: no estimate)
MAX_FRACTION = 1.0 / 3.0
#: averaging times per decade
PER_DECADE = 12
#: the detection limit is this many standard deviations
LOD_SIGMAS = 3.0


@dataclass(frozen=True)
class AllanDeviation:
    """The curve: averaging times (s), deviations (unit of the series) and window pairs."""

    tau_s: np.ndarray
    sigma: np.ndarray
    pairs: np.ndarray
    dt_s: float

    @property
    def empty(self) -> bool:
        """True when the series was too short for any averaging time."""
        return bool(self.tau_s.shape[0] == 0)

    def optimum(self) -> tuple[float, float]:
        """The averaging time of the smallest deviation and that deviation (NaN if empty)."""
        finite = np.isfinite(self.sigma)
        if not finite.any():
            return math.nan, math.nan
        i = int(np.argmin(np.where(finite, self.sigma, np.inf)))
        return float(self.tau_s[i]), float(self.sigma[i])

    def sigma_at(self, tau_s: float) -> float:
        """The deviation at ``tau_s``, interpolated log-log between the computed times (NaN
        outside them)."""
        finite = np.isfinite(self.sigma) & (self.sigma > 0)
        taus, sigmas = self.tau_s[finite], self.sigma[finite]
        if taus.shape[0] == 0 or not taus[0] <= tau_s <= taus[-1]:
            return math.nan
        return float(np.exp(np.interp(math.log(tau_s), np.log(taus), np.log(sigmas))))

    def white_sigma(self, tau_s: np.ndarray) -> np.ndarray:
        """The white-noise line through the first point: ``sigma(tau0) * (tau/tau0)^-1/2``."""
        taus = np.asarray(tau_s, dtype=float)
        if self.empty:
            return np.full(taus.shape, np.nan)
        out: np.ndarray = self.sigma[0] * np.sqrt(self.tau_s[0] / taus)
        return out

    def slope(self, tau_min_s: float, tau_max_s: float) -> float:
        """The log-log slope fitted between two averaging times (-0.5 for white noise)."""
        keep = ((self.tau_s >= tau_min_s) & (self.tau_s <= tau_max_s)
                & np.isfinite(self.sigma) & (self.sigma > 0))
        if keep.sum() < 2:
            return math.nan
        return float(np.polyfit(np.log(self.tau_s[keep]), np.log(self.sigma[keep]), 1)[0])


def averaging_factors(n: int, *, per_decade: int = PER_DECADE,
                      max_fraction: float = MAX_FRACTION) -> np.ndarray:
    """Window lengths in samples, log-spaced from 1 up to ``max_fraction`` of ``n``, distinct.

    The points lie on one fixed grid (``per_decade`` per decade, rounded), not on one spread
    over each record's length, and the last is a third of the record: as a live record grows,
    the points already there stay put and only the long end moves, so two curves of the same
    trend line up.

    >>> averaging_factors(30).tolist()
    [1, 2, 3, 4, 5, 6, 7, 8, 10]
    >>> averaging_factors(31).tolist() == averaging_factors(30).tolist()
    True
    """
    top = int(n * max_fraction)
    if top < 1:
        return np.empty(0, dtype=np.int64)
    count = math.floor(math.log10(top) * per_decade + 1e-9) + 1
    grid = np.round(10.0 ** (np.arange(count) / per_decade)).astype(np.int64)
    return np.unique(np.append(grid[grid <= top], top))


def allan_deviation(values: np.ndarray, dt_s: float, *, per_decade: int = PER_DECADE,
                    max_fraction: float = MAX_FRACTION) -> AllanDeviation:
    """The overlapping Allan deviation of ``values`` sampled every ``dt_s`` seconds, at
    averaging times from one sample to ``max_fraction`` of the record."""
    if not dt_s > 0:
        raise ValueError(f"dt_s must be > 0, got {dt_s!r}")
    y = np.asarray(values, dtype=float).ravel()
    valid = np.isfinite(y)
    total = np.concatenate(([0.0], np.cumsum(np.where(valid, y, 0.0))))
    counts = np.concatenate(([0], np.cumsum(valid)))
    factors = averaging_factors(y.shape[0], per_decade=per_decade, max_fraction=max_fraction)
    sigma = np.full(factors.shape[0], np.nan)
    pairs = np.zeros(factors.shape[0], dtype=np.int64)
    for i, m in enumerate(factors):
        means = (total[m:] - total[:-m]) / m  # mean of y[k:k+m] for every k
        whole = (counts[m:] - counts[:-m]) == m
        diff = means[m:] - means[:-m]
        ok = whole[m:] & whole[:-m]
        pairs[i] = int(ok.sum())
        if pairs[i] > 0:
            sigma[i] = math.sqrt(0.5 * float(np.mean(diff[ok] ** 2)))
    return AllanDeviation(tau_s=factors * dt_s, sigma=sigma, pairs=pairs, dt_s=float(dt_s))


def regular_series(times_s: np.ndarray, values: np.ndarray, dt_s: float) -> np.ndarray:
    """``values`` placed on a regular grid of ``dt_s`` from the first time, NaN where a time
    is missing (the trend's one-second buckets of an appliance that was stopped a while).

    >>> regular_series(np.array([10.5, 11.5, 13.5]), np.array([1.0, 2.0, 4.0]), 1.0).tolist()
    [1.0, 2.0, nan, 4.0]
    """
    times = np.asarray(times_s, dtype=float)
    if times.shape[0] == 0:
        return np.empty(0)
    index = np.round((times - times[0]) / dt_s).astype(np.int64)
    out = np.full(int(index[-1]) + 1, np.nan)
    out[index] = values
    return out
