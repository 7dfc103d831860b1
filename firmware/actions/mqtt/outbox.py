"""Outbox: the durable queue of MQTT messages that the broker has not acknowledged yet.

A message is written here *before* it is handed to the MQTT client and deleted only when the
broker's PUBACK arrives, so a broker outage, a network cut or a ``kill -9`` of the process
loses nothing: the next process (same state dir) sends what is left, in order.

Storage is one SQLite file in WAL mode with ``synchronous=FULL``. WAL with NORMAL already
survives a killed process (the WAL lives in the page cache, the kernel writes it out), but
after a *power cut* NORMAL may roll back the last commits, and with them the sequence counter:
sequence numbers that already reached the broker would then be issued again and consumers
that deduplicate on ``seq`` would drop new data. FULL fsyncs every commit; at measurement rates
(a few messages per second at most) that costs nothing that matters, even on an SD card.

Row ids are AUTOINCREMENT, so they never repeat and their order is the insertion order. The
per-device sequence and the drop counter live in a ``meta`` table and are updated in the same
transaction as the rows they describe. One lock serialises all access: paho's network thread
(removals on PUBACK) and the control thread (additions) share one connection.

Example::

    >>> import tempfile, pathlib
    >>> with Outbox(pathlib.Path(tempfile.mkdtemp()) / "o.sqlite3", max_messages=2) as box:
    ...     _ = [box.add("t", b"%d" % i, qos=1, retain=False) for i in range(3)]
    ...     [m.payload for m in box.pending(10)], box.dropped
    ([b'1', b'2'], 1)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from firmware.errors import ActionError

_T = TypeVar("_T")


class OutboxError(ActionError, OSError):
    """Raised when the outbox file cannot be opened, read or written."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One stored message; ``row_id`` orders messages and identifies them for removal."""

    row_id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0), ('dropped', 0);
"""


class Outbox:
    """Bounded, ordered, persistent message queue (drop-oldest when full).

    Only one process may use a file at a time: an advisory lock on ``<path>.lock`` is taken
    at open (released by the kernel even on ``kill -9``) and a second opener gets an
    ``OutboxError`` instead of two senders interleaving the same rows.
    """

    def __init__(self, path: Path, *, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        #: (dropped, last_seq) when closed, so a final status still has them
        self._closed_counts: tuple[int | None, int | None] = (None, None)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutboxError(f"cannot create the MQTT outbox {self.path}: {exc}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise OutboxError(f"MQTT outbox {self.path} is in use by another process "
                              "(two appliances must not share a state dir)") from None
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._count = self._scalar("SELECT COUNT(*) FROM messages")
        except sqlite3.Error as exc:
            self.close()
            raise OutboxError(f"cannot open the MQTT outbox {self.path}: {exc} "
                              "(move the file away to start with an empty outbox)") from None

    # -- helpers -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"MQTT outbox {self.path} is closed")
        return self._db

    def _scalar(self, sql: str, *args: Any) -> int:
        row = self._conn().execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` in one IMMEDIATE transaction under the lock; errors become OutboxError."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):  # rolled back: resync the count
                    self._count = self._scalar("SELECT COUNT(*) FROM messages")
                raise OutboxError(f"MQTT outbox {self.path}: {exc}") from None

    @staticmethod
    def _bump(db: sqlite3.Connection, key: str, by: int = 1) -> int:
        db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (by, key))
        return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def _insert(self, db: sqlite3.Connection, topic: str, payload: bytes, qos: int,
                retain: bool) -> int:
        cur = db.execute(
            "INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
            (topic, bytes(payload), int(qos), int(bool(retain)), time.time()))
        self._count += 1
        excess = self._count - self.max_messages
        if excess > 0:
            db.execute("DELETE FROM messages WHERE id IN "
                       "(SELECT id FROM messages ORDER BY id LIMIT ?)", (excess,))
            self._bump(db, "dropped", excess)
            self._count -= excess
        return int(cur.lastrowid or 0)

    # -- public API ------------------------------------------------------------------------

    def next_seq(self) -> int:
        """Allocate the next per-device sequence number (1, 2, ...; persisted, never reused)."""
        return self._write(lambda db: self._bump(db, "seq"))

    def add(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> int:
        """Store a message and return its row id; drops (and counts) the oldest when full."""
        return self._write(lambda db: self._insert(db, topic, payload, qos, retain))

    def add_sequenced(self, topic: str, make_payload: Callable[[int], bytes], *, qos: int,
                      retain: bool) -> tuple[int, int]:
        """Allocate a sequence number and store ``make_payload(seq)`` in ONE transaction.

        Returns ``(seq, row_id)``. Unlike ``next_seq()`` followed by ``add()``, a crash can
        neither burn a sequence number without storing its message nor store two messages
        out of sequence order: rows are inserted in the order their numbers were issued.
        """
        def txn(db: sqlite3.Connection) -> tuple[int, int]:
            seq = self._bump(db, "seq")
            return seq, self._insert(db, topic, make_payload(seq), qos, retain)

        return self._write(txn)

    def pending(self, limit: int, *, after: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` stored messages with row id > ``after``, oldest first."""
        with self._lock:
            try:
                rows = self._conn().execute(
                    "SELECT id, topic, payload, qos, retain, created FROM messages "
                    "WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"MQTT outbox {self.path}: {exc}") from None
        return [OutboxMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def remove(self, row_id: int) -> bool:
        """Delete a message (acknowledged by the broker); False if it was already gone."""
        def txn(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM messages WHERE id = ?", (row_id,)).rowcount > 0
            self._count -= int(gone)
            return gone

        return self._write(txn)

    def __len__(self) -> int:
        return self._count

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, since the file was created."""
        with self._lock:
            return self._scalar("SELECT value FROM meta WHERE key = 'dropped'")

    def get_status(self) -> dict[str, Any]:
        """Status: pending, dropped, oldest_age_s (None when empty), max_messages, last_seq."""
        with self._lock:
            if self._db is None:  # closed: the counters as they were at the close
                return {"pending": self._count, "dropped": self._closed_counts[0],
                        "oldest_age_s": None, "max_messages": self.max_messages,
                        "last_seq": self._closed_counts[1], "closed": True}
            row = self._db.execute("SELECT MIN(created) FROM messages").fetchone()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        oldest = row[0] if row else None
        return {
            "pending": self._count,
            "dropped": int(meta.get("dropped", 0)),
            "oldest_age_s": None if oldest is None else round(max(0.0, time.time() - oldest), 3),
            "max_messages": self.max_messages,
            "last_seq": int(meta.get("seq", 0)),
        }

    def close(self) -> None:
        """Close the database and release the file lock; idempotent."""
        with self._lock:
            if getattr(self, "_db", None) is not None:
                try:  # a database that failed to open has no counters to keep
                    meta = dict(self._db.execute(  # type: ignore[union-attr]
                        "SELECT key, value FROM meta").fetchall())
                    self._closed_counts = (int(meta.get("dropped", 0)),
                                           int(meta.get("seq", 0)))
                except sqlite3.Error:
                    pass
                self._db.close()  # type: ignore[union-attr]
                self._db = None
            if getattr(self, "_lock_fd", -1) >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
