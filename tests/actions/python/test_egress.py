"""Kernel egress rules of a Python-action worker (firmware/actions/python/egress.py): the table
name, the nft script it builds (exact text, IPv4 and IPv6, no destination at all, a bad
address), whether tables can be managed and why not; and, where the test runs as root with
nft, the rules applied for real: a process of the worker's uid reaches the granted loopback
port and is reset on any other, ``install`` replaces, ``remove`` is idempotent and nft's
refusals become EgressError. Those tests skip cleanly without root or nft.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from firmware.actions.python import egress
from firmware.actions.python.egress import Destination, EgressError, ruleset, table_name


def test_table_names_keep_letters_digits_and_underscores_only() -> None:
    assert table_name("co2_alert-1234-2") == "pafw_co2_alert_1234_2"
    assert table_name("a.b c/d;e{f}") == "pafw_a_b_c_d_e_f_"
    assert table_name("x" * 500) == "pafw_" + "x" * 200


def test_the_ruleset_accepts_exactly_the_granted_destinations() -> None:
    script = ruleset("co2-alert", 61000, [Destination("192.0.2.10", 587),
                                          Destination("2001:db8::1", 443)])
    assert script == (
        "table inet pafw_co2_alert {}\n"
        "delete table inet pafw_co2_alert\n"
        "table inet pafw_co2_alert {\n"
        "  chain worker {\n"
        "    ip daddr 192.0.2.10 tcp dport 587 accept\n"
        "    ip6 daddr 2001:db8::1 tcp dport 443 accept\n"
        "    meta l4proto tcp counter reject with tcp reset\n"
        "    counter reject\n"
        "  }\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        "    meta skuid 61000 jump worker\n"
        "  }\n"
        "}\n")


def test_without_destinations_everything_the_uid_sends_is_rejected() -> None:
    script = ruleset("w", 61001, [])
    assert "accept\n" not in script.split("chain out")[0]
    assert "meta l4proto tcp counter reject with tcp reset" in script
    assert "    counter reject\n" in script and "meta skuid 61001 jump worker" in script


@pytest.mark.parametrize("address", ["smtp.example.com", "192.0.2.300", "", "::g"])
def test_an_address_that_is_not_an_ip_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        ruleset("w", 61000, [Destination(address, 25)])


def test_managing_tables_needs_the_privilege_and_nft() -> None:
    assert egress.available(False) == (False, "needs root or CAP_NET_ADMIN")
    expected = (True, "") if egress.nft_path() else (
        False, "nft is not installed (Debian package nftables)")
    assert egress.available(True) == expected


# -- applied for real (root and nft) ----------------------------------------------------------


def _nft_works() -> str | None:
    """Why the nft tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to manage nftables"
    nft = egress.nft_path()
    if nft is None:
        return "nft is not installed"
    try:
        probe = subprocess.run([nft, "list", "tables"], capture_output=True, text=True,
                               timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nft does not run: {exc}"
    if probe.returncode != 0:
        return f"nft cannot reach the kernel: {probe.stderr.strip()[:200]}"
    return None


NFT_UNAVAILABLE = _nft_works()
needs_nft = pytest.mark.skipif(NFT_UNAVAILABLE is not None, reason=str(NFT_UNAVAILABLE))


@pytest.fixture
def worker() -> Iterator[tuple[str, int]]:
    """A worker name and a uid nobody else uses (both from this process's pid, so parallel
    runs never share a table or a uid); the table is removed afterwards."""
    name = f"test-egress-{os.getpid()}-w"
    yield name, 2_000_000_000 + os.getpid()
    egress.remove(name)


def listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(20)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""


#: an interpreter any uid can run (a venv under a private home directory may not be)
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def connect_as(uid: int, port: int) -> str:
    """Connect to a loopback port from a process running as ``uid``; what happened."""
    out = subprocess.run([PYTHON, "-I", "-c", CONNECT, str(port)], cwd="/",
                         user=uid, group=uid, extra_groups=[], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout.strip()


def table_text(name: str) -> str:
    return subprocess.run([egress.nft_path() or "nft", "list", "table", "inet", name],
                          capture_output=True, text=True, timeout=30, check=True).stdout


@needs_nft
def test_the_uid_reaches_the_granted_port_only(worker: tuple[str, int]) -> None:
    name, uid = worker
    granted, other = listener(), listener()
    try:
        assert connect_as(uid, other.getsockname()[1]) == "connected"  # before: no rule
        egress.install(name, uid, [Destination("127.0.0.1", granted.getsockname()[1])])
        assert table_name(name) in egress.tables()
        assert connect_as(uid, granted.getsockname()[1]) == "connected"
        assert connect_as(uid, other.getsockname()[1]) == "ConnectionRefusedError"
        with socket.create_connection(other.getsockname(), timeout=20):
            pass  # another uid (this one) is not affected
    finally:
        granted.close()
        other.close()


@needs_nft
def test_install_replaces_and_remove_is_idempotent(worker: tuple[str, int]) -> None:
    name, uid = worker
    egress.install(name, uid, [Destination("192.0.2.10", 587)])
    egress.install(name, uid, [Destination("2001:db8::1", 443)])
    text = table_text(table_name(name))
    assert "192.0.2.10" not in text and "2001:db8::1" in text and "443" in text
    assert f"meta skuid {uid} jump worker" in text
    egress.remove(name)
    assert table_name(name) not in egress.tables()
    egress.remove(name)  # gone already: nothing happens


@needs_nft
def test_nft_refusals_are_egress_errors() -> None:
    with pytest.raises(EgressError, match=r"^nft refused the egress table: \S"):
        egress.drop_table("not a valid name")
    assert issubclass(EgressError, OSError)
