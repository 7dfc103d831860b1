"""Bounded, thread-safe history of what an action saw and did (the design study's buffer).

The control loop appends (updates, triggers, clears, outcomes of the action); status, API and
PythonAction RPC threads read. When full, the oldest entry is dropped. Reads return
*chronological* lists, oldest first and newest last, like the design study's
``CircularBuffer::iter``/``to_vec``; ``recent(n)`` is the last ``n`` entries in that order, so
``recent(1)[0]`` is the newest entry. Entries are immutable, so readers get them without
copies and a short lock only guards the deque itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from firmware.errors import ActionError
from firmware.state import iso_utc


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One history record: epoch ``timestamp``, ``kind`` ("update", "trigger", "clear",
    "repeat", "outcome", "cycle_average" (a measurement cycle's average, the whole result
    with its ``average`` statistics), ...) and JSON-compatible ``data``."""

    timestamp: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the time as epoch seconds and ISO 8601 UTC."""
        return {"timestamp": self.timestamp, "time": iso_utc(self.timestamp),
                "kind": self.kind, "data": dict(self.data)}


def _check_capacity(capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ActionError(f"history capacity must be an integer >= 1, got {capacity!r}")
    return capacity


class HistoryBuffer:
    """Ring buffer of the newest ``capacity`` entries.

    >>> h = HistoryBuffer(2)
    >>> for i in range(3):
    ...     _ = h.record("update", {"i": i}, timestamp=float(i))
    >>> [e.data["i"] for e in h.recent(5)], len(h), h.evicted
    ([1, 2], 2, 1)
    """

    def __init__(self, capacity: int = 100) -> None:
        self._entries: deque[HistoryEntry] = deque(maxlen=_check_capacity(capacity))
        self._lock = threading.Lock()
        self._appended = 0
        self._evicted = 0

    @property
    def capacity(self) -> int:
        """Maximum number of entries kept."""
        return self._entries.maxlen or 0

    @property
    def appended(self) -> int:
        """Entries appended since creation (including evicted and cleared ones)."""
        return self._appended

    @property
    def evicted(self) -> int:
        """Entries dropped because the buffer was full or resized smaller."""
        return self._evicted

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: HistoryEntry) -> None:
        """Add an entry, dropping the oldest one when full."""
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self._evicted += 1
            self._entries.append(entry)
            self._appended += 1

    def record(self, kind: str, data: Mapping[str, Any] | None = None, *,
               timestamp: float | None = None) -> HistoryEntry:
        """Build an entry (a copy of ``data``; now by default) and append it."""
        entry = HistoryEntry(time.time() if timestamp is None else timestamp, kind,
                             dict(data or {}))
        self.append(entry)
        return entry

    def recent(self, count: int | None = None) -> list[HistoryEntry]:
        """The newest ``count`` entries (all when None), oldest first, newest last."""
        with self._lock:
            if count is None or count >= len(self._entries):
                return list(self._entries)
            if count <= 0:
                return []
            return list(islice(self._entries, len(self._entries) - count, None))

    def get_recent_entries(self, count: int) -> list[dict[str, Any]]:
        """The design study's API: ``recent(count)`` as JSON-safe dicts, newest last."""
        return [e.to_dict() for e in self.recent(count)]

    def resize(self, new_capacity: int) -> None:
        """Change the capacity, keeping the newest entries when it shrinks."""
        _check_capacity(new_capacity)
        with self._lock:
            self._evicted += max(0, len(self._entries) - new_capacity)
            self._entries = deque(self._entries, maxlen=new_capacity)

    def clear(self) -> None:
        """Drop every entry (counters are kept: they describe the buffer's life)."""
        with self._lock:
            self._entries.clear()

    def get_status(self) -> dict[str, Any]:
        """Capacity, size and counters (a new dict each call)."""
        with self._lock:
            return {"capacity": self.capacity, "size": len(self._entries),
                    "appended": self._appended, "evicted": self._evicted}
