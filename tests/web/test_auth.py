"""Who may read and write (firmware/web/auth.py): every write endpoint refuses a missing token
(401) and a wrong one (403) without changing anything; writes are off without a configured
token; reads follow ``web.read_access``; the policy's own checks (networks, Host headers against
DNS rebinding, bearer parsing, the refusal counter) on requests built directly."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from firmware.web.api import ROUTES
from firmware.web.auth import AccessPolicy, client_network, host_name, this_hosts_names
from firmware.web.http import HttpError, Request
from tests.web.conftest import TOKEN, WebRig

WRITE_PATHS = {r.path.replace("{id}", "alarm_relay").replace("{name}", "alarm"): r
               for r in ROUTES if r.access == "write"}
OPERATOR_KINDS = {"enabled", "disabled", "acknowledged", "reloaded", "reload_failed"}
BODIES = {"/api/v1/relays/alarm/pulse": {"seconds": 0.5}}


def snapshot(rig: WebRig) -> dict[str, Any]:
    """What a refused write must leave alone."""
    relay = rig.appliance.hal.relay("alarm") if rig.appliance.hal else None
    return {"enabled": [h.enabled for h in rig.appliance.handlers],
            "acknowledged": [sorted(h.acknowledged) for h in rig.appliance.handlers],
            "relay_switches": relay.get_status()["switch_count"] if relay else None,
            "operator_events": [e for e in rig.appliance.action_events.since(0)
                                if e.kind in OPERATOR_KINDS],
            "calibration": {k: v for k, v in (rig.appliance.calibration.get_status().items()
                                              if rig.appliance.calibration else ())
                            if k in ("coefficients", "session", "pressure_hpa")},
            "simulator_gas": getattr(rig.appliance.analyzer.source, "gas_ppm", None)}


@pytest.fixture
def rig(make_rig: Any) -> WebRig:
    return make_rig()


def test_writes_refuse_missing_and_wrong_tokens(rig: WebRig) -> None:
    assert len(WRITE_PATHS) == 6 + 9  # operator + calibration writes
    before = snapshot(rig)
    for path in WRITE_PATHS:
        body = BODIES.get(path, {})
        missing = rig.post(path, body)
        assert missing.status == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.body["error"]["code"] == "unauthorized"
        for wrong in (TOKEN + "x", TOKEN[:-1], "", "Basic abc"):
            headers = {"Authorization": wrong if wrong.startswith("Basic") else
                       f"Bearer {wrong}"}
            answer = rig.post(path, body, headers=headers)
            assert answer.status in (401, 403), (path, wrong)
        assert rig.post(path, body, token=TOKEN.upper()).status == 403
    assert snapshot(rig) == before
    assert rig.server.policy.failures >= len(WRITE_PATHS) * 6


def test_the_right_token_is_accepted(rig: WebRig) -> None:
    answer = rig.post("/api/v1/actions/alarm_relay/disable", token=TOKEN)
    assert answer.status == 200 and answer.body["enabled"] is False
    assert rig.post("/api/v1/actions/alarm_relay/enable", token=TOKEN).body["enabled"] is True


def test_writes_are_disabled_without_a_configured_token(make_rig: Any) -> None:
    rig = make_rig(token=None)
    before = snapshot(rig)
    for path in WRITE_PATHS:
        for token in (None, TOKEN):
            answer = rig.post(path, BODIES.get(path, {}), token=token)
            assert answer.status == 403, path
            assert answer.body["error"]["code"] == "writes_disabled"
    assert snapshot(rig) == before


def test_reads_are_open_to_loopback(rig: WebRig) -> None:
    assert rig.get("/api/v1/status").status == 200
    assert rig.get("/").status == 200


@pytest.mark.parametrize(("peer", "network"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("192.168.1.20", "lan"), ("10.1.2.3", "lan"),
    ("172.16.0.9", "lan"), ("169.254.3.4", "lan"), ("fe80::1%eth0", "lan"), ("fd00::5", "lan"),
    ("::ffff:192.168.0.7", "lan"), ("8.8.8.8", "public"), ("2001:4860::1", "public"),
    # what Python calls private but is no LAN: Teredo, benchmarking, reserved, documentation
    ("2001:0::1", "public"), ("198.18.0.1", "public"), ("240.0.0.1", "public"),
    ("2001:db8::1", "public"), ("0.0.0.0", "public"), ("garbage", "public")])
def test_client_networks(peer: str, network: str) -> None:
    assert client_network(peer) == network


def request_from(peer: str, token: str | None = None) -> Request:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return Request("GET", "/api/v1/status", "/api/v1/status", {}, "HTTP/1.1", headers, b"",
                   peer)


def test_read_policy_follows_the_setting() -> None:
    loopback_only = AccessPolicy(read_access="loopback", token=TOKEN)
    lan = AccessPolicy(read_access="lan", token=TOKEN)
    loopback_only.check_read(request_from("127.0.0.1"))
    lan.check_read(request_from("192.168.1.20"))
    with pytest.raises(HttpError) as refused:
        loopback_only.check_read(request_from("192.168.1.20"))
    assert refused.value.status == 401
    loopback_only.check_read(request_from("192.168.1.20", TOKEN))
    with pytest.raises(HttpError) as wrong:
        loopback_only.check_read(request_from("192.168.1.20", "nope"))
    assert wrong.value.status == 403
    for policy in (loopback_only, lan):
        with pytest.raises(HttpError) as public:
            policy.check_read(request_from("8.8.8.8"))
        assert public.value.status == 401
        policy.check_read(request_from("8.8.8.8", TOKEN))
    no_token = AccessPolicy(read_access="loopback", token=None)
    with pytest.raises(HttpError) as anyway:
        no_token.check_read(request_from("10.0.0.2", TOKEN))
    assert anyway.value.status == 403


def test_short_tokens_are_a_config_error(make_doc: Any) -> None:
    from firmware.errors import ConfigError

    def change(data: dict[str, Any]) -> None:
        data["web"] = {"token": "short"}

    with pytest.raises(ConfigError, match=r"web\.token.*at least 16"):
        make_doc(change)


def request_with(headers: dict[str, str], peer: str = "127.0.0.1") -> Request:
    return Request("POST", "/x", "/x", {}, "HTTP/1.1", headers, b"", peer)


def refusal(check: Any, request: Request) -> HttpError:
    with pytest.raises(HttpError) as info:
        check(request)
    return info.value


def test_writes_need_the_configured_token() -> None:
    policy = AccessPolicy(read_access="loopback", token=TOKEN)
    assert policy.writes_enabled
    policy.check_write(request_with({"authorization": f"Bearer {TOKEN}"}))
    policy.check_write(request_with({"authorization": f"bearer   {TOKEN}  "}))  # any case/space
    missing = refusal(policy.check_write, request_with({}))
    assert (missing.status, missing.code) == (401, "unauthorized")
    assert missing.message == ("this operation needs the bearer token (Authorization: Bearer "
                               "<web.token>)")
    assert missing.headers == {"WWW-Authenticate": 'Bearer realm="pafw"'}
    for header in (f"Bearer {TOKEN}x", "Bearer ", "Bearer", f"Basic {TOKEN}", TOKEN,
                   f"Bearer {TOKEN[:-1]}é"):
        wrong = refusal(policy.check_write, request_with({"authorization": header}))
        assert (wrong.status, wrong.code, wrong.message) == (403, "forbidden",
                                                             "the bearer token is wrong"), header
        assert wrong.headers == {"WWW-Authenticate": 'Bearer realm="pafw", '
                                                     'error="invalid_token"'}
    assert policy.failures == 7


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_token_every_write_is_refused(token: str | None) -> None:
    policy = AccessPolicy(read_access="lan", token=token)
    assert not policy.writes_enabled
    for headers in ({}, {"authorization": f"Bearer {TOKEN}"}, {"authorization": "Bearer "}):
        refused = refusal(policy.check_write, request_with(headers))
        assert (refused.status, refused.code) == (403, "writes_disabled")
        assert refused.message == "write operations are disabled: no web.token is configured"
    assert policy.failures == 3


def test_read_refusals_say_where_reads_are_open() -> None:
    loopback = refusal(AccessPolicy(read_access="loopback", token=TOKEN).check_read,
                       request_with({}, peer="10.0.0.7"))
    assert loopback.message == "reads are open to loopback only; send the bearer token"
    assert loopback.headers == {"WWW-Authenticate": 'Bearer realm="pafw"'}
    lan = refusal(AccessPolicy(read_access="lan", token=TOKEN).check_read,
                  request_with({}, peer="8.8.4.4"))
    assert lan.message == "reads are open to the local network only; send the bearer token"


@pytest.mark.parametrize(("header", "name"), [
    ("192.168.1.5:8080", "192.168.1.5"), ("Pafw.LOCAL", "pafw.local"), ("[::1]:8080", "::1"),
    ("[fe80::1%eth0]", "fe80::1%eth0"), ("::1", "::1"), (" host:1 ", "host"),
    ("example.org", "example.org"),
])
def test_host_name_of_a_host_header(header: str, name: str) -> None:
    assert host_name(header) == name


def test_this_hosts_names() -> None:
    names = this_hosts_names(["Analyzer.Example.ORG", ""])
    hostname = socket.gethostname().lower()
    assert {"localhost", hostname, f"{hostname}.local", socket.getfqdn().lower(),
            "analyzer.example.org"} <= names
    assert "" not in names and all(n == n.lower() for n in names)


@pytest.mark.parametrize("host", [None, "127.0.0.1:8080", "10.1.2.3", "[::1]:80",
                                  "[fe80::1%eth0]:8080", "LOCALHOST:8080", "lab-pafw.example",
                                  f"{socket.gethostname()}.local"])
def test_hosts_that_name_an_address_or_this_appliance(host: str | None) -> None:
    policy = AccessPolicy(read_access="loopback", token=None, allowed_hosts=["LAB-pafw.example"])
    policy.check_host(request_with({} if host is None else {"host": host}))
    assert policy.failures == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example",
                                  f"{socket.gethostname()}-other", ""])
def test_other_hosts_are_refused(host: str) -> None:
    policy = AccessPolicy(read_access="lan", token=TOKEN)
    refused = refusal(policy.check_host, request_with({"host": host}))
    assert (refused.status, refused.code) == (403, "host_not_allowed")
    assert refused.message == (f"Host {host_name(host)!r} is not a name of this appliance; "
                               f"open it by its address or add the name to web.allowed_hosts")
    assert policy.failures == 1


def test_a_long_host_is_shortened_in_the_message() -> None:
    refused = refusal(AccessPolicy(read_access="lan", token=None).check_host,
                      request_with({"host": "a" * 500}))
    assert f"Host {'a' * 100!r} is not" in refused.message
