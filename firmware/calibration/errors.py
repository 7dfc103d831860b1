"""The calibration's refusal: every refused step says why and changes nothing."""

from __future__ import annotations

from firmware.errors import PafwError


class CalibrationError(PafwError, ValueError):
    """Raised when a calibration step is refused (unstable signal, bad point, a fit that
    fails its checks, a record for another signal chain); nothing was changed."""


class CalibrationNotFoundError(CalibrationError, LookupError):
    """Raised when a calibration record id names no stored record."""
