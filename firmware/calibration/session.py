"""One calibration session: its points, each measured on a thread of its own until stable.

A session is either a ``calibration`` (a zero and span points, then a fit) or a
``zero_check`` (zero gas only: the offset is recorded, nothing is refitted). Adding a point
starts its measurement: samples of the calibrated node's new results go into a
``PointWindow``; the point is kept when the window is stable and refused (the session
unchanged) when it is not stable within the timeout, or when the gas gives no signal.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from firmware.calibration.errors import CalibrationError
from firmware.calibration.record import CalibrationPoint
from firmware.calibration.settings import StabilitySettings
from firmware.calibration.stability import PointWindow, Sample, WindowStats
from firmware.state import iso_utc

SessionMode = Literal["calibration", "zero_check"]
#: a span point is refused when fewer of its window's results detected a peak
MIN_DETECTED_FRACTION = 0.5
POLL_S = 0.01

#: reads the calibrated node's newest sample: (sequence, sample) or None before any result
SampleReader = Callable[[], "tuple[int, Sample] | None"]


@dataclass
class PointProgress:
    """The point being measured (read by status callers; replaced as it progresses)."""

    concentration_ppm: float
    gas: str
    cylinder: str | None
    started: float
    started_monotonic: float
    state: Literal["measuring", "stable", "failed", "cancelled"] = "measuring"
    verdict: str | None = "starting"
    stats: WindowStats | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"concentration_ppm": self.concentration_ppm, "gas": self.gas,
                "cylinder": self.cylinder, "state": self.state,
                "started": iso_utc(self.started),
                "elapsed_s": round(time.monotonic() - self.started_monotonic, 3),
                "waiting_for": self.verdict, "error": self.error,
                "window": None if self.stats is None else self.stats.to_dict()}


@dataclass
class Session:
    """A calibration or zero check in progress."""

    mode: SessionMode
    operator: str
    gas: str
    stability: StabilitySettings
    read_sample: SampleReader
    note: str = ""
    started: float = field(default_factory=time.time)
    points: list[CalibrationPoint] = field(default_factory=list)
    current: PointProgress | None = None
    last_failure: str | None = None
    _thread: threading.Thread | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def measuring(self) -> bool:
        """Whether a point is being measured now."""
        return self.current is not None and self.current.state == "measuring"

    def check_point(self, concentration_ppm: float) -> None:
        """Refuse a point that cannot be added (CalibrationError says why)."""
        if not math.isfinite(concentration_ppm):
            raise CalibrationError(f"concentration {concentration_ppm!r}: expected a number")
        if concentration_ppm < 0:
            raise CalibrationError(f"a span of {concentration_ppm:g} ppm is below zero: a gas "
                                   "concentration is 0 (zero gas) or more")
        if self.mode == "zero_check" and concentration_ppm != 0:
            raise CalibrationError(f"a zero check measures zero gas only, not "
                                   f"{concentration_ppm:g} ppm")
        if self.mode == "zero_check" and self.points:
            raise CalibrationError("the zero check has its point; commit or abort it")
        if self.measuring:
            assert self.current is not None
            raise CalibrationError(f"the {self.current.concentration_ppm:g} ppm point is still "
                                   "being measured; wait for it or abort the session")
        for point in self.points:
            if point.concentration_ppm == concentration_ppm:
                raise CalibrationError(f"a {concentration_ppm:g} ppm point was measured "
                                       "already in this session: each point once")

    def start_point(self, concentration_ppm: float, *, gas: str, cylinder: str | None) -> None:
        """Start measuring a point in the background (refused: CalibrationError)."""
        with self._lock:
            self.check_point(concentration_ppm)
            progress = PointProgress(float(concentration_ppm), gas, cylinder, time.time(),
                                     time.monotonic())
            self.current = progress
            self._cancel.clear()
            self._thread = threading.Thread(target=self._measure, args=(progress,),
                                            name="calibration-point", daemon=True)
            self._thread.start()

    def cancel(self) -> None:
        """Stop a point being measured (it is not kept)."""
        self._cancel.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the point being measured to end; False on timeout."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _measure(self, progress: PointProgress) -> None:
        window = PointWindow(self.stability)
        deadline = progress.started_monotonic + self.stability.timeout_s
        last_sequence: int | None = None
        zero = progress.concentration_ppm == 0.0
        while not self._cancel.is_set():
            reading = self.read_sample()
            if reading is not None and reading[0] != last_sequence:
                last_sequence = reading[0]
                window.add(reading[1])
                stats = window.stats()
                verdict = window.verdict(stats)
                progress.stats, progress.verdict = stats, verdict
                if verdict is None and (zero or stats.detected_fraction >=
                                        MIN_DETECTED_FRACTION):
                    self._keep(progress, stats)
                    return
                if verdict is None:
                    missed = 100 * (1 - stats.detected_fraction)
                    progress.verdict = (f"no peak detected in {missed:.0f} % of the window: "
                                        "is the gas flowing?")
            if time.monotonic() >= deadline:
                self._fail(progress, f"the signal at {progress.concentration_ppm:g} ppm was not "
                           f"stable within {self.stability.timeout_s:g} s "
                           f"({progress.verdict}); the point was not kept")
                return
            time.sleep(POLL_S)
        with self._lock:
            progress.state, progress.error = "cancelled", "cancelled"

    def _keep(self, progress: PointProgress, stats: WindowStats) -> None:
        with self._lock:
            point = CalibrationPoint(
                concentration_ppm=progress.concentration_ppm, gas=progress.gas,
                cylinder=progress.cylinder, measured_at=time.time(),
                duration_s=time.monotonic() - progress.started_monotonic,
                readings=stats.to_dict())
            # a new list, replaced whole: status readers iterate the old one unlocked
            self.points = sorted([*self.points, point], key=lambda p: p.concentration_ppm)
            progress.state, progress.verdict = "stable", None

    def _fail(self, progress: PointProgress, message: str) -> None:
        with self._lock:
            progress.state, progress.error = "failed", message
            self.last_failure = message

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible state of the session."""
        return {"mode": self.mode, "operator": self.operator, "gas": self.gas,
                "note": self.note, "started": iso_utc(self.started),
                "points": [p.to_dict() for p in self.points],
                "current": None if self.current is None else self.current.to_dict(),
                "measuring": self.measuring, "last_failure": self.last_failure}
