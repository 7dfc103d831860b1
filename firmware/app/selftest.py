"""The self-test of a running appliance: a few seconds of both microphones, checked.

``SelfTest.run`` arms a ``FrameCollector`` on the analyzer's frame taps: the DSP thread
copies each frame into a buffer the test allocated on its own thread when it started (no
allocation, no wait on the DSP thread, nothing at all while no test runs; the buffer is
dropped after the test), and the caller's thread waits for it to fill, then runs the checks of
``firmware.dsp.selftest_checks``. Its failed checks become the ``selftest`` quality flags
that every node stamps on its results from then on (``ComputingState.marks``), until a test
passes them again. The test at start runs on a thread of its own after the DSP thread
started, so the first result is not delayed; on demand it runs from the web API (and so from
`pafw selftest`). One test runs at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware.app.analyzer import Analyzer
from firmware.config.models import Config
from firmware.config.selftest import SelftestSettings
from firmware.dsp.frame import Frame
from firmware.dsp.selftest_checks import Check, SelftestLimits, run_checks
from firmware.state import iso_utc

log = logging.getLogger("pafw.selftest")

#: the owner of the quality flags the self-test raises (RecordMarks.set_flags)
FLAG_OWNER = "selftest"
#: band width used with a lock-in, as a fraction of its reference frequency
LOCKIN_BAND = 0.1


def selftest_limits(config: Config) -> SelftestLimits:
    """The checks' limits: the ``selftest`` section, the resonance and band from the graph
    when it leaves them unset (NaN when the graph has no detector either)."""
    st = config.selftest
    resonance, band = math.nan, math.nan
    for node in config.processing.default_graph.nodes:
        params = node.params
        if node.type == "peak_finder":
            low, high = params.frequency_min, params.frequency_max
            resonance, band = (low + high) / 2.0, high - low
            break
        if node.type == "lockin":
            resonance = params.reference_frequency
            band = LOCKIN_BAND * resonance
            break
    resonance = st.resonance_hz if st.resonance_hz is not None else resonance
    band = st.band_hz if st.band_hz is not None else (
        band if math.isfinite(band) else LOCKIN_BAND * resonance)
    return SelftestLimits(
        min_noise_dbfs=st.min_noise_dbfs, max_noise_dbfs=st.max_noise_dbfs,
        clip_level=st.clip_level, max_clipped_fraction=st.max_clipped_fraction,
        min_coherence=st.min_coherence, resonance_hz=resonance, band_hz=band,
        max_resonance_deviation_hz=st.max_resonance_deviation_hz,
        sample_rate=config.acquisition.sample_rate,
        max_sample_rate_error_percent=st.max_sample_rate_error_percent)


@dataclass(frozen=True)
class SelftestReport:
    """One self-test: when, why, over what, and every check."""

    trigger: str
    timestamp: float
    duration_s: float
    source: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks (the quality flags raised)."""
        return [c.name for c in self.checks if c.failed]

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped ones do not fail)."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: what the API answers, MQTT publishes and `pafw selftest --json` prints."""
        return {"passed": self.passed, "failed": self.failed, "trigger": self.trigger,
                "timestamp": round(self.timestamp, 3), "time": iso_utc(self.timestamp),
                "duration_s": round(self.duration_s, 3), "source": self.source,
                "checks": [c.to_dict() for c in self.checks]}

    def format_text(self) -> str:
        """One line per check, then the verdict."""
        return format_report(self.to_dict())


def format_report(report: dict[str, Any]) -> str:
    """A report's dict (``SelftestReport.to_dict``, or an appliance's API answer) as text."""
    lines = [f"self-test of {report['source']} ({report['trigger']}, "
             f"{report['duration_s']:.1f} s, {report['time']}):"]
    for check in report["checks"]:
        lines.append(f"  {check['status'].upper():4}  {check['name']:20}  {check['message']}")
    lines.append("PASSED" if report["passed"] else f"FAILED: {', '.join(report['failed'])}")
    return "\n".join(lines)


def no_frames_report(trigger: str, started: float, source: str, reason: str) -> SelftestReport:
    """A report whose only check, ``frames``, failed: the test had nothing to examine."""
    return SelftestReport(trigger=trigger, timestamp=started, duration_s=time.time() - started,
                          source=source, checks=(Check("frames", "fail", None, "", None, None,
                                                       reason),))


class FrameCollector:
    """Copies ``frames`` frames into buffers allocated when armed (on the test's thread), and
    dropped after the test: an appliance keeps no megabytes for a test that runs once.

    ``tap`` runs on the DSP thread: while not armed it returns at once; armed, it copies the
    frame into a slot allocated beforehand and notes its time and sequence (no allocation).
    """

    def __init__(self, frames: int, frame_size: int) -> None:
        self.frames, self.frame_size = frames, frame_size
        self.done = threading.Event()
        self._buffers: tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray] = (
            np.zeros((2, 0)), [], np.zeros(0), np.zeros(0, dtype=np.int64))
        self._count = 0
        self._armed = False

    def arm(self) -> None:
        """Allocate the buffers and start filling from the next frame."""
        samples = np.zeros((2, self.frames * self.frame_size))
        slots = [samples[:, i * self.frame_size:(i + 1) * self.frame_size]
                 for i in range(self.frames)]
        self._buffers = (samples, slots, np.zeros(self.frames),
                         np.zeros(self.frames, dtype=np.int64))
        self._count = 0
        self.done.clear()
        self._armed = True

    def release(self) -> None:
        """Stop filling and drop the buffers (a tap still running keeps its own references)."""
        self._armed = False
        self._buffers = (np.zeros((2, 0)), [], np.zeros(0), np.zeros(0, dtype=np.int64))

    def tap(self, frame: Frame) -> None:
        """DSP thread: keep ``frame`` while armed."""
        if not self._armed:
            return
        _samples, slots, times, sequences = self._buffers
        i = self._count
        if i >= len(slots):
            return
        np.copyto(slots[i], frame.samples)
        times[i] = frame.timestamp
        sequences[i] = frame.sequence
        self._count = i + 1
        if self._count == self.frames:
            self._armed = False
            self.done.set()

    @property
    def samples(self) -> np.ndarray:
        """The collected samples (2 x frames * frame_size; empty once released)."""
        return self._buffers[0]

    def measured_rate(self) -> float:
        """Samples per second, from the frames' arrival times.

        A frame can arrive late (a busy machine, a scheduler pause, a catch-up burst after one)
        but never before its source produced it: the delays are one-sided. So the rate is the
        slope of the arrival times' lower envelope, the line through the least-delayed frame of
        each half of the record, not first-to-last arrival (a first frame 15 ms late made a
        one-second record read 1.4 % fast on a loaded machine).
        """
        _samples, _slots, times, sequences = self._buffers
        count = times.shape[0]
        if count < 2 or self._count < count:
            return math.nan
        samples = (sequences - sequences[0]).astype(np.float64) * self.frame_size
        if samples[-1] <= 0 or times[-1] <= times[0]:
            return math.nan
        seconds_per_sample = (times[-1] - times[0]) / samples[-1]
        half = count // 2
        for _ in range(3):  # each pass finds the envelope's bridge under the previous slope
            offsets = times - samples * seconds_per_sample
            first = int(np.argmin(offsets[:half]))
            second = half + int(np.argmin(offsets[half:]))
            span = times[second] - times[first]
            if span <= 0 or samples[second] <= samples[first]:
                return math.nan
            seconds_per_sample = span / (samples[second] - samples[first])
        return float(1.0 / seconds_per_sample)


@dataclass
class _Counters:
    runs: int = 0
    failures: int = 0
    last: SelftestReport | None = None
    running: str | None = None
    listeners: list[Callable[[SelftestReport], None]] = field(default_factory=list)


class SelfTest:
    """The self-test of ``analyzer``'s running source, with ``config``'s limits."""

    def __init__(self, config: Config, analyzer: Analyzer) -> None:
        self.settings: SelftestSettings = config.selftest
        self.analyzer = analyzer
        self.limits = selftest_limits(config)
        frame_s = analyzer.frame_size / analyzer.sample_rate
        # one more frame than the duration: the rate is measured between first and last
        frames = max(2, math.ceil(self.settings.duration_s / frame_s) + 1)
        self.collector = FrameCollector(frames, analyzer.frame_size)
        analyzer.frame_taps.append(self.collector.tap)
        self._c = _Counters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_report(self, listener: Callable[[SelftestReport], None]) -> None:
        """Also hand every finished report to ``listener`` (on the test's thread)."""
        self._c.listeners.append(listener)

    def start_background(self) -> None:
        """Run one test now on a thread of its own (the appliance's start)."""
        self._thread = threading.Thread(target=self._at_start, name="selftest", daemon=True)
        self._thread.start()

    def _at_start(self) -> None:
        try:
            self.run("start")
        except Exception:  # a bug: logged, the appliance runs on without a test result
            log.exception("self-test at start failed")

    def stop(self) -> None:
        """Give up a running test and wait for its thread; idempotent."""
        self._stop.set()
        self.collector.release()
        self.collector.done.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def run(self, trigger: str) -> SelftestReport:
        """Run one test and return its report (blocks for ``duration_s`` and the checks;
        call it off the DSP thread). Sets the ``selftest`` flags from the failed checks."""
        with self._lock:
            self._c.running = trigger
            try:
                report = self._collect_and_check(trigger)
            finally:
                self._c.running = None
            if self._stop.is_set():
                return report
            self.analyzer.state.marks.set_flags(FLAG_OWNER, report.failed)
            self._c.runs += 1
            self._c.failures += not report.passed
            self._c.last = report
        if report.passed:
            log.info("self-test (%s) passed", trigger)
        else:
            log.warning("self-test (%s) failed: %s", trigger,
                        "; ".join(c.message for c in report.checks if c.failed))
        for listener in self._c.listeners:
            try:
                listener(report)
            except Exception:  # a listener's bug must not lose the report
                log.exception("self-test report listener failed")
        return report

    def _collect_and_check(self, trigger: str) -> SelftestReport:
        started = time.time()
        source = self.analyzer.source
        name = source.kind
        collector = self.collector
        collector.arm()
        frame_s = self.analyzer.frame_size / self.analyzer.sample_rate
        wait_s = 2.0 * collector.frames * frame_s + 5.0
        deadline = time.monotonic() + wait_s
        while not collector.done.wait(0.1):
            if (self._stop.is_set() or self.analyzer.finished.is_set()
                    or time.monotonic() > deadline):
                break
        if not collector.done.is_set() or self._stop.is_set():
            collector.release()
            if self._stop.is_set():
                why = "the appliance is stopping"
            elif self.analyzer.finished.is_set():
                why = (f"the DSP loop stopped ({self.analyzer.fault or 'the source ended'}) "
                       f"before {collector.frames} frames were read")
            else:
                why = f"no {collector.frames} frames within {wait_s:.0f} s: the DSP loop is stalled"
            return no_frames_report(trigger, started, name, why)
        paced = source.realtime or source.kind == "alsa"
        measured = collector.measured_rate() if paced else None
        basis = ("from the frames' arrival times" if paced else
                 "the source runs as fast as it can, not in real time")
        try:
            checks = run_checks(collector.samples, self.limits,
                                sample_rate=source.sample_rate, measured_rate=measured,
                                rate_basis=basis)
        finally:
            collector.release()
        return SelftestReport(trigger=trigger, timestamp=started,
                              duration_s=time.time() - started, source=name,
                              checks=tuple(checks))

    @property
    def last(self) -> SelftestReport | None:
        """The newest finished report."""
        return self._c.last

    def get_status(self) -> dict[str, Any]:
        """``running`` (the trigger of a test in progress, or None), counters, last report."""
        last = self._c.last
        return {"running": self._c.running, "runs": self._c.runs,
                "failures": self._c.failures,
                "last": None if last is None else last.to_dict()}
