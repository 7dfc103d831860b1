"""Due dates (firmware/calibration/due.py)."""

from __future__ import annotations

import pytest

from firmware.calibration.due import DAY_S, due_status


@pytest.mark.parametrize(("calibrated_at", "interval", "now_days", "state", "flags"), [
    (0.0, None, 999, "not_scheduled", []),
    (None, 30.0, 0, "due", ["calibration_due"]),
    (0.0, 30.0, 29.9, "ok", []),
    (0.0, 30.0, 30.0, "due", ["calibration_due"]),
    (0.0, 30.0, 37.0, "overdue", ["calibration_overdue"]),
])
def test_states_and_flags(calibrated_at: float | None, interval: float | None,
                          now_days: float, state: str, flags: list[str]) -> None:
    status = due_status(calibrated_at=calibrated_at, interval_days=interval,
                        overdue_after_days=7.0, now=now_days * DAY_S)
    assert status.state == state
    assert status.to_dict()["flags"] == flags


def test_dates_are_reported_in_iso_utc() -> None:
    status = due_status(calibrated_at=0.0, interval_days=1.0, overdue_after_days=1.0, now=0.0)
    assert status.to_dict()["due_at"] == "1970-01-02T00:00:00.000+00:00"
    assert status.to_dict()["overdue_at"] == "1970-01-03T00:00:00.000+00:00"
