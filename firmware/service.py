"""`pafw run`: the long-running appliance process.

Warms the kernels, starts the DSP thread, logs a status line every
``processing.status_interval_s`` and stops cleanly on SIGINT/SIGTERM (or when a finite
source ends).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from firmware.config import ConfigDocument
from firmware.runtime import Appliance
from firmware.status_line import status_line

log = logging.getLogger("pafw.run")


class Service:
    """Owns the Appliance for the lifetime of `pafw run`."""

    def __init__(self, doc: ConfigDocument, *, realtime: bool = True) -> None:
        self.doc = doc
        self.appliance = Appliance(doc, realtime=realtime)
        self.analyzer = self.appliance.analyzer
        self._stop = threading.Event()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Signal handler: ask the main loop to stop."""
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGINT, SIGTERM and SIGHUP stop the service cleanly (outputs safe, MQTT offline)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.request_stop)

    def run(self, duration_s: float | None = None) -> int:
        """Run until stopped; returns the process exit code (0 clean, 1 DSP fault)."""
        cfg = self.doc.config
        analyzer = self.analyzer
        source_name = cfg.acquisition.source
        log.info(
            "pafw starting: device %s, source %s, %d Hz, frames of %d samples",
            cfg.device.id, source_name, analyzer.sample_rate, analyzer.frame_size,
        )
        try:
            warm = self.appliance.start()
        except BaseException:
            self.appliance.stop()
            raise
        log.info("kernels ready in %.2f s (cache %s)", warm, cfg.paths.cache_dir)
        interval = cfg.processing.status_interval_s
        deadline = None if duration_s is None else time.monotonic() + duration_s
        last_t, last_frames, last_cpu = time.monotonic(), 0, 0.0
        try:
            while not self._stop.is_set() and not analyzer.finished.is_set():
                wait = interval if deadline is None else min(interval,
                                                             deadline - time.monotonic())
                if wait <= 0:
                    break
                if self._stop.wait(wait) or analyzer.finished.is_set():
                    break
                now = time.monotonic()
                frames, cpu = analyzer.frames, analyzer.dsp_cpu_s
                elapsed = max(now - last_t, 1e-9)
                frame = analyzer.last_frame
                log.info(
                    status_line(
                        analyzer.latest_results(),
                        truth_ppm=frame.truth_ppm if frame is not None else float("nan"),
                        frames_per_s=(frames - last_frames) / elapsed,
                        cpu_percent=100.0 * (cpu - last_cpu) / elapsed,
                        overruns=analyzer.overruns,
                    )
                )
                last_t, last_frames, last_cpu = now, frames, cpu
                if self.appliance.mqtt is not None:
                    self.appliance.mqtt.publish_status(self.appliance.get_status(brief=True))
        finally:
            self.appliance.stop()
        if analyzer.fault:
            log.error("stopped after a fault: %s", analyzer.fault)
            return 1
        log.info("stopped cleanly after %d frames", analyzer.frames)
        return 0
