"""The start timeout extension (firmware/service/start_timeout.py) against a real AF_UNIX
datagram socket standing in for systemd: one EXTEND_TIMEOUT_USEC at once and one per period
while the start runs, none after it, a bounded number for a start that never ends, nothing
without NOTIFY_SOCKET. ``pafw run`` sending them before READY=1 is in test_run.py."""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.service.sdnotify import Notifier
from firmware.service.start_timeout import StartTimeoutExtender


@pytest.fixture
def systemd() -> Iterator[tuple[str, socket.socket]]:
    """(NOTIFY_SOCKET address, bound receiving socket) in a directory short enough for
    sun_path."""
    with tempfile.TemporaryDirectory(prefix="pafw-sd-", dir="/tmp") as name:
        path = str(Path(name) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(30)
        yield path, sock
        sock.close()


def drain(sock: socket.socket, quiet_s: float) -> list[list[str]]:
    """Every datagram that arrives until none came for ``quiet_s``."""
    received = []
    sock.settimeout(quiet_s)
    try:
        while True:
            received.append(sock.recv(65536).decode().split("\n"))
    except TimeoutError:
        return received
    finally:
        sock.settimeout(30)


def test_extends_at_once_then_every_period_until_the_start_is_done(
        systemd: tuple[str, socket.socket]) -> None:
    address, sock = systemd
    with StartTimeoutExtender(Notifier(address), period_s=0.05, limit_s=60) as extender:
        first = sock.recv(65536).decode().split("\n")
        assert first == ["EXTEND_TIMEOUT_USEC=150000",
                         "STATUS=starting: compiling the DSP kernels (0 s)"]
        second = sock.recv(65536).decode().split("\n")
        assert second[0] == "EXTEND_TIMEOUT_USEC=150000"
    sent = extender.extensions
    assert sent >= 2 and extender._thread is None
    time.sleep(0.3)  # six periods: the thread is gone, nothing more is tried
    assert extender.extensions == sent


def test_a_start_that_never_ends_gets_a_bounded_number_of_extensions(
        systemd: tuple[str, socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pafw.systemd")
    address, sock = systemd
    with StartTimeoutExtender(Notifier(address), period_s=0.05, limit_s=0.15,
                              what="warming up") as extender:
        deadline = time.monotonic() + 30
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
        received = drain(sock, 0.3)
    assert extender.extensions == 3
    assert [d[0] for d in received] == ["EXTEND_TIMEOUT_USEC=150000"] * 3
    assert received[0][1] == "STATUS=starting: warming up (0 s)"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("still warming up after ")
    assert warning.endswith(" s: no more start timeout extensions, the unit's "
                            "TimeoutStartSec applies")


def test_without_systemd_nothing_is_sent_and_no_thread_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with StartTimeoutExtender(Notifier(), period_s=0.01) as extender:
        assert extender._thread is None
        time.sleep(0.05)
    assert extender.extensions == 0


def test_an_exception_in_the_start_stops_the_extensions(
        systemd: tuple[str, socket.socket]) -> None:
    address, sock = systemd
    extender = StartTimeoutExtender(Notifier(address), period_s=0.05)
    with pytest.raises(RuntimeError, match="compile failed"), extender:
        sock.recv(65536)
        raise RuntimeError("compile failed")
    assert extender._thread is None
    sent = extender.extensions
    time.sleep(0.2)
    assert extender.extensions == sent


@pytest.mark.parametrize(("period", "limit"), [(0, 10), (-1, 10), (1, 0)])
def test_period_and_limit_must_be_positive(period: float, limit: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        StartTimeoutExtender(Notifier(""), period_s=period, limit_s=limit)
