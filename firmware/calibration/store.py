"""Calibration records on disk: one JSON file per record, a pointer to the active one.

Layout under ``<state_dir>/calibration/``: ``records/<id>.json`` (never rewritten),
``checks/<id>.json`` (zero-drift checks) and ``active.json`` (the active record's id and the
activation history, newest last). Every file is written whole to a temporary name, fsynced,
renamed over the old one and the directory fsynced, so a power loss at any instant leaves
either the old file or the new one: the previously active record stays active until the
rename of ``active.json`` completes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from firmware.calibration.errors import CalibrationError, CalibrationNotFoundError
from firmware.calibration.record import CalibrationRecord
from firmware.state import iso_utc

ACTIVE_SCHEMA = 1
MAX_HISTORY = 1000
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content;
    CalibrationError when it cannot be written (the old content stays)."""
    try:
        _replace(path, data)
    except OSError as exc:
        raise CalibrationError(f"cannot write {path}: {exc.strerror or exc}; nothing was "
                               "changed") from None


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_id(record_id: str) -> str:
    if not record_id or len(record_id) > 64 or not set(record_id) <= _ID_CHARS \
            or record_id.startswith("."):
        raise CalibrationNotFoundError(f"{record_id!r} is not a calibration record id")
    return record_id


class RecordStore:
    """The records of one appliance (``root`` = ``<state_dir>/calibration``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records_dir = root / "records"
        self.checks_dir = root / "checks"
        self.active_path = root / "active.json"

    # ------------------------------------------------------------------ records
    def save(self, record: CalibrationRecord) -> None:
        """Store a new record (refused if its id exists)."""
        path = self.records_dir / f"{_check_id(record.id)}.json"
        if path.exists():
            raise CalibrationError(f"calibration record {record.id} exists already")
        atomic_write(path, json.dumps(record.to_dict(), indent=2, allow_nan=False).encode())

    def load(self, record_id: str) -> CalibrationRecord:
        """The record ``record_id``; CalibrationNotFoundError if there is none."""
        path = self.records_dir / f"{_check_id(record_id)}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalibrationNotFoundError(
                f"no calibration record {record_id!r} (see `pafw calibrate list`)") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc})") from None
        record = CalibrationRecord.from_dict(data)
        if record.id != record_id:
            raise CalibrationError(f"{path}: holds record {record.id!r}, not {record_id!r}")
        return record

    def ids(self) -> list[str]:
        """Every stored record id, oldest first (ids sort by creation time)."""
        if not self.records_dir.is_dir():
            return []
        return sorted(p.stem for p in self.records_dir.glob("*.json")
                      if not p.name.startswith("."))

    def records(self) -> list[CalibrationRecord]:
        """Every readable record, oldest first (an unreadable file is skipped)."""
        out = []
        for record_id in self.ids():
            try:
                out.append(self.load(record_id))
            except CalibrationError:
                continue
        return out

    # ------------------------------------------------------------ active pointer
    def _pointer(self) -> dict[str, Any]:
        try:
            data = json.loads(self.active_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"schema": ACTIVE_SCHEMA, "active": None, "history": []}
        except ValueError as exc:
            raise CalibrationError(f"{self.active_path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or "active" not in data:
            raise CalibrationError(f"{self.active_path}: not a calibration pointer")
        data.setdefault("history", [])
        return data

    def active_id(self) -> str | None:
        """The active record's id (None: the YAML coefficients apply)."""
        active = self._pointer()["active"]
        return None if active is None else str(active)

    def history(self) -> list[dict[str, Any]]:
        """Activations, oldest first: id (None = YAML), time, action, operator."""
        return list(self._pointer()["history"])

    def set_active(self, record_id: str | None, *, action: str, operator: str = "") -> None:
        """Make ``record_id`` (or none: the YAML coefficients) the active record."""
        if record_id is not None:
            self.load(record_id)  # exists and parses
        pointer = self._pointer()
        now = time.time()
        history = [*pointer["history"], {"id": record_id, "at": iso_utc(now), "epoch": now,
                                         "action": action, "operator": operator}]
        document = {"schema": ACTIVE_SCHEMA, "active": record_id,
                    "history": history[-MAX_HISTORY:]}
        atomic_write(self.active_path, json.dumps(document, indent=2).encode())

    def previous_id(self) -> str | None:
        """What a rollback would activate: the record active before the current one (None:
        the YAML coefficients). CalibrationError when there is nothing to go back to."""
        history = self.history()
        current = self.active_id()
        # walk back over activations, skipping those of the current record
        ids = [h.get("id") for h in history]
        while ids and ids[-1] == current:
            ids.pop()
        if not history or (not ids and current is None):
            raise CalibrationError("nothing to roll back to: no earlier calibration was active")
        return ids[-1] if ids else None

    # ------------------------------------------------------------------ checks
    def save_check(self, check: dict[str, Any]) -> None:
        """Store a zero-drift check result."""
        path = self.checks_dir / f"{_check_id(str(check['id']))}.json"
        atomic_write(path, json.dumps(check, indent=2, allow_nan=False).encode())

    def checks(self) -> list[dict[str, Any]]:
        """Every stored zero-drift check, oldest first."""
        if not self.checks_dir.is_dir():
            return []
        out = []
        for path in sorted(self.checks_dir.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                continue
        return out
