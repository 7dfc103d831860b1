"""Persistent key-value store of one PythonAction (``api.store`` in scripts).

JSON values in one file per action under the state dir, written atomically (temporary file,
fsync, rename) on every change, so a killed or reloaded worker, a restarted appliance and a
power cut all keep the last completed write. The whole store is capped in size so a script
cannot fill the disk.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

KEY_MAX_CHARS = 200
log = logging.getLogger("pafw.store")


class ScriptStore:
    """get/set/delete/keys of JSON values, size-capped, durable."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self.writes = 0
        #: what happened to an unreadable store file at start (None when there was none)
        self.recovered: str | None = None
        if path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                # a damaged file must not keep the action (or the appliance) from starting:
                # it is kept aside for whoever wants to look, and the store starts empty
                broken = path.with_suffix(".corrupt")
                path.replace(broken)
                self.recovered = (f"store {path} was unreadable ({exc}); kept as {broken}, "
                                  f"starting empty")
                log.warning("%s", self.recovered)
                return
            if isinstance(loaded, dict):
                self._data = loaded

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        with self._lock:
            return self._data.get(_check_key(key), default)

    def keys(self) -> list[str]:
        """All keys, sorted."""
        with self._lock:
            return sorted(self._data)

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value; ValueError if it is not JSON or the store would exceed its cap."""
        key = _check_key(key)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"store value for {key!r} is not JSON: {exc}") from None
        with self._lock:
            candidate = {**self._data, key: value}
            self._write(candidate)
            self._data = candidate

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        key = _check_key(key)
        with self._lock:
            if key not in self._data:
                return False
            candidate = {k: v for k, v in self._data.items() if k != key}
            self._write(candidate)
            self._data = candidate
            return True

    def _write(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"), sort_keys=True)
        size = len(text.encode())
        if size > self.max_bytes:
            raise ValueError(f"store would hold {size} bytes, above its cap of "
                             f"{self.max_bytes} (store_max_kb); delete keys first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self.writes += 1

    def get_status(self) -> dict[str, Any]:
        """Keys, bytes used, the cap and a recovery at start (``recovered``)."""
        with self._lock:
            used = len(json.dumps(self._data, separators=(",", ":")).encode())
            return {"keys": len(self._data), "bytes": used, "max_bytes": self.max_bytes,
                    "writes": self.writes, "recovered": self.recovered}


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > KEY_MAX_CHARS:
        raise ValueError(f"store keys are non-empty strings of at most {KEY_MAX_CHARS} "
                         f"characters, got {key!r}")
    return key
