"""CalibrationManager (firmware/calibration/manager.py) on a concentration node fed like the
DSP thread feeds it: the procedure end to end, live activation and rollback, records for
another signal chain refused, due flags on every result."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from firmware.calibration.due import DAY_S
from firmware.calibration.errors import CalibrationError
from firmware.calibration.manager import CalibrationManager
from firmware.calibration.record import chain_fingerprint
from firmware.calibration.settings import CalibrationSettings
from firmware.calibration.store import RecordStore
from tests.calibration.cell import Cell
from tests.calibration.records import make_record

CHAIN = {"sample_rate": 48000, "frame_size": 4096, "nodes": []}
SETTINGS = CalibrationSettings.model_validate({
    "interval_days": 30,
    "stability": {"window_s": 0.2, "min_samples": 5, "max_rsd_percent": 1.0,
                  "abs_std": 1e-4, "timeout_s": 3.0}})


def manager_for(cell: Cell, tmp_path: Path,
                settings: CalibrationSettings = SETTINGS) -> CalibrationManager:
    return CalibrationManager(settings, node=cell.node, state=cell.state,
                              store=RecordStore(tmp_path / "cal"), chain=CHAIN,
                              firmware_version="9.9", gas="CH4")


def measure(manager: CalibrationManager, cell: Cell, ppm: float, amplitude: float) -> None:
    cell.amplitude = amplitude
    time.sleep(0.03)
    manager.add_point(ppm, cylinder=f"C{ppm:g}")
    session = manager.session
    assert session is not None and session.wait(10)


def test_a_calibration_is_fitted_stored_and_applied_live(tmp_path: Path) -> None:
    with Cell() as cell:
        manager = manager_for(cell, tmp_path)
        manager.start()
        try:
            assert cell.state.marks.flags == ("calibration_due",)
            manager.begin("calibration", operator="Ada")
            for ppm in (0.0, 500.0, 1000.0, 2000.0):
                measure(manager, cell, ppm, math.nan if ppm == 0 else ppm / 40000.0)
            result = manager.commit()
            assert result["fit"]["coefficients"] == pytest.approx([0.0, 40000.0], abs=1e-6)
            assert result["firmware_version"] == "9.9" and result["gas"] == "CH4"
            assert result["signal_chain"]["fingerprint"] == chain_fingerprint(CHAIN)
            cell.amplitude = 0.025
            time.sleep(0.05)
            latest = cell.state.get("concentration")
            assert latest is not None and latest.concentration_ppm == pytest.approx(1000.0)
            assert latest.flags == ()  # no longer due
            assert manager.refresh_due(time.time() + 40 * DAY_S).state == "overdue"
            assert cell.state.marks.flags == ("calibration_overdue",)
            cell.amplitude = 0.06  # 2400 ppm: beyond 2000 + 10 %
            time.sleep(0.05)
            latest = cell.state.get("concentration")
            assert latest is not None
            assert latest.flags == ("calibration_overdue", "outside_calibrated_range")
            assert manager.get_status()["source"] == "record"
            assert manager.rollback() is None
            assert cell.node.active.record_id is None
        finally:
            manager.stop()


def test_a_span_without_signal_is_refused_and_not_kept(tmp_path: Path) -> None:
    with Cell() as cell:
        manager = manager_for(cell, tmp_path)
        manager.begin("calibration", operator="Ada")
        measure(manager, cell, 1000.0, math.nan)
        session = manager.session
        assert session is not None and session.points == []
        assert session.current is not None and session.current.state == "failed"
        assert "no peak detected in 100 % of the window" in (session.current.error or "")


def test_a_record_of_another_signal_chain_is_refused_at_start_and_on_activate(
        tmp_path: Path) -> None:
    with Cell() as cell:
        manager = manager_for(cell, tmp_path)
        good = make_record("20260101T000000Z-good", fingerprint=chain_fingerprint(CHAIN),
                           coefficients=(0.0, 40000.0))
        other = make_record("20260102T000000Z-other", coefficients=(0.0, 30000.0))
        manager.store.save(good)
        manager.store.save(other)
        manager.store.set_active(other.id, action="activate")
        manager.load_active()
        assert manager.problem is not None and "different signal chain" in manager.problem
        assert cell.node.active.record_id is None  # the YAML coefficients stay
        manager.activate(good.id)
        with pytest.raises(CalibrationError, match="different signal chain"):
            manager.activate(other.id)
        assert manager.store.active_id() == good.id
        assert cell.node.active.record_id == good.id
        assert [r["applicable"] for r in manager.records()] == [True, False]


def test_an_operator_is_needed_and_one_session_at_a_time(tmp_path: Path) -> None:
    with Cell() as cell:
        manager = manager_for(cell, tmp_path)
        with pytest.raises(CalibrationError, match="an operator name is needed"):
            manager.begin("calibration", operator=" ")
        manager.begin("zero_check", operator="Bo")
        with pytest.raises(CalibrationError, match="a zero_check by 'Bo' is in progress"):
            manager.begin("calibration", operator="Bo")
        with pytest.raises(CalibrationError, match="a zero check is not fitted"):
            manager.fit()
        manager.abort()
        assert manager.session is None
