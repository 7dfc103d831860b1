"""A calibration record for tests (one place, so the record's fields change in one place)."""

from __future__ import annotations

from firmware.calibration.fit import FitResult
from firmware.calibration.record import CalibrationPoint, CalibrationRecord


def make_record(record_id: str, *, coefficients: tuple[float, ...] = (0.0, 50000.0),
                fingerprint: str = "f" * 64, node_id: str = "concentration",
                created: float = 1.7e9) -> CalibrationRecord:
    points = tuple(CalibrationPoint(ppm, "CO2", f"C{i}", created, 30.0,
                                    {"amplitude": ppm / 50000.0})
                   for i, ppm in enumerate((0.0, 1000.0, 2000.0)))
    fit = FitResult(1, False, coefficients, (0.1, 2.0), (0.0, 0.0, 0.0), 1.0, (0.0, 0.04),
                    (0.0, 2000.0))
    return CalibrationRecord(id=record_id, created=created, operator="Ada", node_id=node_id,
                             gas="CO2", points=points, fit=fit, firmware_version="0.1.0",
                             chain={"sample_rate": 48000}, fingerprint=fingerprint)
