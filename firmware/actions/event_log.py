"""ActionEventLog: what the actions did, in order, for the live stream and the dashboard.

Handlers append on the control loop (triggers, clears, repeats, outcomes, an operator's
acknowledge/enable/disable/reload); readers on other threads (the web server) take what came
after the last sequence number they saw. Bounded: the oldest entries go first, and a reader
that fell behind learns how many it missed.

With an ``EventStore`` every entry is also written to disk, and the newest entries of the
previous runs are read back at start: sequence numbers go on where they stopped, so the
dashboard and ``GET /api/v1/events`` show what happened before a restart.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, NamedTuple

from firmware.actions.event_store import EventStore
from firmware.state import iso_utc


class ActionLogEntry(NamedTuple):
    """One thing an action did; ``seq`` grows by one per entry from 1."""

    seq: int
    action_id: str
    kind: str
    timestamp: float
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the ``action`` stream event)."""
        return {"seq": self.seq, "id": self.action_id, "kind": self.kind,
                "timestamp": self.timestamp, "time": iso_utc(self.timestamp),
                "data": self.data}


class ActionEventLog:
    """Bounded, thread-safe, sequence-numbered log of action events.

    >>> log = ActionEventLog(capacity=2)
    >>> for kind in ("trigger", "outcome", "clear"):
    ...     _ = log.record("relay", kind, {})
    >>> [e.kind for e in log.since(0)], log.last_seq
    (['outcome', 'clear'], 3)
    """

    def __init__(self, capacity: int = 1000, store: EventStore | None = None) -> None:
        self._entries: deque[ActionLogEntry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._seq = 0
        self.store = store
        #: entries read back from the store at start (events of earlier runs)
        self.restored = 0
        if store is not None:
            self._restore(store)

    def _restore(self, store: EventStore) -> None:
        """Load the newest stored entries; sequence numbers continue after the last one."""
        for raw in store.read():
            try:
                entry = ActionLogEntry(int(raw["seq"]), str(raw["id"]), str(raw["kind"]),
                                       float(raw["timestamp"]), dict(raw.get("data") or {}))
                iso_utc(entry.timestamp)  # a time no reader could show ("nan", 1e20)
            except (KeyError, TypeError, ValueError, OverflowError, OSError):
                continue
            if entry.seq > self._seq:  # a file edited by hand must not reorder the log
                self._entries.append(entry)
                self._seq = entry.seq
        self.restored = len(self._entries)

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest entry (0 before any)."""
        return self._seq

    def record(self, action_id: str, kind: str, data: dict[str, Any],
               timestamp: float | None = None) -> ActionLogEntry:
        """Append an entry (``data`` must be JSON-compatible and is not copied)."""
        with self._lock:
            self._seq += 1
            entry = ActionLogEntry(self._seq, action_id, kind,
                                   time.time() if timestamp is None else timestamp, data)
            self._entries.append(entry)
            if self.store is not None:
                self.store.append(entry.to_dict())
        return entry

    def close(self) -> None:
        """Close the store's file (a later record opens it again); idempotent."""
        if self.store is not None:
            self.store.close()

    def entries(self) -> list[ActionLogEntry]:
        """Every entry kept in memory, oldest first."""
        with self._lock:
            return list(self._entries)

    def get_status(self) -> dict[str, Any]:
        """Entries kept, the last sequence number and the store's status."""
        with self._lock:
            kept = len(self._entries)
        return {"kept": kept, "capacity": self._entries.maxlen, "last_seq": self._seq,
                "restored": self.restored,
                "store": None if self.store is None else self.store.get_status()}

    def since(self, seq: int, limit: int | None = None) -> list[ActionLogEntry]:
        """Entries after ``seq``, oldest first (at most the newest ``limit``)."""
        with self._lock:
            if seq >= self._seq:
                return []
            newer = [e for e in self._entries if e.seq > seq]
        return newer if limit is None else newer[-limit:]
