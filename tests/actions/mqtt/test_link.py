"""MqttLink against a real Mosquitto: payloads, availability/LWT, outages, kill -9, settings.

The delivery tests check what a consumer sees: every ``seq`` once, in publication order. A
broker-to-subscriber redelivery (the broker re-sends with the DUP flag to the persistent test
subscriber when it was stopped before reading the subscriber's PUBACK) is the subscriber
leg's QoS 1 behaviour, not the link's; such copies are ignored, while any copy produced by
the link would arrive without DUP (the broker does not forward the publisher's DUP flag) and
fail the test.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from firmware.actions.mqtt.link import MqttError, MqttLink, json_safe
from firmware.actions.mqtt.settings import MqttSettings
from tests.mqtt_broker import Broker, Received, Subscriber, free_port
from tests.paths import REPO
from tests.waiting import holds_for, wait_until

FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5}


def make_link(broker: Broker, state_dir: Path, device_id: str = "dev1", **options) -> MqttLink:
    settings = MqttSettings(host=broker.host, port=broker.port, **{**FAST, **options})
    return MqttLink(settings, device_id=device_id, state_dir=state_dir, software_version="9.9")


def fresh(messages: list[Received]) -> list[Received]:
    """Messages without the broker's own DUP redeliveries to the test subscriber."""
    return [m for m in messages if not m.dup]


def seqs(messages: list[Received]) -> list[int]:
    return [m.json()["seq"] for m in fresh(messages)]


# -- payloads, retained topics, availability --------------------------------------------------

def test_measurements_and_events_arrive_with_seq_ts_time(mosquitto, tmp_path):
    sub = Subscriber(mosquitto, ["pafw/dev1/#"])
    link = make_link(mosquitto, tmp_path)
    link.start()
    assert link.wait_connected(10)
    before = time.time()
    for i in range(5):
        link.publish_measurement({"results": {"co2": {"concentration_ppm": 400.0 + i,
                                                      "amplitude": math.nan}}})
    assert link.publish_event({"type": "trigger", "ts": 1234.5, "data": {"x": math.inf}}) == 6
    link.publish_status({"frames": 3})
    link.publish_state("relay_fan", "ON")
    wanted = {"measurements": 5, "events": 1, "status": 1, "state/relay_fan": 1}
    assert sub.wait_for(lambda m: all(
        len([x for x in m if x.topic == f"pafw/dev1/{k}"]) >= n for k, n in wanted.items()), 10)
    try:
        measurements = sub.on("pafw/dev1/measurements")
        assert [m.json()["seq"] for m in measurements] == [1, 2, 3, 4, 5]
        for i, m in enumerate(measurements):
            body = m.json()
            assert m.qos == 1 and not m.retain
            assert before - 1 <= body["ts"] <= time.time() + 1
            parsed = datetime.fromisoformat(body["time"])
            assert parsed.utcoffset().total_seconds() == 0
            assert abs(parsed.timestamp() - body["ts"]) < 0.002
            assert body["results"] == {"co2": {"concentration_ppm": 400.0 + i, "amplitude": None}}
        (event,) = sub.on("pafw/dev1/events")
        assert event.json() == {"seq": 6, "ts": 1234.5, "time": "1970-01-01T00:20:34.500+00:00",
                                "type": "trigger", "data": {"x": None}}
        (status,) = sub.on("pafw/dev1/status")
        assert status.json()["frames"] == 3 and "time" in status.json()
        assert [m.payload for m in sub.on("pafw/dev1/availability")] == [b"online"]
        wait_until(lambda: link.get_status()["acked"] == 9)
        st = link.get_status()
        assert st["connected"] and st["connects"] == 1 and st["inflight"] == 0
        assert st["outbox"]["pending"] == 0
        assert st["acked"] == st["published"] == 9 and st["outbox"]["last_seq"] == 6
    finally:
        link.stop()
        sub.close()
    # retained: a late subscriber gets the last status, state and availability
    late = Subscriber(mosquitto, ["pafw/dev1/#"], client_id="late")
    assert late.wait_for(lambda m: len(m) >= 3, 30)
    retained = {m.topic: m.payload for m in late.messages if m.retain}
    late.close()
    assert retained["pafw/dev1/availability"] == b"offline"
    assert retained["pafw/dev1/state/relay_fan"] == b"ON"
    assert json.loads(retained["pafw/dev1/status"])["frames"] == 3


def test_online_on_connect_and_explicit_offline_on_clean_stop(mosquitto, tmp_path):
    sub = Subscriber(mosquitto, ["pafw/dev1/availability", "pafw/dev1/state/#"])
    link = make_link(mosquitto, tmp_path)
    link.start()
    link.start()  # idempotent
    assert sub.wait_for(lambda m: [x.payload for x in m] == [b"online"], 30)
    link.publish_state("relay_fan", "OFF")  # a last state right before stopping still goes out
    link.stop()
    assert sub.wait_for(lambda m: [x.payload for x in m] == [b"online", b"OFF", b"offline"], 30)
    link.stop()  # idempotent
    assert link.get_status()["connected"] is False
    sub.close()


def test_start_never_blocks_and_messages_wait_for_the_broker(tmp_path):
    broker = Broker(tmp_path / "broker", port=free_port())
    with broker:  # register a persistent subscription, then take the broker away
        Subscriber(broker, ["pafw/dev1/measurements"], persistent=True).close()
    link = make_link(broker, tmp_path / "state")
    t0 = time.monotonic()
    link.start()
    assert [link.publish_measurement({"i": i}) for i in range(3)] == [1, 2, 3]
    # the behaviour under test is a bound: start and publish return without waiting for a
    # connection (a blocking start would wait for the 10 s connect timeout or forever)
    assert time.monotonic() - t0 < 5.0
    wait_until(lambda: "cannot connect to 127.0.0.1" in (link.get_status()["last_error"] or ""),
               what="the refused connection to be reported")
    st = link.get_status()
    assert not st["connected"] and st["outbox"]["pending"] == 3
    with broker:
        try:
            assert link.wait_connected(10)
            link.publish_measurement({"i": 3})
            sub = Subscriber(broker, ["pafw/dev1/measurements"], persistent=True)
            assert sub.wait_for(lambda m: len(fresh(m)) >= 4, 30)
            assert seqs(sub.messages) == [1, 2, 3, 4]
            sub.close()
            wait_until(lambda: link.get_status()["outbox"]["pending"] == 0)
        finally:
            link.stop()


def test_paused_broker_keeps_at_most_max_inflight_in_paho(mosquitto, tmp_path):
    sub = Subscriber(mosquitto, ["pafw/dev1/measurements"])
    link = make_link(mosquitto, tmp_path, max_inflight=5)
    link.start()
    assert link.wait_connected(10)
    mosquitto.pause()
    try:
        for i in range(50):
            link.publish_measurement({"i": i})
        wait_until(lambda: link.get_status()["inflight"] == 5, what="5 messages in flight")
        # and no more than five go out while the broker stays silent
        holds_for(lambda: link.get_status()["inflight"] == 5, 0.5, "5 in flight")
        assert link.get_status()["outbox"]["pending"] == 50
    finally:
        mosquitto.resume()
    assert sub.wait_for(lambda m: len(fresh(m)) >= 50, 30)
    assert seqs(sub.messages) == list(range(1, 51))
    link.stop()
    sub.close()


def test_messages_in_flight_at_a_connection_loss_are_sent_once_in_order(mosquitto, tmp_path):
    """paho retransmits its unacknowledged messages itself; the link must not add copies."""
    # The subscriber's session is persistent and saved by a clean restart, so it survives the
    # kill -9 below: the broker queues for it whatever the link sends before it is back.
    # (Relying on the subscriber reconnecting before the link is a race a loaded machine
    # loses.)
    sub = Subscriber(mosquitto, ["pafw/dev1/measurements"], persistent=True)
    mosquitto.stop()
    wait_until(lambda: not sub.subscribed.is_set(), what="the subscriber to see the restart")
    mosquitto.start()
    assert sub.subscribed.wait(30)
    link = make_link(mosquitto, tmp_path, max_inflight=5, reconnect_min_s=2.0,
                     reconnect_max_s=2.0)
    link.start()
    assert link.wait_connected(10)
    for i in range(3):
        link.publish_measurement({"i": i})
    assert sub.wait_for(lambda m: len(m) == 3, 30)
    mosquitto.pause()  # the next five are written to the socket but never acknowledged
    for i in range(3, 23):
        link.publish_measurement({"i": i})
    wait_until(lambda: link.get_status()["inflight"] == 5)
    mosquitto.kill()
    wait_until(lambda: not sub.subscribed.is_set())
    mosquitto.start()
    assert sub.subscribed.wait(30)
    try:
        assert sub.wait_for(lambda m: len(fresh(m)) >= 23, 30)
        time.sleep(0.3)  # a duplicate would arrive right behind
        assert seqs(sub.messages) == list(range(1, 24))
        st = link.get_status()
        assert st["resumed_inflight"] == 5 and st["connects"] == 2
        wait_until(lambda: link.get_status()["outbox"]["pending"] == 0)
    finally:
        link.stop()
        sub.close()


# -- outage: every message once, in order -------------------------------------------------------

def test_broker_outage_of_30s_loses_and_duplicates_nothing(mosquitto, tmp_path):
    """A publisher keeps going through a 30 s outage; the subscriber gets every message once,
    in order. The test waits on counts of messages, never on how many a thread managed to
    publish in a given time (that is the machine's pace, not the link's behaviour)."""
    sub = Subscriber(mosquitto, ["pafw/dev1/measurements"], persistent=True)
    link = make_link(mosquitto, tmp_path)
    link.start()
    assert link.wait_connected(10)
    sent: list[int] = []
    done = threading.Event()

    def stream() -> None:  # about 10 messages per second throughout
        nxt = time.monotonic()
        while not done.is_set():
            sent.append(link.publish_measurement({"results": {}, "n": len(sent)}))
            nxt += 0.1
            time.sleep(max(0.0, nxt - time.monotonic()))

    publisher = threading.Thread(target=stream)
    publisher.start()
    try:
        assert sub.wait_for(lambda m: len(fresh(m)) >= 20, 60), "delivery before the outage"
        mosquitto.stop()
        at_stop = len(sent)
        stopped_at = time.monotonic()
        # the outage lasts at least 30 s and holds at least 250 messages back
        wait_until(lambda: time.monotonic() - stopped_at >= 30.0
                    and len(sent) - at_stop >= 250, 180, "30 s and 250 messages of outage")
        during = len(sent) - at_stop
        st = link.get_status()
        assert not link.connected and st["outbox"]["pending"] >= during, (during, st)
        mosquitto.start()
        wait_until(lambda: link.connected, 60, "the link to reconnect")
        at_reconnect = len(sent)
        wait_until(lambda: len(sent) - at_reconnect >= 20, 60,
                    "20 messages published after the reconnection")
    finally:
        done.set()
        publisher.join()
    try:
        assert sub.wait_for(lambda m: len(fresh(m)) >= len(sent), 120), len(sub.messages)
        assert sent == list(range(1, len(sent) + 1))
        assert seqs(sub.messages) == sent  # every message, exactly once, in order
        assert [m.json()["n"] for m in fresh(sub.messages)] == list(range(len(sent)))
        wait_until(lambda: link.get_status()["outbox"]["pending"] == 0, 60,
                    "an empty outbox")
        st = link.get_status()
        assert st["connects"] == 2 and st["disconnects"] == 1 and st["outbox"]["dropped"] == 0
    finally:
        link.stop()
        sub.close()


# -- process death: LWT, kill -9 with pending messages -------------------------------------------

CHILD = """
import json, sys, time, pathlib
from firmware.actions.mqtt.link import MqttLink
from firmware.actions.mqtt.settings import MqttSettings
host, port, state = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
link = MqttLink(MqttSettings(host=host, port=port, reconnect_min_s=0.1, reconnect_max_s=0.5),
                device_id="kid", state_dir=state, software_version="t")
link.start()
def wait(cond, timeout=60.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()
print("started", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "connected":
        print(link.wait_connected(30), flush=True)
    elif cmd == "disconnected":
        print(wait(lambda: not link.connected), flush=True)
    elif cmd == "publish":
        seqs = [link.publish_measurement({"tag": args[1], "i": i}) for i in range(int(args[0]))]
        print(json.dumps(seqs), flush=True)
    elif cmd == "drain":
        st = link.get_status
        print(wait(lambda: st()["outbox"]["pending"] == 0 and st()["inflight"] == 0), flush=True)
    elif cmd == "pending":
        print(link.get_status()["outbox"]["pending"], flush=True)
    elif cmd == "stop":
        link.stop()
        print("stopped", flush=True)
"""


class Child:
    """The link in a separate process, driven line by line over stdin/stdout."""

    def __init__(self, script: Path, broker: Broker, state: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), broker.host, str(broker.port), str(state)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        assert self.read() == "started"

    def read(self, timeout: float = 90.0) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "child did not answer"
        line = self.proc.stdout.readline()
        assert line, f"child exited with {self.proc.wait()}"
        return line.strip()

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def child_script(tmp_path):
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def test_lwt_offline_reaches_subscriber_when_process_is_killed(mosquitto, tmp_path,
                                                                child_script):
    sub = Subscriber(mosquitto, ["pafw/kid/availability"])
    child = Child(child_script, mosquitto, tmp_path / "state")
    try:
        assert child.ask("connected") == "True"
        assert sub.wait_for(lambda m: [x.payload for x in m] == [b"online"], 30)
        child.kill9()
        assert sub.wait_for(lambda m: [x.payload for x in m] == [b"online", b"offline"], 30)
    finally:
        child.close()
        sub.close()


def test_kill9_with_pending_messages_then_restart_delivers_them(mosquitto, tmp_path,
                                                                 child_script):
    sub = Subscriber(mosquitto, ["pafw/kid/measurements"])
    state = tmp_path / "state"
    first = Child(child_script, mosquitto, state)
    try:
        assert first.ask("connected") == "True"
        assert json.loads(first.ask("publish 5 a")) == [1, 2, 3, 4, 5]
        assert first.ask("drain") == "True"
        mosquitto.stop()
        assert first.ask("disconnected") == "True"
        wait_until(lambda: not sub.subscribed.is_set())
        assert json.loads(first.ask("publish 10 b")) == list(range(6, 16))
        assert first.ask("pending") == "10"
        first.kill9()
    finally:
        first.close()
    mosquitto.start()
    assert sub.subscribed.wait(30)
    second = Child(child_script, mosquitto, state)
    try:
        assert second.ask("connected") == "True"
        assert json.loads(second.ask("publish 5 c")) == list(range(16, 21))
        assert second.ask("drain") == "True"
        assert second.ask("stop") == "stopped"
    finally:
        second.close()
    assert sub.wait_for(lambda m: len(fresh(m)) >= 20, 30)
    assert seqs(sub.messages) == list(range(1, 21))
    assert [m.json()["tag"] for m in fresh(sub.messages)] == ["a"] * 5 + ["b"] * 10 + ["c"] * 5
    sub.close()


# -- credentials and TLS -----------------------------------------------------------------------

def test_username_password_are_used_and_a_refusal_is_reported(tmp_path):
    with Broker(tmp_path / "broker", users={"pafw": "right"}) as broker:
        sub = Subscriber(broker, ["pafw/dev1/measurements"], credentials=("pafw", "right"))
        good = make_link(broker, tmp_path / "good", username="pafw", password="right")
        bad = make_link(broker, tmp_path / "bad", device_id="dev2", username="pafw",
                        password="wrong")
        try:
            good.start()
            bad.start()
            assert good.wait_connected(10)
            good.publish_measurement({"ok": True})
            assert sub.wait_for(lambda m: len(m) == 1, 30)
            wait_until(lambda: "refused" in (bad.get_status()["last_error"] or ""))
            assert not bad.connected and "right" not in str(bad.get_status())
        finally:
            good.stop()
            bad.stop()
            sub.close()


def test_tls_with_a_private_ca(tmp_path):
    with Broker(tmp_path / "broker", tls=True) as broker:
        sub = Subscriber(broker, ["pafw/dev1/measurements"])
        link = make_link(broker, tmp_path / "s1", tls={"enabled": True,
                                                       "ca_file": str(broker.ca_file)})
        untrusted = make_link(broker, tmp_path / "s2", device_id="dev2", tls={"enabled": True})
        try:
            link.start()
            untrusted.start()
            assert link.wait_connected(10)
            link.publish_measurement({"tls": True})
            assert sub.wait_for(lambda m: len(m) == 1, 30)
            wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in (
                untrusted.get_status()["last_error"] or ""))
            assert not untrusted.connected
        finally:
            link.stop()
            untrusted.stop()
            sub.close()


# -- settings and helpers -------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "match"), [
    ({"base_topic": "pafw/#"}, "wildcards"),
    ({"base_topic": "/pafw"}, "must not start or end with '/'"),
    ({"base_topic": "a//b"}, "invalid level"),
    ({"port": 0}, "greater than or equal to 1"),
    ({"reconnect_min_s": 5, "reconnect_max_s": 1}, r"reconnect_max_s \(1\) must be >="),
    ({"password": "x"}, "password is set but username is not"),
    ({"tls": {"enabled": True, "cert_file": "c.pem"}}, "tls.cert_file is set but tls.key_file"),
    ({"tls": {"ca_file": "ca.pem"}}, "tls.ca_file is set but tls.enabled is false"),
    ({"discovery": {"prefix": "home+assistant"}}, "discovery.prefix"),
    ({"client_id": "has space"}, "printable ASCII"),
    ({"measurement_interval_s": 0}, "greater than 0"),
    ({"hots": "x"}, "Extra inputs are not permitted"),
])
def test_settings_reject_bad_values_with_clear_messages(options, match):
    with pytest.raises(ValueError, match=match):
        MqttSettings.model_validate(options)


def test_settings_defaults_and_client_id():
    s = MqttSettings()
    assert (s.host, s.port, s.base_topic, s.max_inflight) == ("localhost", 1883, "pafw", 20)
    assert s.client_id_for("lab1") == "pafw-lab1"
    assert MqttSettings(client_id="x1").client_id_for("lab1") == "x1"
    secret = MqttSettings(username="u", password="s3cr3t-pw")
    assert secret.password.get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(secret) and "s3cr3t-pw" not in str(secret.model_dump())


def test_link_rejects_bad_names_and_missing_tls_files(tmp_path):
    with pytest.raises(MqttError, match="device id 'a/b'"):
        MqttLink(MqttSettings(), device_id="a/b", state_dir=tmp_path, software_version="0")
    tls = MqttSettings(tls={"enabled": True, "ca_file": str(tmp_path / "nope.pem")})
    with pytest.raises(MqttError, match=r"mqtt.tls.ca_file: .*nope.pem does not exist"):
        MqttLink(tls, device_id="d", state_dir=tmp_path / "s1", software_version="0")
    link = MqttLink(MqttSettings(), device_id="d", state_dir=tmp_path / "s2",
                    software_version="0")
    with pytest.raises(MqttError, match="state name 'relay/x'"):
        link.publish_state("relay/x", "ON")
    link.stop()
    assert link.publish_measurement({}) is None  # after stop: counted as lost, never raised
    assert link.get_status()["lost"] == 1


def test_disabled_link_does_nothing(tmp_path):
    link = MqttLink(MqttSettings(enabled=False), device_id="d", state_dir=tmp_path,
                    software_version="0")
    link.start()
    assert link.publish_measurement({"x": 1}) is None
    link.publish_state("relay_a", "ON")
    assert link.get_status()["enabled"] is False and link.get_status()["outbox"] is None
    link.stop()
    assert not list(tmp_path.iterdir())


def test_json_safe_converts_nan_numpy_and_unknown_types():
    np = pytest.importorskip("numpy")
    value = {"a": math.nan, "b": [np.float32(1.5), np.int64(2), np.array([1.0, np.nan])],
             "c": (1, -math.inf), 3: Path("/x"), "d": True}
    assert json_safe(value) == {"a": None, "b": [1.5, 2, [1.0, None]], "c": [1, None],
                                "3": "/x", "d": True}
