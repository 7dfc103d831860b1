"""`pafw run` end to end against a private Mosquitto: what a subscriber really receives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from firmware.app.status_file import read_snapshot, snapshot_path
from firmware.config.loader import default_config_text
from tests.mqtt_broker import Broker, Subscriber
from tests.waiting import wait_until

DEVICE = "cell-7"
ROOT = f"pafw/{DEVICE}"


def write_config(tmp_path: Path, broker: Broker, levels: list[float]) -> Path:
    data = yaml.safe_load(default_config_text())
    data["device"]["id"] = DEVICE
    data["acquisition"]["simulator"]["concentration"] = {
        "profile": "steps", "levels_ppm": levels, "step_s": 2.0, "repeat": False}
    data["mqtt"].update(host=broker.host, port=broker.port, measurement_interval_s=0.5,
                        reconnect_min_s=0.1, reconnect_max_s=0.5)
    data["hal"]["relays"]["alarm"].update(min_on_s=0.0, min_off_s=0.0)
    data["processing"]["status_interval_s"] = 1.0
    data["paths"]["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "pafw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_pafw(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                             str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=os.environ.copy())


def payloads(sub: Subscriber, suffix: str) -> list:
    return [m.json() for m in sub.on(f"{ROOT}/{suffix}")]


def test_measurements_events_states_discovery_and_last_will(mosquitto, tmp_path):
    sub = Subscriber(mosquitto, [f"{ROOT}/#", "homeassistant/#"], client_id="e2e-sub")
    proc = start_pafw(write_config(tmp_path, mosquitto, [500.0, 3000.0, 500.0]))
    try:
        assert sub.wait_for(lambda _m: [e["kind"] for e in payloads(sub, "events")
                                        if e["trigger_name"] == "high_gas"]
                            == ["trigger", "clear"], timeout=120)
        clear_seq = payloads(sub, "events")[-1]["seq"]
        assert sub.wait_for(lambda _m: sum(  # the second is past the step's transition frame
            m["seq"] > clear_seq for m in payloads(sub, "measurements")) >= 2, timeout=30)
        assert sub.wait_for(lambda _m: len(sub.on(f"{ROOT}/status")) > 0, timeout=30)
        availability = [m.payload.decode() for m in sub.on(f"{ROOT}/availability")]
        assert availability[0] == "online"

        measurements = payloads(sub, "measurements")
        seqs = [m["seq"] for m in measurements]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        conc = measurements[-1]["results"]["concentration"]
        assert {"ts", "time"} <= set(measurements[-1])
        assert conc["concentration_ppm"] == pytest.approx(500.0, rel=0.05)
        assert measurements[-1]["results"]["peak_finder"]["frequency_hz"] == pytest.approx(
            2000.0, abs=20)

        events = [e for e in payloads(sub, "events") if e["trigger_name"] == "high_gas"]
        assert events[0]["action_id"] == "mqtt" and events[0]["value"] > 2000.0
        assert events[0]["trigger_type"] == "concentration" and events[0]["threshold"] == 2000.0
        all_seqs = sorted(seqs + [e["seq"] for e in payloads(sub, "events")])
        assert len(set(all_seqs)) == len(all_seqs), "one seq counter for the device"

        alarm = [m.payload.decode() for m in sub.on(f"{ROOT}/state/alarm_mqtt_high_gas")]
        assert alarm[-3:] == ["OFF", "ON", "OFF"]
        relay = [m.payload.decode() for m in sub.on(f"{ROOT}/state/relay_alarm")]
        assert "ON" in relay and relay[-1] == "OFF"

        status = json.loads(sub.on(f"{ROOT}/status")[-1].payload)
        assert status["frames"] > 0 and status["control"]["actions"]["alarm_relay"]["triggers"] == 1

        sensor = next(m.json() for m in sub.messages
                      if m.topic.startswith("homeassistant/sensor/")
                      and m.json().get("device_class") == "carbon_dioxide")
        assert sensor["unit_of_measurement"] == "ppm"
        assert sensor["availability_topic"] == f"{ROOT}/availability"
        assert any(m.topic.endswith("/calibration/config") for m in sub.messages)

        sub.clear()
        proc.kill()  # no clean shutdown: the broker publishes the last will
        assert sub.wait_for(lambda _m: [m.payload for m in sub.on(f"{ROOT}/availability")]
                            == [b"offline"], timeout=30)
    finally:
        proc.kill()
        proc.wait()
        sub.close()


def test_clean_stop_says_offline(mosquitto, tmp_path):
    sub = Subscriber(mosquitto, [f"{ROOT}/availability"], client_id="e2e-avail")
    proc = start_pafw(write_config(tmp_path, mosquitto, [500.0]))
    try:
        assert sub.wait_for(lambda m: any(x.payload == b"online" for x in m), timeout=120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert sub.wait_for(lambda m: m[-1].payload == b"offline", timeout=30)
    finally:
        proc.kill()
        proc.wait()
        sub.close()


def test_messages_of_a_killed_appliance_arrive_after_restart(mosquitto, tmp_path):
    config = write_config(tmp_path, mosquitto, [800.0])
    mosquitto.stop()
    first = start_pafw(config)
    snapshot = snapshot_path(tmp_path / "state")

    def pending() -> int:
        status = read_snapshot(snapshot) or {}
        return int(((status.get("mqtt") or {}).get("outbox") or {}).get("pending") or 0)

    try:
        # measurements pile up in the outbox while no broker answers: wait for ten of them
        # (however long a loaded machine takes), as the status snapshot reports them
        wait_until(lambda: pending() >= 10, 120, "10 measurements in the first run's outbox")
    finally:
        first.kill()  # kill -9 with messages pending
        first.wait()
    mosquitto.start()
    sub = Subscriber(mosquitto, [f"{ROOT}/measurements"], client_id="e2e-restart")
    second = start_pafw(config)
    try:
        assert sub.wait_for(lambda m: len(m) >= 10, timeout=60)
        seqs = [m.json()["seq"] for m in sub.messages]
        assert seqs[:10] == list(range(1, 11)), "the first run's messages come first, in order"
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        second.kill()
        second.wait()
        sub.close()
