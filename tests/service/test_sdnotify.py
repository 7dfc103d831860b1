"""systemd's notify protocol (firmware/service/sdnotify.py) against a real AF_UNIX datagram
socket standing in for systemd: the exact datagrams of READY, WATCHDOG, STATUS and STOPPING,
the address from NOTIFY_SOCKET (a path or an abstract ``@name``), no-ops without one, a dead
socket counted and warned about once (never raised), and the watchdog period taken from
WATCHDOG_USEC only for this process."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.service.sdnotify import Notifier


class Systemd:
    """The receiving end: a bound datagram socket; ``address`` is what NOTIFY_SOCKET says."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(30)

    def receive(self) -> list[str]:
        return self.sock.recv(65536).decode().split("\n")

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(30)
        return False


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit sun_path (108 bytes), unlike pytest's tmp_path."""
    with tempfile.TemporaryDirectory(prefix="pafw-sd-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
def systemd(short_dir: Path) -> Iterator[Systemd]:
    path = str(short_dir / "notify")
    receiver = Systemd(path, path)
    yield receiver
    receiver.sock.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def test_each_notification_is_one_datagram_with_its_fields(systemd: Systemd) -> None:
    notifier = Notifier(systemd.address)
    assert notifier.enabled
    assert notifier.ready("412.5 ppm | 11.7 fps") is True
    assert systemd.receive() == ["READY=1", "STATUS=412.5 ppm | 11.7 fps"]
    assert notifier.ready() is True
    assert systemd.receive() == ["READY=1"]
    assert notifier.watchdog() is True
    assert systemd.receive() == ["WATCHDOG=1"]
    assert notifier.status("warming up") is True
    assert systemd.receive() == ["STATUS=warming up"]
    assert notifier.stopping() is True
    assert systemd.receive() == ["STOPPING=1", "STATUS=stopping"]
    assert notifier.notify("EXTEND_TIMEOUT_USEC=5000000", "STATUS=x") is True
    assert systemd.receive() == ["EXTEND_TIMEOUT_USEC=5000000", "STATUS=x"]
    assert (notifier.sent, notifier.errors) == (6, 0)


def test_extend_timeout_in_microseconds(systemd: Systemd) -> None:
    notifier = Notifier(systemd.address)
    assert notifier.extend_timeout(30, "starting: compiling") is True
    assert systemd.receive() == ["EXTEND_TIMEOUT_USEC=30000000", "STATUS=starting: compiling"]
    assert notifier.extend_timeout(0.0000001) is True
    assert systemd.receive() == ["EXTEND_TIMEOUT_USEC=1"]


def test_the_address_comes_from_notify_socket(systemd: Systemd,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    notifier = Notifier()
    assert notifier.address == systemd.address
    notifier.watchdog()
    assert systemd.receive() == ["WATCHDOG=1"]


def test_an_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pafw-test-notify-{os.getpid()}"
    receiver = Systemd(f"@{name}", f"\0{name}")
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", receiver.address)
        assert Notifier().ready() is True
        assert receiver.receive() == ["READY=1"]
    finally:
        receiver.sock.close()


@pytest.mark.parametrize("address", [None, ""])
def test_without_a_socket_every_call_is_a_no_op(address: str | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if address is not None:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = Notifier()
    assert not notifier.enabled
    assert [notifier.ready("x"), notifier.watchdog(), notifier.status("x"),
            notifier.stopping()] == [False] * 4
    assert (notifier.sent, notifier.errors) == (0, 0)


def test_an_explicit_empty_address_overrides_the_environment(
        systemd: Systemd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    assert not Notifier("").enabled
    assert Notifier("").watchdog() is False
    assert systemd.nothing_waiting()


def test_a_dead_socket_is_counted_and_warned_about_once(short_dir: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pafw.systemd")
    notifier = Notifier(str(short_dir / "nobody-listens"))
    assert notifier.enabled
    assert [notifier.watchdog() for _ in range(3)] == [False] * 3
    assert (notifier.sent, notifier.errors) == (0, 3)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot notify systemd at {short_dir / 'nobody-listens'}: ")


def test_a_socket_that_comes_back_is_used_again(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    notifier = Notifier(path)
    assert notifier.watchdog() is False
    receiver = Systemd(path, path)  # systemd (re)created it
    try:
        assert notifier.watchdog() is True
        assert receiver.receive() == ["WATCHDOG=1"]
        assert (notifier.sent, notifier.errors) == (1, 1)
    finally:
        receiver.sock.close()


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("30000000", None, 30.0),
    ("1500000", "self", 1.5),
    ("1500000", "other", None),  # meant for another process (the one systemd started)
    ("abc", None, None),
    ("-5", None, None),
    ("", None, None),
    (None, None, None),
])
def test_the_watchdog_period_is_for_this_process_only(monkeypatch: pytest.MonkeyPatch,
                                                      usec: str | None, pid: str | None,
                                                      expected: float | None) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() if pid == "self" else 1))
    assert Notifier("").watchdog_s == expected
