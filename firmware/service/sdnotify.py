"""systemd's notify protocol (sd_notify) without a dependency: one datagram per message.

Under ``Type=notify`` systemd sets ``NOTIFY_SOCKET``; elsewhere every call is a no-op. The
appliance sends READY=1 once its kernels are warm and the DSP thread runs, WATCHDOG=1 while
the DSP thread makes progress (``WATCHDOG_USEC`` gives the deadline), STATUS=<line> with the
status line, STOPPING=1 when it shuts down, and EXTEND_TIMEOUT_USEC=<µs> while a slow start (a
first compile of the kernels on a Pi) is still making its way to READY=1.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("pafw.systemd")


class Notifier:
    """Sends notifications to ``NOTIFY_SOCKET`` (from the environment by default)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.sent = 0
        self.errors = 0
        watchdog_usec = os.environ.get("WATCHDOG_USEC")
        watchdog_pid = os.environ.get("WATCHDOG_PID")
        valid_pid = watchdog_pid is None or watchdog_pid == str(os.getpid())
        self.watchdog_s = (int(watchdog_usec) / 1e6
                           if watchdog_usec and watchdog_usec.isdigit() and valid_pid else None)

    @property
    def enabled(self) -> bool:
        """True when running under a notify-aware supervisor."""
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False if not sent (never raises)."""
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):  # abstract namespace
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            self.errors += 1
            if self.errors == 1:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1 (with an optional STATUS)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the service is alive."""
        return self.notify("WATCHDOG=1")

    def status(self, line: str) -> bool:
        """STATUS=<line>, shown by ``systemctl status``."""
        return self.notify(f"STATUS={line}")

    def extend_timeout(self, seconds: float, status: str = "") -> bool:
        """EXTEND_TIMEOUT_USEC: the start may take ``seconds`` more from now (systemd moves
        its TimeoutStartSec deadline out to at least that), with an optional STATUS."""
        usec = max(1, round(seconds * 1e6))
        return self.notify(f"EXTEND_TIMEOUT_USEC={usec}",
                           *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        """STOPPING=1."""
        return self.notify("STOPPING=1", "STATUS=stopping")
