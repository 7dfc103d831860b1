"""The T90 response time of a concentration step found in a regularly sampled series.

Definition (docs/detection-limit.md): the record's largest step is located where the means of
the ``window`` samples before and after a sample differ most. The pre-step level is the
median of the samples before that window, the post-step level the median of those after it.
The step counts only when it exceeds ``MIN_STEP_SIGMAS`` times the series' white noise
(estimated from the spread of consecutive differences, so a slow drift does not count).
With ``r = (y - pre) / (post - pre)``, ``t90`` is the first time ``r`` reaches 0.9 and
``t10`` the last time before it that ``r`` rises through 0.1, both interpolated linearly
between samples; **T90 = t90 - t10**: the 10 %-to-90 % rise (or fall) time. It leaves out
the dead time before the response starts, which a record alone cannot know.

>>> import numpy as np
>>> t = np.arange(600) * 0.1
>>> y = 400.0 + 2000.0 * np.clip((t - 20.0) / 10.0, 0.0, 1.0)  # a 10 s linear ramp
>>> step = find_step(y, 0.1)
>>> round(step.t90_s, 2), step.pre, step.post
(8.0, 400.0, 2400.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a step smaller than this many noise standard deviations is no step
MIN_STEP_SIGMAS = 10.0
#: the shortest search window, in samples
MIN_WINDOW = 8


@dataclass(frozen=True)
class Step:
    """A step: its levels, when it crossed 10 % and 90 % (s from the start), and T90."""

    pre: float
    post: float
    t10_at_s: float
    t90_at_s: float
    noise: float

    @property
    def t90_s(self) -> float:
        """The 10 %-to-90 % response time in seconds."""
        return self.t90_at_s - self.t10_at_s

    @property
    def size(self) -> float:
        """post - pre (negative for a falling step)."""
        return self.post - self.pre


def white_noise(values: np.ndarray) -> float:
    """Robust standard deviation of the sample-to-sample noise (MAD of the differences)."""
    diff = np.diff(values[np.isfinite(values)])
    if diff.shape[0] == 0:
        return math.nan
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0))


def _crossing(r: np.ndarray, i: int, level: float, dt_s: float) -> float:
    """Time at which ``r`` passes ``level`` between samples ``i - 1`` and ``i``."""
    a, b = r[i - 1], r[i]
    frac = 0.0 if b == a else (level - a) / (b - a)
    return float((i - 1 + min(max(frac, 0.0), 1.0)) * dt_s)


def find_step(values: np.ndarray, dt_s: float, *, window: int | None = None) -> Step | None:
    """The largest step of ``values`` (sampled every ``dt_s`` s), or None when there is none
    clearly above the noise (see the module's definition)."""
    y = np.asarray(values, dtype=float)
    finite = np.isfinite(y)
    if finite.sum() < 4 * MIN_WINDOW:
        return None
    y = np.where(finite, y, np.interp(np.arange(y.shape[0]), np.flatnonzero(finite),
                                      y[finite]))
    n = y.shape[0]
    w = window or max(MIN_WINDOW, n // 10)
    if n < 4 * w:
        return None
    total = np.concatenate(([0.0], np.cumsum(y)))
    k = np.arange(w, n - w + 1)
    jump = (total[k + w] - total[k]) / w - (total[k] - total[k - w]) / w
    at = int(k[np.argmax(np.abs(jump))])
    pre = float(np.median(y[:max(at - w, 1)]))
    post = float(np.median(y[min(at + w, n - 1):]))
    noise = white_noise(y)
    if not math.isfinite(noise) or abs(post - pre) < MIN_STEP_SIGMAS * max(noise, 1e-300):
        return None
    r = (y - pre) / (post - pre)
    start = max(at - w, 1)
    above = np.flatnonzero(r[start:] >= 0.9)
    if above.shape[0] == 0:
        return None
    i90 = start + int(above[0])
    idx = np.arange(1, i90 + 1)
    rising = idx[(r[idx] >= 0.1) & (r[idx - 1] < 0.1)]
    if rising.shape[0] == 0:
        return None
    i10 = int(rising[-1])
    return Step(pre=pre, post=post, t10_at_s=_crossing(r, i10, 0.1, dt_s),
                t90_at_s=_crossing(r, i90, 0.9, dt_s), noise=noise)
