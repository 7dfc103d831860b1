"""TrendStore: the one-second trend buckets on disk, so a restart keeps the trend.

One file per computing node, ``<state_dir>/trend/<field>/<node_id>.f64``: rows of four
little-endian float64 (bucket centre in epoch seconds, mean, min, max), oldest first. Every
``SAVE_INTERVAL_S`` the buckets closed since the last save are *appended* (32 bytes per node
and second, about 2.8 MB a day: an SD card is not rewritten every minute). A file grown past
twice the trend's capacity is rewritten atomically (temporary file, fsync, rename) with the
newest ``capacity`` rows, so it stays bounded.

A power cut loses at most the buckets of the last interval; a row cut short is ignored when
reading. ``read_trend`` is also what ``pafw export`` reads, with or without a running appliance.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from firmware.app.trend import TREND_FIELDS, NodeTrend, TrendRecorder

log = logging.getLogger("pafw.web")

TREND_DIR = "trend"
SAVE_INTERVAL_S = 60.0
ROW = np.dtype("<f8")
ROW_BYTES = 4 * ROW.itemsize
SUFFIX = ".f64"


def trend_dir(state_dir: Path) -> Path:
    """Where an appliance with this state dir keeps its trend files."""
    return state_dir / TREND_DIR


def read_trend(path: Path, *, last: int | None = None) -> np.ndarray:
    """The rows of one trend file as an (n, 4) array, oldest first (the newest ``last``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return np.empty((0, 4))
    whole = len(raw) // ROW_BYTES * ROW_BYTES  # a row cut short by a power cut is dropped
    rows = np.frombuffer(raw[:whole], dtype=ROW).reshape(-1, 4)
    rows = rows[np.isfinite(rows).all(axis=1)]
    return rows if last is None else rows[-last:]


def stored_trends(state_dir: Path) -> dict[str, tuple[str, Path]]:
    """Node id -> (field, file) of every trend file under ``state_dir``."""
    found: dict[str, tuple[str, Path]] = {}
    base = trend_dir(state_dir)
    fields = {field for field, _unit in TREND_FIELDS.values()}
    for field in sorted(fields):
        directory = base / field
        if directory.is_dir():
            for path in sorted(directory.glob(f"*{SUFFIX}")):
                found[path.name.removesuffix(SUFFIX)] = (field, path)
    return found


class TrendStore:
    """Saves a TrendRecorder's closed buckets incrementally and restores them at start."""

    def __init__(self, state_dir: Path, capacity: int) -> None:
        self.state_dir = state_dir
        self.capacity = capacity
        #: node id -> (its trend, that trend's bucket count already on disk)
        self._saved: dict[str, tuple[NodeTrend, int]] = {}
        self.saves = self.write_errors = self.compactions = 0
        self.last_error: str | None = None

    def path(self, trend: NodeTrend) -> Path:
        """The file of one node's trend."""
        return trend_dir(self.state_dir) / trend.field / f"{trend.node_id}{SUFFIX}"

    def load(self, recorder: TrendRecorder, nodes: Collection[str], *, now: float) -> int:
        """Restore the saved trends of ``nodes`` (the graph's computing nodes) newer than the
        recorder's window; returns the number of buckets restored."""
        restored = 0
        for node_id, (field, path) in stored_trends(self.state_dir).items():
            if node_id not in nodes:
                continue
            rows = read_trend(path, last=self.capacity)
            rows = rows[rows[:, 0] >= now - self.capacity]
            unit = next(u for f, u in TREND_FIELDS.values() if f == field)
            trend = recorder.restore(node_id, field, unit, rows)
            self._saved[node_id] = (trend, trend.count)
            restored += rows.shape[0]
        return restored

    def save(self, recorder: TrendRecorder) -> None:
        """Append every bucket closed since the last save; never raises (a full or
        read-only disk is logged once and counted)."""
        for node_id, trend in list(recorder.trends.items()):
            known, saved = self._saved.get(node_id, (trend, 0))
            if known is not trend:  # replaced (the node's kind changed): a new series
                saved = 0
            rows, count = trend.closed_since(saved)
            if rows.shape[0] == 0:
                continue
            path = self.path(trend)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as out:
                    out.write(np.ascontiguousarray(rows, dtype=ROW).tobytes())
                if path.stat().st_size > 2 * self.capacity * ROW_BYTES:
                    self._compact(path)
            except OSError as exc:
                self.write_errors += 1
                if self.last_error is None:
                    log.error("cannot save the trend to %s: %s (the trend goes on in "
                              "memory)", path, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            self._saved[node_id] = (trend, count)
        self.saves += 1

    def _compact(self, path: Path) -> None:
        """Rewrite ``path`` with its newest ``capacity`` rows, atomically."""
        rows = read_trend(path, last=self.capacity)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(np.ascontiguousarray(rows, dtype=ROW).tobytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.compactions += 1

    def get_status(self) -> dict[str, Any]:
        """Where the trend is saved, how often it was, and the last error."""
        return {"directory": str(trend_dir(self.state_dir)), "saves": self.saves,
                "compactions": self.compactions, "write_errors": self.write_errors,
                "last_error": self.last_error}
