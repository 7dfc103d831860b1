"""The control loop's timers on one clock grid: the next multiple of a period, strictly after
now, so timers whose periods divide one another come due at the same instants."""

from __future__ import annotations

import asyncio
import time

import pytest

from firmware.actions.timer_grid import next_multiple, seconds_to_next


def test_the_next_multiple_is_strictly_after_now() -> None:
    assert next_multiple(0.5, 12.3) == pytest.approx(12.5)
    assert next_multiple(0.5, 12.5) == pytest.approx(13.0), "on the grid: the next one"
    assert next_multiple(1.0, 0.0) == pytest.approx(1.0)


def test_periods_that_divide_one_another_meet() -> None:
    now = 1234.567
    slow = next_multiple(0.5, now)
    fast = next_multiple(0.1, now)
    while fast < slow - 1e-9:
        fast = next_multiple(0.1, fast)
    assert fast == pytest.approx(slow, abs=1e-9)


def test_seconds_to_next_uses_the_monotonic_clock() -> None:
    assert seconds_to_next(0.5, now=12.3) == pytest.approx(0.2)
    wait = seconds_to_next(0.25)
    due = time.monotonic() + wait
    assert 0.0 < wait <= 0.25
    assert due == pytest.approx(round(due / 0.25) * 0.25, abs=2e-3), "due on the grid"


def test_two_sleepers_on_the_grid_wake_in_the_same_loop_turn() -> None:
    """What the grid is for: one wake-up of the event loop serves both timers."""
    woke: list[float] = []

    async def sleeper(period: float) -> None:
        await asyncio.sleep(seconds_to_next(period))
        woke.append(asyncio.get_running_loop().time())

    async def main() -> None:
        await asyncio.gather(sleeper(0.05), sleeper(0.1), sleeper(0.1))

    asyncio.run(main())
    # the 0.05 s sleeper may come due half a period earlier; the two 0.1 s ones together
    assert abs(woke[-1] - woke[-2]) < 2e-3
