"""ComputingState: the latest result of every computing node, shared across threads.

The DSP thread publishes a new immutable ``ComputingResult`` per node and frame by replacing
one dict entry (an atomic operation under the GIL); readers take the whole object. Nothing
is ever mutated in place, so a reader always sees one consistent result and never blocks the
writer: no lock is taken on the hot path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, NamedTuple


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: NaN/inf -> None, numpy -> Python, unknown -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            return json_safe(tolist())
        except Exception:  # a failing tolist(): fall back to str below
            pass
    return str(value)


def iso_utc(epoch_s: float) -> str:
    """ISO 8601 UTC string with millisecond precision for an epoch timestamp."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds")


class AverageStatistics(NamedTuple):
    """What a ``cycle_average`` result adds to its means: which inlet and cycle it belongs
    to, how many results it averages and their spread (sample standard deviations, NaN below
    two results), and the window it covers (epoch seconds)."""

    source_kind: str
    n: int
    concentration_std: float = math.nan
    amplitude_std: float = math.nan
    inlet: str | None = None
    cycle: int = 0
    started: float = math.nan
    ended: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN becomes None)."""
        return {k: json_safe(v) for k, v in self._asdict().items()}


class ComputingResult(NamedTuple):
    """One node's output for one frame. Unknown values are NaN (``None`` once serialised).

    A NamedTuple: immutable, and built in C, which matters because every computing node makes
    one per frame on the DSP thread.
    """

    node_id: str
    kind: str
    timestamp: float
    monotonic: float
    sequence: int
    detected: bool = False
    frequency_hz: float = math.nan
    amplitude: float = math.nan
    amplitude_db: float = math.nan
    snr_db: float = math.nan
    coherence: float = math.nan
    phase_rad: float = math.nan
    concentration_ppm: float = math.nan
    source_node_id: str | None = None
    clamped: bool = False
    #: The measurement-cycle phase the frame was captured in (None when no cycle runs).
    phase: str | None = None
    #: Quality flags carried on the record, as commercial analyzers flag each one: short
    #: snake_case names, e.g. ``outside_calibrated_range`` or a failed self-test check.
    flags: tuple[str, ...] = ()
    #: a ``cycle_average`` result's statistics (None on every other result)
    average: AverageStatistics | None = None

    def age_s(self, now_monotonic: float | None = None) -> float:
        """Seconds since the frame this result came from was captured."""
        return (time.monotonic() if now_monotonic is None else now_monotonic) - self.monotonic

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: NaN becomes None, timestamps as epoch seconds and ISO 8601 UTC."""
        out: dict[str, Any] = {}
        for name, value in self._asdict().items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        out["flags"] = list(self.flags)
        if self.average is not None:
            out["average"] = self.average.to_dict()
        out["time"] = iso_utc(self.timestamp)
        return out


class RecordMarks:
    """The phase and quality flags stamped on every result the nodes publish from now on.

    Written from control threads (the measurement cycle sets the phase, the self-test and the
    calibration their flags), read by the nodes on the DSP thread: each value is one attribute
    holding an immutable object, replaced whole, so a reader needs no lock and never blocks.
    Flags come from several owners; each owner replaces only its own set.

    >>> marks = RecordMarks()
    >>> marks.set_flags("selftest", ["mic_b_clipping"])
    >>> marks.set_flags("calibration", ["calibration_overdue"])
    >>> marks.flags
    ('calibration_overdue', 'mic_b_clipping')
    >>> marks.set_flags("selftest", [])
    >>> marks.flags
    ('calibration_overdue',)
    """

    def __init__(self) -> None:
        self.phase: str | None = None
        self.flags: tuple[str, ...] = ()
        self._by_owner: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def set_flags(self, owner: str, flags: Iterable[str]) -> None:
        """Replace the flags ``owner`` raises (an empty iterable clears them)."""
        with self._lock:
            self._by_owner[owner] = frozenset(flags)
            self.flags = tuple(sorted(set().union(*self._by_owner.values())))

    def flags_of(self, owner: str) -> frozenset[str]:
        """The flags ``owner`` currently raises."""
        return self._by_owner.get(owner, frozenset())


class ComputingState:
    """Latest result per node id; written by the DSP thread, read from anywhere."""

    def __init__(self) -> None:
        #: phase and flags the nodes stamp on each result they publish
        self.marks = RecordMarks()
        self._latest: dict[str, ComputingResult] = {}
        self._published: dict[str, int] = {}

    def publish(self, result: ComputingResult) -> None:
        """Replace the node's latest result and count it (DSP thread only). The count goes
        first: a reader that copies the results, then the counts, finds every result it
        holds counted (the actions' ResultFeed relies on it)."""
        node_id = result.node_id
        published = self._published
        published[node_id] = published.get(node_id, 0) + 1
        self._latest[node_id] = result

    def get(self, node_id: str) -> ComputingResult | None:
        """The node's latest result, or None if it has produced none yet."""
        return self._latest.get(node_id)

    def snapshot(self) -> dict[str, ComputingResult]:
        """A consistent copy of every node's latest result."""
        return dict(self._latest)

    def published(self) -> dict[str, int]:
        """A copy of how many results each node has published."""
        return dict(self._published)

    @property
    def updates(self) -> int:
        """Number of results published since start."""
        return sum(self.published().values())

    def get_status(self) -> dict[str, Any]:
        """Status dict: update count and the latest results, JSON-safe."""
        return {
            "updates": self.updates,
            "results": {k: v.to_dict() for k, v in self.snapshot().items()},
        }
