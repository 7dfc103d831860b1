"""Hand-off of computing results from the DSP thread to the control loop.

``ComputingState.publish`` calls ``ResultFeed.post`` for every result: one append to a
bounded deque (atomic in CPython). Once the whole frame is processed, the analyzer calls
``flush``, which wakes the control loop with one thread-safe call unless a drain is pending
already; so the control loop sees each frame's results together. Nothing on the DSP thread
waits, locks or depends on how many actions there are. When the control loop lags and the
deque is full, the oldest result is dropped and counted; the control loop coalesces what it
drains to the newest result per node (counted per action), so a lagging loop catches up
instead of falling behind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from firmware.state import ComputingResult


class ResultFeed:
    """Every published result, waiting for the control loop."""

    def __init__(self, capacity: int = 1024) -> None:
        self._results: deque[ComputingResult] = deque(maxlen=capacity)
        self.capacity = capacity
        self.posted = 0
        self.taken = 0
        self.dropped = 0
        self._wake: Callable[[], None] | None = None
        self._wake_pending = False

    def connect(self, wake: Callable[[], None]) -> None:
        """Set the thread-safe callable that schedules a drain on the control loop."""
        self._wake = wake

    def post(self, result: ComputingResult) -> None:
        """DSP thread: queue one result; drop the oldest (counted) when full; never blocks."""
        results = self._results
        if len(results) == self.capacity:
            self.dropped += 1
        results.append(result)
        self.posted += 1

    def flush(self) -> None:
        """DSP thread, after each frame: wake the control loop if results wait and no drain
        is pending already."""
        if not self._wake_pending and self._wake is not None and self._results:
            self._wake_pending = True
            self._wake()

    def drain(self) -> list[ComputingResult]:
        """Control loop: everything queued, oldest first. The pending flag is cleared first,
        so a result posted during the drain is either taken or schedules a new wake-up."""
        self._wake_pending = False
        taken: list[ComputingResult] = []
        results = self._results
        while True:
            try:
                taken.append(results.popleft())
            except IndexError:
                self.taken += len(taken)
                return taken


def newest_per_node(results: list[ComputingResult]) -> dict[str, ComputingResult]:
    """Coalesce a drained batch to the newest result of each node (insertion-ordered)."""
    newest: dict[str, ComputingResult] = {}
    for result in results:
        newest[result.node_id] = result
    return newest
