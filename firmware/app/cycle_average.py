"""What a measure phase is worth: the results it captured, and their average at its end.

:class:`CycleTap` runs on the DSP thread as a frame hook and costs it a few dict reads per
frame: it copies each new result of the averaged nodes that carries a measure phase into a
bounded deque (an atomic append, never waited on), and publishes the averages the cycle
thread left for it, so ComputingState keeps its one writer. :class:`PhaseWindow` is the cycle
thread's side: the results of one measure phase, reduced to a ``cycle_average`` result.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from statistics import fmean, stdev

from firmware.state import AverageStatistics, ComputingResult, ComputingState

#: the result kind of an average over one measure phase
CYCLE_AVERAGE_KIND = "cycle_average"
#: results kept between two drains by the cycle thread (minutes of frames at 12/s per node)
TAP_CAPACITY = 8192


def average_node_id(node_id: str, inlet: str | None) -> str:
    """The node id a node's cycle averages are published under (one per inlet).

    >>> average_node_id("co2", None), average_node_id("co2", "room")
    ('co2.cycle_average', 'co2.cycle_average.room')
    """
    base = f"{node_id}.{CYCLE_AVERAGE_KIND}"
    return base if inlet is None else f"{base}.{inlet}"


class CycleTap:
    """Frame hook (DSP thread): collects measure-phase results, publishes finished averages.

    >>> state = ComputingState()
    >>> tap = CycleTap(state, ["co2"], frozenset({"measure"}))
    >>> state.marks.phase = "measure"
    >>> state.publish(ComputingResult("co2", "concentration", 0.0, 1.0, 7,
    ...                               phase=state.marks.phase))
    >>> tap(); tap()   # the same result twice: taken once
    >>> [r.sequence for r in tap.drain()]
    [7]
    """

    def __init__(self, state: ComputingState, node_ids: Iterable[str],
                 measure_phases: frozenset[str]) -> None:
        self._state = state
        self._nodes = tuple(node_ids)
        self._measure = measure_phases
        self._last: dict[str, int] = {}
        self._taken: deque[ComputingResult] = deque(maxlen=TAP_CAPACITY)
        self._outbox: deque[ComputingResult] = deque()
        self.dropped = 0
        #: frames seen so far (counted when each call ends)
        self.frames = 0

    def __call__(self) -> None:
        """After each frame: take the new measure-phase results, publish waiting averages."""
        get, last, taken = self._state.get, self._last, self._taken
        for node_id in self._nodes:
            result = get(node_id)
            if result is None or last.get(node_id) == result.sequence:
                continue
            last[node_id] = result.sequence
            if result.phase in self._measure:
                if len(taken) == TAP_CAPACITY:
                    self.dropped += 1
                taken.append(result)
        outbox = self._outbox
        while outbox:
            self._state.publish(outbox.popleft())
        self.frames += 1

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The nodes whose results are taken."""
        return self._nodes

    def drain(self) -> list[ComputingResult]:
        """Cycle thread: every result taken since the last drain, oldest first."""
        out: list[ComputingResult] = []
        while True:
            try:
                out.append(self._taken.popleft())
            except IndexError:
                return out

    def publish_later(self, result: ComputingResult) -> None:
        """Cycle thread: have the DSP thread publish ``result`` after its next frame."""
        self._outbox.append(result)


class PhaseWindow:
    """The results of one measure phase (one inlet, one cycle), per averaged node."""

    def __init__(self, phase: str, inlet: str | None, cycle: int,
                 node_kinds: Mapping[str, str], started_monotonic: float) -> None:
        self.phase, self.inlet, self.cycle = phase, inlet, cycle
        self._kinds = dict(node_kinds)
        self.started_monotonic = started_monotonic
        self.started = time.time()
        self._results: dict[str, list[ComputingResult]] = {n: [] for n in node_kinds}

    def add(self, results: Iterable[ComputingResult]) -> None:
        """Keep the results stamped with this phase, captured since it started (a result
        stamped with a same-named phase of an earlier window arrives late: left out)."""
        for result in results:
            bucket = self._results.get(result.node_id)
            if bucket is not None and result.phase == self.phase and \
                    result.monotonic >= self.started_monotonic:
                bucket.append(result)

    def count(self, node_id: str) -> int:
        """Results kept so far of ``node_id``."""
        return len(self._results.get(node_id, ()))

    def averages(self, sequence: int, now_monotonic: float) -> list[ComputingResult]:
        """One ``cycle_average`` result per node: means of the detected results' values,
        sample standard deviations, ``n`` the results averaged."""
        ended = time.time()
        out = []
        for node_id, results in self._results.items():
            kind = self._kinds[node_id]
            used = [r for r in results if r.detected]
            primary = "concentration_ppm" if kind == "concentration" else "amplitude"
            n = sum(math.isfinite(getattr(r, primary)) for r in used)
            conc, conc_std = _mean_std(r.concentration_ppm for r in used)
            amp, amp_std = _mean_std(r.amplitude for r in used)
            out.append(ComputingResult(
                node_id=average_node_id(node_id, self.inlet), kind=CYCLE_AVERAGE_KIND,
                timestamp=ended, monotonic=now_monotonic, sequence=sequence, detected=n > 0,
                frequency_hz=_mean_std(r.frequency_hz for r in used)[0], amplitude=amp,
                amplitude_db=_mean_std(r.amplitude_db for r in used)[0],
                concentration_ppm=conc, source_node_id=node_id, phase=self.phase,
                average=AverageStatistics(
                    source_kind=kind, n=n, concentration_std=conc_std, amplitude_std=amp_std,
                    inlet=self.inlet, cycle=self.cycle, started=self.started, ended=ended)))
        return out


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN when too few)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return fmean(finite), (stdev(finite) if len(finite) > 1 else math.nan)
