"""CalibrationManager: the calibration of one concentration node, from procedure to record.

It owns the record store, the session in progress, and what the node computes with: at start
it applies the active record (a record for another node or signal chain is refused and the
YAML coefficients stay, with the reason in the status); ``activate`` and ``rollback`` check
the record, write the pointer atomically, then swap the node's calculator, so a refusal or a
failed write changes nothing. A thread re-evaluates the due state and sets the appliance-wide
``calibration_due``/``calibration_overdue`` flags. Every method is thread-safe (the web
server calls them from worker threads).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from firmware.calibration.due import DueStatus, due_status
from firmware.calibration.errors import CalibrationError
from firmware.calibration.fit import FitResult, Tolerance, fit_calibration
from firmware.calibration.record import CalibrationRecord, chain_fingerprint, new_record_id
from firmware.calibration.session import Session, SessionMode
from firmware.calibration.settings import CalibrationSettings
from firmware.calibration.stability import Sample
from firmware.calibration.store import RecordStore
from firmware.dsp.nodes.concentration import ActiveCalibration, ConcentrationNode
from firmware.errors import DspError
from firmware.state import ComputingState, iso_utc

log = logging.getLogger("pafw.calibration")
MARKS_OWNER = "calibration"


class CalibrationManager:
    """See the module's docstring."""

    def __init__(self, settings: CalibrationSettings, *, node: ConcentrationNode,
                 state: ComputingState, store: RecordStore, chain: dict[str, Any],
                 firmware_version: str, gas: str) -> None:
        self.settings = settings
        self.node = node
        self.state = state
        self.store = store
        self.chain = chain
        self.fingerprint = chain_fingerprint(chain)
        self.firmware_version = firmware_version
        self.gas = gas
        self.session: Session | None = None
        #: why the stored active record is not applied (None: it is, or there is none)
        self.problem: str | None = None
        self._active_record: CalibrationRecord | None = None
        checks = store.checks()
        self._last_check: dict[str, Any] | None = checks[-1] if checks else None
        self._due = due_status(calibrated_at=None, interval_days=settings.interval_days,
                               overdue_after_days=settings.overdue_after_days, now=time.time())
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Apply the stored active record and start the due-date checks."""
        self.load_active()
        self._stop.clear()
        self._thread = threading.Thread(target=self._due_loop, name="calibration-due",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the due checks and any point being measured; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        session = self.session
        if session is not None:
            session.cancel()

    def _due_loop(self) -> None:
        while not self._stop.wait(self.settings.check_interval_s):
            self.refresh_due()

    def load_active(self) -> None:
        """Apply the store's active record (or keep the YAML coefficients, saying why)."""
        with self._lock:
            self.problem = None
            try:
                record_id = self.store.active_id()
                if record_id is not None:
                    record = self.store.load(record_id)
                    self.node.apply(self._prepare(record))
                    self._active_record = record
                    log.info("calibration record %s active on node %s", record.id,
                             self.node.node_id)
            except CalibrationError as exc:
                self.problem = f"the stored active calibration is not applied: {exc}"
                log.error("%s; the YAML coefficients apply", self.problem)
                self.node.use_yaml()
                self._active_record = None
            self.refresh_due()

    # ------------------------------------------------------------------ records
    def _check(self, record: CalibrationRecord) -> None:
        if record.node_id != self.node.node_id:
            raise CalibrationError(f"record {record.id} calibrates node {record.node_id!r}, "
                                   f"not {self.node.node_id!r}: refused")
        if record.fingerprint != self.fingerprint:
            raise CalibrationError(
                f"record {record.id} was made through a different signal chain (fingerprint "
                f"{record.fingerprint[:12]}, this one {self.fingerprint[:12]}): its "
                "coefficients do not apply to the current filters, gains, frame size or "
                "compensation; refused")

    def _prepare(self, record: CalibrationRecord) -> ActiveCalibration:
        self._check(record)
        lo, hi = record.fit.concentration_range
        margin = self.settings.range_margin_percent / 100.0 * (hi - lo)
        try:
            return self.node.prepare(record.coefficients, record_id=record.id,
                                     lower_ppm=lo - margin, upper_ppm=hi + margin)
        except DspError as exc:
            raise CalibrationError(f"record {record.id}: {exc}") from None

    def activate(self, record_id: str, *, operator: str = "", action: str = "activate"
                 ) -> CalibrationRecord:
        """Make ``record_id`` active now and across restarts (refused: nothing changes)."""
        with self._lock:
            record = self.store.load(record_id)
            prepared = self._prepare(record)
            self.store.set_active(record.id, action=action, operator=operator)
            self.node.apply(prepared)
            self._active_record, self.problem = record, None
            self.refresh_due()
            log.info("calibration record %s activated (%s)", record.id, action)
            return record

    def rollback(self, *, operator: str = "") -> str | None:
        """Activate what was active before the current record (None: the YAML ones)."""
        with self._lock:
            previous = self.store.previous_id()
            if previous is not None:
                self.activate(previous, operator=operator, action="rollback")
                return previous
            self.store.set_active(None, action="rollback", operator=operator)
            self.node.use_yaml()
            self._active_record, self.problem = None, None
            self.refresh_due()
            log.info("calibration rolled back to the YAML coefficients")
            return None

    def records(self) -> list[dict[str, Any]]:
        """Every record's summary, oldest first, with which one is active."""
        active = self.store.active_id()
        return [{**r.summary(), "active": r.id == active,
                 "applicable": r.fingerprint == self.fingerprint
                 and r.node_id == self.node.node_id} for r in self.store.records()]

    def record(self, record_id: str) -> dict[str, Any]:
        """One record's whole document, with whether it is active."""
        record = self.store.load(record_id)
        return {**record.to_dict(), "active": record.id == self.store.active_id()}

    # ------------------------------------------------------------------ procedure
    def begin(self, mode: SessionMode, *, operator: str | None, note: str = "") -> Session:
        """Start a calibration or a zero check (refused while another one runs)."""
        with self._lock:
            if self.session is not None:
                raise CalibrationError(f"a {self.session.mode} by "
                                       f"{self.session.operator!r} is in progress; commit or "
                                       "abort it first")
            who = (operator or self.settings.operator or "").strip()
            if not who:
                raise CalibrationError("an operator name is needed (the record says who "
                                       "calibrated); pass one or set calibration.operator")
            self.session = Session(mode=mode, operator=who, gas=self.gas, note=note,
                                   stability=self.settings.stability,
                                   read_sample=self.read_sample)
            return self.session

    def _session(self) -> Session:
        if self.session is None:
            raise CalibrationError("no calibration session: start one first")
        return self.session

    def add_point(self, concentration_ppm: float, *, gas: str | None = None,
                  cylinder: str | None = None) -> None:
        """Start measuring a point of the session (refused: CalibrationError)."""
        with self._lock:
            self._session().start_point(concentration_ppm, gas=gas or self.gas,
                                        cylinder=cylinder)

    def abort(self) -> None:
        """Drop the session and its points; nothing is stored."""
        with self._lock:
            session = self._session()
            session.cancel()
            self.session = None

    def fit(self, *, degree: int | None = None, through_zero: bool | None = None) -> FitResult:
        """The fit of the session's points, without storing anything."""
        with self._lock:
            session = self._session()
            if session.mode != "calibration":
                raise CalibrationError("a zero check is not fitted; commit it to record the "
                                       "offset")
            if session.measuring:
                raise CalibrationError("a point is still being measured")
            points = session.points
            return fit_calibration(
                [p.amplitude for p in points], [p.concentration_ppm for p in points],
                degree=degree, max_degree=self.settings.max_degree,
                through_zero=self.settings.through_zero if through_zero is None
                else through_zero,
                tolerance=Tolerance(self.settings.residual_tolerance_ppm,
                                    self.settings.residual_tolerance_percent))

    def commit(self, *, degree: int | None = None, through_zero: bool | None = None,
               activate: bool = True) -> dict[str, Any]:
        """Fit, store the record and (by default) make it active; or record a zero check.
        Refused (CalibrationError): nothing is stored and the session stays."""
        with self._lock:
            session = self._session()
            if session.mode == "zero_check":
                result = self._commit_zero_check(session)
                self.session = None
                return result
            fit = self.fit(degree=degree, through_zero=through_zero)
            record = CalibrationRecord(
                id=new_record_id(), created=time.time(), operator=session.operator,
                node_id=self.node.node_id, gas=session.gas, points=tuple(session.points),
                fit=fit, firmware_version=self.firmware_version, chain=self.chain,
                fingerprint=self.fingerprint, note=session.note)
            self._prepare(record)  # refuse before storing anything
            self.store.save(record)
            if activate:
                self.activate(record.id, operator=session.operator, action="calibration")
            self.session = None
            return {**record.to_dict(), "active": activate}

    def _commit_zero_check(self, session: Session) -> dict[str, Any]:
        if session.measuring or not session.points:
            raise CalibrationError("the zero check has no measured point yet")
        point = session.points[0]
        polynomial = self.node.active.calculator.polynomial
        offset_ppm = polynomial(point.amplitude)
        check = {"id": new_record_id(), "kind": "zero_check", "at": iso_utc(time.time()),
                 "epoch": time.time(), "operator": session.operator,
                 "node_id": self.node.node_id, "record_id": self.node.active.record_id,
                 "offset_ppm": offset_ppm if math.isfinite(offset_ppm) else None,
                 "offset_amplitude": point.amplitude, "point": point.to_dict(),
                 "note": session.note}
        self.store.save_check(check)
        self._last_check = check
        log.info("zero check: offset %.4g ppm with calibration %s", offset_ppm,
                 check["record_id"] or "yaml")
        return check

    def read_sample(self) -> tuple[int, Sample] | None:
        """The calibrated node's newest result as a sample (None before the first)."""
        node = self.node
        result = self.state.get(node.node_id)
        if result is None:
            return None
        db = node.params.amplitude_unit == "db"
        if result.detected:
            x = result.amplitude_db if db else result.amplitude
        else:  # no peak above the noise: no tone (zero gas), unusable in dB
            x = math.nan if db else 0.0
        temperature = node.last_temperature_c
        return result.sequence, Sample(
            result.monotonic, node.compensated(x, temperature), x, temperature,
            result.frequency_hz, node.pressure_hpa, result.detected)

    # ------------------------------------------------------------------ due dates
    def refresh_due(self, now: float | None = None) -> DueStatus:
        """Re-evaluate the due state and set the flags it raises."""
        record = self._active_record
        status = due_status(calibrated_at=None if record is None else record.created,
                            interval_days=self.settings.interval_days,
                            overdue_after_days=self.settings.overdue_after_days,
                            now=time.time() if now is None else now)
        if frozenset(status.flags) != self.state.marks.flags_of(MARKS_OWNER):
            self.state.marks.set_flags(MARKS_OWNER, status.flags)
        self._due = status
        return status

    def set_pressure(self, hpa: float | None) -> None:
        """The ambient pressure the node compensates for (None: the configured one)."""
        try:
            self.node.set_pressure(hpa)
        except DspError as exc:
            raise CalibrationError(str(exc)) from None

    def get_status(self) -> dict[str, Any]:
        """Active record, due state, session and last zero check (JSON-safe)."""
        record = self._active_record
        session = self.session
        pressure = self.node.pressure_hpa
        return {
            "node": self.node.node_id,
            "active_record": None if record is None else record.summary(),
            "coefficients": list(self.node.active.calculator.polynomial.coefficients),
            "source": "record" if record is not None else "yaml",
            "problem": self.problem,
            "due": self._due.to_dict(),
            "signal_chain": self.fingerprint,
            "pressure_hpa": pressure if math.isfinite(pressure) else None,
            "session": None if session is None else session.to_dict(),
            "last_zero_check": self._last_check,
        }
