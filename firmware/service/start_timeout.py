"""Keeps systemd's start timeout from firing while the kernels compile before READY=1.

The first start on a new host compiles every numba kernel (minutes on a Raspberry Pi Zero 2,
longer under emulation); later starts load them from the cache directory in seconds. A fixed
``TimeoutStartSec`` would have to be set for the slowest first start and would then hide a
start that hangs. Instead the service tells systemd every ``period_s`` that it is still
starting (``EXTEND_TIMEOUT_USEC`` of three periods, so one late datagram is not fatal, with a
STATUS that says how long it has been compiling), ``limit_s // period_s`` times at most: a
start that is still not ready then fails on the unit's own timeout, as a hung one should.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from firmware.service.sdnotify import Notifier

log = logging.getLogger("pafw.systemd")

EXTEND_PERIOD_S = 10.0
# the longest first compile measured, aarch64 under emulation (deploy/README.md), times ~3
EXTEND_LIMIT_S = 1800.0


class StartTimeoutExtender:
    """A context manager around the start-up: while inside, a daemon thread sends
    EXTEND_TIMEOUT_USEC every ``period_s`` (the first one at once); nothing without systemd."""

    def __init__(self, notifier: Notifier, *, period_s: float = EXTEND_PERIOD_S,
                 limit_s: float = EXTEND_LIMIT_S, what: str = "compiling the DSP kernels") -> None:
        if period_s <= 0 or limit_s <= 0:
            raise ValueError("period_s and limit_s must be positive")
        self.notifier = notifier
        self.period_s = period_s
        self.limit_s = limit_s
        self.what = what
        self.extensions = 0
        self.max_extensions = max(1, int(limit_s / period_s + 1e-9))
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> StartTimeoutExtender:
        if self.notifier.enabled:
            self._started = time.monotonic()
            self._extend()
            self._thread = threading.Thread(target=self._run, name="pafw-start-timeout",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _extend(self) -> None:
        elapsed = time.monotonic() - self._started
        self.extensions += 1  # tried: a lost datagram still counts towards the limit
        self.notifier.extend_timeout(3 * self.period_s, f"starting: {self.what} ({elapsed:.0f} s)")

    def _run(self) -> None:
        while not self._done.wait(self.period_s):
            if self.extensions >= self.max_extensions:
                log.warning("still %s after %.0f s: no more start timeout extensions, the "
                            "unit's TimeoutStartSec applies", self.what,
                            time.monotonic() - self._started)
                return
            self._extend()
