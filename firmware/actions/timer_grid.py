"""Periodic timers of the control loop on one grid of the monotonic clock.

The ticker (every ``tick_s``) and each python action's watchdog (every ``watchdog_interval_s``)
sleep until the next multiple of their period instead of a period after they last ran: with
periods that divide one another they come due at the same instants, and one wake-up of the
loop serves them all. Each wake-up of the control thread costs the DSP thread a hand-over of
the GIL; with four python actions this halves them while the actions are idle.

>>> seconds_to_next(0.5, now=12.3)
0.2
>>> seconds_to_next(0.1, now=12.0)
0.1
"""

from __future__ import annotations

import math
import time


def next_multiple(period_s: float, now: float) -> float:
    """The first multiple of ``period_s`` strictly after ``now``."""
    return (math.floor(now / period_s) + 1) * period_s


def seconds_to_next(period_s: float, now: float | None = None) -> float:
    """Seconds from ``now`` (default: the monotonic clock) to the next multiple of
    ``period_s``, rounded to the microsecond."""
    now = time.monotonic() if now is None else now
    return round(next_multiple(period_s, now) - now, 6)
