"""CSV export of the measurements: the trend's one-second buckets of every computing node.

Shared by ``GET /api/v1/export.csv`` (the running appliance's trend in memory) and
``pafw export`` (the trend files in the state dir, with or without a running appliance).
One row per node and second: ``time`` (ISO 8601 UTC), ``epoch_s`` (the second's centre),
``node_id``, ``field`` (``concentration_ppm`` or ``amplitude``), ``unit``, and the ``mean``,
``min`` and ``max`` of the results in that second, sorted by time, then node.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from firmware.errors import PafwError
from firmware.state import iso_utc

EXPORT_COLUMNS = ["time", "epoch_s", "node_id", "field", "unit", "mean", "min", "max"]


class TimeRangeError(PafwError, ValueError):
    """Raised when a ``from``/``to`` bound is neither epoch seconds nor ISO 8601."""


@dataclass(frozen=True)
class Series:
    """One node's buckets to export: an (n, 4) array of epoch s, mean, min, max."""

    node_id: str
    field: str
    unit: str
    rows: np.ndarray


def parse_time(text: str, name: str) -> float:
    """Epoch seconds from ``1733212800`` or ISO 8601 (``2026-12-03T07:00:00Z``; no zone
    means UTC). Raises TimeRangeError naming ``name`` otherwise."""
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise TimeRangeError(f"{name} must be a finite time, got {text[:40]!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeRangeError(f"{name} must be epoch seconds or an ISO 8601 time such as "
                             f"2026-12-03T07:00:00Z, got {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def write_csv(series: Iterable[Series], out: TextIO) -> int:
    """Write the header and every bucket of ``series`` (sorted by time, then node) to
    ``out``; returns the number of data rows."""
    merged: list[tuple[float, str, Series, int]] = []
    for item in series:
        merged.extend((float(t), item.node_id, item, i) for i, t in enumerate(item.rows[:, 0]))
    merged.sort(key=lambda entry: (entry[0], entry[1]))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for epoch, node_id, item, i in merged:
        _, mean, low, high = item.rows[i]
        writer.writerow([iso_utc(epoch), f"{epoch:.1f}", node_id, item.field, item.unit,
                         _number(mean), _number(low), _number(high)])
    return len(merged)


def csv_text(series: Iterable[Series]) -> tuple[str, int]:
    """The CSV document of ``series`` and its number of data rows."""
    out = io.StringIO()
    rows = write_csv(series, out)
    return out.getvalue(), rows


def stored_series(state_dir: Path, *, since: float, until: float,
                  node: str | None = None) -> list[Series]:
    """The trend files under ``state_dir`` (``pafw export``), bounded to [since, until]."""
    from firmware.app.trend import TREND_FIELDS
    from firmware.app.trend_store import read_trend, stored_trends

    found = stored_trends(state_dir)
    if node is not None and node not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PafwError(f"no saved trend for node {node!r} in {state_dir} (nodes: {known})")
    series = []
    for node_id, (field, path) in found.items():
        if node is not None and node_id != node:
            continue
        rows = read_trend(path)
        rows = rows[(rows[:, 0] >= since) & (rows[:, 0] <= until)]
        unit = next(u for f, u in TREND_FIELDS.values() if f == field)
        series.append(Series(node_id, field, unit, rows))
    return series
