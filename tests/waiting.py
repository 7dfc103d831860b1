"""Waiting on conditions instead of on the clock.

A test that sleeps a fixed time and then asserts a count or a state depends on the
machine's pace: on a loaded CI runner the work takes longer and the test fails although the
product is right. Tests wait on the condition they need instead, with a bound generous
enough for a loaded two-core machine (the bound only decides how long a broken product takes
to fail, never whether a working one passes), and assert on the behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Default bound for a condition that takes well under a second on an idle machine.
GENEROUS_S = 30.0


def wait_until(predicate: Callable[[], object], timeout_s: float = GENEROUS_S,
               what: str = "the condition", *, poll_s: float = 0.02) -> None:
    """Poll ``predicate`` until it is truthy; AssertionError naming ``what`` after
    ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


def holds_for(predicate: Callable[[], object], duration_s: float, what: str = "the condition",
              *, poll_s: float = 0.02) -> None:
    """Assert that ``predicate`` stays truthy for ``duration_s`` seconds: for "nothing more
    happens" checks, where the wait is the observation window itself."""
    deadline = time.monotonic() + duration_s
    while True:
        if not predicate():
            raise AssertionError(f"{what} stopped holding")
        if time.monotonic() >= deadline:
            return
        time.sleep(poll_s)
