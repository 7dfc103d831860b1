"""JSON for everything that leaves the process: NaN-free, numpy-free, timestamped.

Results carry NaN for unknown values and may carry numpy scalars; JSON has neither, and a
consumer must never choke on a payload, so every value is converted (NaN/inf -> null, numpy
-> Python, unknown objects -> their ``str``) instead of raising.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from firmware.state import iso_utc, json_safe

__all__ = ["encode_json", "json_safe", "stamped"]


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``json_safe(value)``."""
    return json.dumps(json_safe(value), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def stamped(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with ``ts`` (epoch s) and ``time`` (ISO 8601 UTC) first, added if missing."""
    ts = payload.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        ts = time.time()
    when = payload.get("time")
    rest = {k: v for k, v in payload.items() if k not in ("seq", "ts", "time")}
    return {"ts": ts, "time": when if isinstance(when, str) else iso_utc(ts), **rest}
