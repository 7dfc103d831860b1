"""Hand-off of computing results from the DSP thread to the control loop.

The DSP thread does nothing per result for the actions: ``ComputingState.publish`` already
keeps the newest result of each node and counts what each node published. ``flush`` wakes the
control loop with one thread-safe call unless a wake-up is pending already. It runs on the DSP
thread once after the next frame: each drain asks for it through ``schedule`` (the analyzer's
``call_after_next_frame``), so while a wake-up is pending the DSP thread tests one attribute
per frame and calls nothing, whatever the number of actions or results. (Without
``schedule``, call ``flush`` after every frame.)

The control loop's ``drain`` copies the state's newest results and counts (C-level dict
copies, atomic under the GIL) and returns each node whose result is new since the last drain,
with how many of its results were never taken (coalesced). So a control loop that lags, or a
DSP loop running far faster than real time, is met with the newest result per node; at real
time every result is taken.

Each side writes only its own fields: the DSP thread the state and the pending flag's set, the
control loop its ``_taken`` bookkeeping, the flag's clear and the schedule. Nothing is locked
and nothing on the DSP thread waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from firmware.state import ComputingResult, ComputingState


class FreshResult(NamedTuple):
    """A node's newest result, new since the previous drain."""

    result: ComputingResult
    #: results of the same node published before it and never taken (coalesced away)
    skipped: int


class ResultFeed:
    """What the control loop has taken of the results in a ComputingState."""

    def __init__(self, state: ComputingState, *,
                 schedule: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.state = state
        self._schedule = schedule
        self._wake: Callable[[], None] | None = None
        self._wake_pending = False
        self._taken: dict[str, ComputingResult] = {}
        self._counted: dict[str, int] = {}
        #: results published when the last drain counted them
        self.taken = 0

    @property
    def posted(self) -> int:
        """Results published so far."""
        return self.state.updates

    def connect(self, wake: Callable[[], None]) -> None:
        """Set the thread-safe callable that schedules a drain on the control loop."""
        self._wake = wake

    def flush(self) -> None:
        """DSP thread, after a frame: wake the control loop unless a drain is pending."""
        if not self._wake_pending and self._wake is not None:
            self._wake_pending = True
            self._wake()

    def drain(self) -> list[FreshResult]:
        """Control loop: the newest result of every node published since the last drain
        (in the order the nodes first published).

        The flag is cleared and the next flush scheduled before anything is copied, so a
        result published during the drain is either taken or flushed after its frame. The
        counts are copied after the results: a result published between the two copies is
        counted now and taken next time, when its ``skipped`` is one less; the sum of
        ``skipped`` is exact.
        """
        self._wake_pending = False
        if self._schedule is not None:
            self._schedule(self.flush)
        latest = self.state.snapshot()
        counts = self.state.published()
        taken, counted = self._taken, self._counted
        fresh: list[FreshResult] = []
        for node_id, result in latest.items():
            if taken.get(node_id) is result:
                continue
            count = counts[node_id]
            fresh.append(FreshResult(result, count - counted.get(node_id, 0) - 1))
            taken[node_id] = result
            counted[node_id] = count
        self.taken = sum(counts.values())
        return fresh
