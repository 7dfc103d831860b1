"""The status snapshot `pafw run` keeps in its state dir and `pafw status` reads.

Written atomically (temporary file, rename) every status interval and at shutdown, so a
reader (another process, an operator over SSH) always sees one complete snapshot. Readers
judge freshness from ``written_at`` and whether ``pid`` still runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from firmware.state import json_safe

SNAPSHOT_NAME = "status.json"


def snapshot_path(state_dir: Path) -> Path:
    """Where the snapshot of an appliance with this state dir lives."""
    return state_dir / SNAPSHOT_NAME


def write_snapshot(path: Path, status: dict[str, Any], *, state: str) -> None:
    """Write ``status`` plus ``state``, ``pid`` and ``written_at`` atomically."""
    payload = {"state": state, "pid": os.getpid(), "written_at": time.time(),
               **json_safe(status)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists (permission errors count as alive); a pid of 0
    or below names a process group or every process, never one appliance."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
