"""`pafw run`: the long-running appliance process.

Warms the kernels, starts the DSP thread, tells systemd READY=1 once the first frame went
through the graph (the appliance measures from then on), gives back the memory start-up no
longer needs (service/memory.py), logs a status line every ``processing.status_interval_s``
and stops cleanly on SIGINT/SIGTERM (or when a finite source ends).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from firmware.app.appliance import Appliance
from firmware.app.rates import RateSampler
from firmware.app.status_file import snapshot_path, write_snapshot
from firmware.config.loader import ConfigDocument
from firmware.service.memory import limit_malloc_arenas, release_start_up_memory
from firmware.service.sdnotify import Notifier
from firmware.service.start_timeout import StartTimeoutExtender
from firmware.service.status_line import status_line

if TYPE_CHECKING:  # imported when enabled: a service without them does not load them
    from firmware.modbus.server import ModbusServer
    from firmware.web.server import WebServer

log = logging.getLogger("pafw.run")

#: glibc malloc arenas for the service's threads (DSP, control loop, web, MQTT, watchers):
#: each arena keeps its own free memory, and the default allows eight per core
MALLOC_ARENAS = 2


class Service:
    """Owns the Appliance for the lifetime of `pafw run`."""

    def __init__(self, doc: ConfigDocument, *, realtime: bool = True) -> None:
        self.doc = doc
        limit_malloc_arenas(MALLOC_ARENAS)
        self.appliance = Appliance(doc, realtime=realtime)
        self.analyzer = self.appliance.analyzer
        self.notifier = Notifier()
        self.snapshot = snapshot_path(self.analyzer.state_dir)
        self._stop = threading.Event()
        web = doc.config.web
        self.web: WebServer | None = None
        if web.enabled:
            from firmware.web.server import WebServer

            self.web = WebServer(self.appliance, web, self.appliance.operations)
        self.modbus: ModbusServer | None = None
        if doc.config.modbus.enabled:
            from firmware.modbus.server import ModbusServer

            self.modbus = ModbusServer(self.appliance, doc.config.modbus,
                                       self.appliance.operations)
            self.appliance.status_parts["modbus"] = self.modbus.get_status

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Signal handler: ask the main loop to stop."""
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop.set()

    def _write_snapshot(self, state: str) -> None:
        """The status snapshot for `pafw status`; a write failure is logged, not fatal."""
        status = self.appliance.get_status()
        status["web"] = self.web.get_status() if self.web is not None else None
        status["paths"] = {k: str(v) for k, v in self.doc.config.paths.model_dump().items()}
        status["config"] = str(self.doc.path) if self.doc.path else None
        try:
            write_snapshot(self.snapshot, status, state=state)
        except OSError as exc:
            log.warning("cannot write the status snapshot %s: %s", self.snapshot, exc)

    def install_signal_handlers(self) -> None:
        """SIGINT, SIGTERM and SIGHUP stop the service cleanly (outputs safe, MQTT offline)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.request_stop)

    def _stop_servers(self) -> None:
        """Stop the web and Modbus servers (each stop is idempotent)."""
        if self.web is not None:
            self.web.stop()
        if self.modbus is not None:
            self.modbus.stop()

    def _await_first_frame(self) -> bool:
        """Wait until the first frame went through the graph; False if the service stops or
        the DSP loop ends first (a fault is not ready)."""
        analyzer = self.analyzer
        while not analyzer.first_frame_done.wait(0.1):
            if self._stop.is_set() or analyzer.finished.is_set():
                return False
        return True

    def run(self, duration_s: float | None = None) -> int:
        """Run until stopped; returns the process exit code (0 clean, 1 DSP fault)."""
        cfg = self.doc.config
        analyzer = self.analyzer
        source_name = cfg.acquisition.source
        log.info(
            "pafw starting: device %s, source %s, %d Hz, frames of %d samples",
            cfg.device.id, source_name, analyzer.sample_rate, analyzer.frame_size,
        )
        for warning in self.doc.warnings:
            log.warning("config: %s", warning)
        try:
            # the start timeout stays extended until the first frame is through the graph:
            # READY=1 arms the watchdog, which only DSP progress feeds
            with StartTimeoutExtender(self.notifier) as extender:
                warm = self.appliance.start()
                log.info("kernels ready in %.2f s (cache %s)", warm, cfg.paths.cache_dir)
                extender.what = "waiting for the first frame"
                if self.web is not None:
                    self.web.start()
                if self.modbus is not None:
                    self.modbus.start()
                first_frame = self._await_first_frame()
        except BaseException:
            self._stop_servers()
            self.appliance.stop()
            raise
        if first_frame:
            self.notifier.ready(f"running: {source_name}, kernels warm in {warm:.2f} s")
            release_start_up_memory()
        self._write_snapshot("running")
        interval = cfg.processing.status_interval_s
        # wake often enough to ping a systemd watchdog three times per period
        tick = min(interval, 0.5, (self.notifier.watchdog_s or 1.5) / 3)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        rates = RateSampler(analyzer)  # the same window as the dashboard's
        next_status = time.monotonic() + interval
        watched_frames = -1
        try:
            while not self._stop.is_set() and not analyzer.finished.is_set():
                wait = tick if deadline is None else min(tick, deadline - time.monotonic())
                if wait <= 0:
                    break
                if self._stop.wait(wait) or analyzer.finished.is_set():
                    break
                if analyzer.frames != watched_frames:  # the DSP thread made progress
                    watched_frames = analyzer.frames
                    self.notifier.watchdog()
                if self.appliance.status_dirty.is_set():
                    self.appliance.status_dirty.clear()
                    self._write_snapshot("running")
                now = time.monotonic()
                if now < next_status:
                    continue
                next_status = now + interval
                rates.sample()
                frame = analyzer.last_frame
                line = status_line(
                    analyzer.latest_results(),
                    truth_ppm=frame.truth_ppm if frame is not None else float("nan"),
                    frames_per_s=rates.frames_per_s or 0.0,
                    cpu_percent=rates.dsp_cpu_percent or 0.0,
                    overruns=analyzer.overruns,
                )
                log.info(line)
                self.notifier.status(line)
                self._write_snapshot("running")
                if self.appliance.mqtt is not None:
                    self.appliance.mqtt.publish_status(self.appliance.get_status(brief=True))
        finally:
            self.notifier.stopping()
            self._stop_servers()
            self.appliance.stop()
            self._write_snapshot("failed" if analyzer.fault else "stopped")
        if analyzer.fault:
            log.error("stopped after a fault: %s", analyzer.fault)
            return 1
        log.info("stopped cleanly after %d frames", analyzer.frames)
        return 0
