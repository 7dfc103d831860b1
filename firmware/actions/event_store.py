"""EventStore: the action events on disk, as JSON lines, so they survive a restart.

Triggers, clears, repeats, outcomes and operator changes (acknowledged, enabled, disabled,
reloaded) are appended to ``<state_dir>/events/events.jsonl``, one JSON object per line, as
``ActionEventLog`` records them. The file is bounded: past ``max_bytes`` it is renamed to
``events.jsonl.1`` (older ones shift up to ``.<backups>``, the oldest is deleted), so the log
never takes more than ``(backups + 1) * max_bytes`` of the SD card.

Each line is flushed when written (a crash of the process loses nothing already recorded);
it is not fsynced, so a power cut may lose the last seconds. A line cut short by a power cut
is skipped when reading. A disk that refuses writes is logged once and counted, never raised:
the alarm itself must not depend on its log.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

from firmware.state import json_safe

log = logging.getLogger("pafw.events")

EVENTS_DIR = "events"
EVENTS_FILE = "events.jsonl"
MAX_BYTES = 1_000_000
BACKUPS = 4


def events_path(state_dir: Path) -> Path:
    """The current events file of an appliance with this state dir."""
    return state_dir / EVENTS_DIR / EVENTS_FILE


class EventStore:
    """Append-only, rotated JSON-lines file of action events.

    >>> import tempfile
    >>> store = EventStore(Path(tempfile.mkdtemp()) / "events.jsonl", max_bytes=60)
    >>> for seq in range(1, 4):
    ...     store.append({"seq": seq, "kind": "trigger", "padding": "x" * 20})
    >>> [e["seq"] for e in store.read()], store.rotations
    ([1, 2, 3], 2)
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS
                 ) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError(f"max_bytes and backups must be >= 1, got {max_bytes}, {backups}")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.written = self.write_errors = self.rotations = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._size = 0

    def _files(self) -> list[Path]:
        """Oldest first: ``events.jsonl.<backups>`` ... ``.1``, ``events.jsonl``."""
        older = [self.path.with_name(f"{self.path.name}.{i}")
                 for i in range(self.backups, 0, -1)]
        return [*older, self.path]

    def read(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first (unreadable lines and files skipped)."""
        entries: list[dict[str, Any]] = []
        for path in self._files():
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot read the event log %s: %s", path, exc)
                continue
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a power cut
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        """Write one event as a line (rotating first when the file is full); never raises."""
        line = json.dumps(json_safe(entry), separators=(",", ":")) + "\n"
        with self._lock:
            try:
                if self._file is None:
                    self._open()
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                assert self._file is not None
                self._file.write(line)
                self._file.flush()
                self._size += len(line.encode("utf-8"))
                self.written += 1
            except (OSError, ValueError) as exc:
                self.write_errors += 1
                if self.last_error is None:
                    log.error("cannot write the event log %s: %s (events are still acted "
                              "on; later failures are counted in its status)", self.path, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self._close()
        files = self._files()
        files[0].unlink(missing_ok=True)
        for older, newer in itertools.pairwise(files):
            if newer.exists():
                os.replace(newer, older)
        self.rotations += 1
        self._open()

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        """Close the file; idempotent (a later append opens it again)."""
        with self._lock:
            self._close()

    def get_status(self) -> dict[str, Any]:
        """Where it writes, how much, and the last write error."""
        return {"path": str(self.path), "written": self.written,
                "write_errors": self.write_errors, "rotations": self.rotations,
                "max_bytes": self.max_bytes * (self.backups + 1),
                "last_error": self.last_error}
