"""When the next calibration is due: ``interval_days`` after the active record was made.

States: ``not_scheduled`` (no interval configured), ``ok``, ``due`` (from the due date, or
never calibrated), ``overdue`` (``overdue_after_days`` after the due date). Due and overdue
raise the appliance-wide flags ``calibration_due`` / ``calibration_overdue`` on every result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from firmware.state import iso_utc

DueState = Literal["not_scheduled", "ok", "due", "overdue"]
DAY_S = 86400.0
FLAGS: dict[str, tuple[str, ...]] = {"due": ("calibration_due",),
                                     "overdue": ("calibration_overdue",)}


@dataclass(frozen=True)
class DueStatus:
    """The due state at one instant."""

    state: DueState
    calibrated_at: float | None
    due_at: float | None
    overdue_at: float | None

    @property
    def flags(self) -> tuple[str, ...]:
        """The appliance-wide flags this state raises."""
        return FLAGS.get(self.state, ())

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        def stamp(t: float | None) -> str | None:
            return None if t is None else iso_utc(t)

        return {"state": self.state, "calibrated_at": stamp(self.calibrated_at),
                "due_at": stamp(self.due_at), "overdue_at": stamp(self.overdue_at),
                "flags": list(self.flags)}


def due_status(*, calibrated_at: float | None, interval_days: float | None,
               overdue_after_days: float, now: float) -> DueStatus:
    """The due state of a calibration made at ``calibrated_at`` (None: never).

    >>> due_status(calibrated_at=0.0, interval_days=30, overdue_after_days=7,
    ...            now=31 * DAY_S).state
    'due'
    """
    if interval_days is None:
        return DueStatus("not_scheduled", calibrated_at, None, None)
    if calibrated_at is None:
        return DueStatus("due", None, None, None)
    due_at = calibrated_at + interval_days * DAY_S
    overdue_at = due_at + overdue_after_days * DAY_S
    state: DueState = "overdue" if now >= overdue_at else "due" if now >= due_at else "ok"
    return DueStatus(state, calibrated_at, due_at, overdue_at)
