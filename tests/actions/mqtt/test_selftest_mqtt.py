"""The self-test on MQTT and in Home Assistant: a diagnostic problem sensor is announced
(entity_category diagnostic, on while a check fails, the report as its attributes), and the
appliance publishes each report retained on ``state/selftest``, seen by a subscriber of a
private Mosquitto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firmware.actions.mqtt.discovery import DiscoveryEntities, discovery_messages
from firmware.app.appliance import Appliance
from firmware.config.loader import ConfigDocument
from tests.mqtt_broker import Broker, Subscriber
from tests.waiting import wait_until

DEVICE = "cell-9"


def test_the_self_test_is_a_diagnostic_entity() -> None:
    messages = dict(discovery_messages(
        DiscoveryEntities(selftest=True), device_id="lab1", device_name="Lab",
        base_topic="pafw", prefix="homeassistant", gas_device_class="carbon_dioxide",
        gas_name="CO2", software_version="1"))
    config = messages["homeassistant/binary_sensor/lab1/selftest/config"]
    assert config["entity_category"] == "diagnostic"
    assert config["device_class"] == "problem"
    assert config["state_topic"] == config["json_attributes_topic"] == "pafw/lab1/state/selftest"
    assert "value_json.passed" in config["value_template"]
    assert not any("selftest" in t for t, _ in discovery_messages(
        DiscoveryEntities(), device_id="lab1", device_name="Lab", base_topic="pafw",
        prefix="homeassistant", gas_device_class="carbon_dioxide", gas_name="CO2",
        software_version="1"))


def test_each_report_is_published_retained(mosquitto: Broker,
                                           make_doc: Callable[..., ConfigDocument]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["device"]["id"] = DEVICE
        data["mqtt"].update(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.1,
                            reconnect_max_s=0.5)
        data["selftest"] = {"duration_s": 1.0, "resonance_hz": 2100.0, "band_hz": 600.0}

    sub = Subscriber(mosquitto, [f"pafw/{DEVICE}/state/selftest", "homeassistant/#"],
                     client_id="selftest-sub")
    appliance = Appliance(make_doc(edit), realtime=True)
    try:
        appliance.start()
        topic = f"pafw/{DEVICE}/state/selftest"
        assert sub.wait_for(lambda _m: bool(sub.on(topic)), timeout=60)
        report = sub.on(topic)[-1].json()
        assert report["passed"] is False and report["failed"] == ["resonance_frequency"]
        assert report["trigger"] == "start" and len(report["checks"]) == 7
        config_topic = f"homeassistant/binary_sensor/{DEVICE}/selftest/config"
        wait_until(lambda: bool(sub.on(config_topic)), what="the discovery config")
        assert sub.on(config_topic)[-1].json()["entity_category"] == "diagnostic"
    finally:
        appliance.stop()
        sub.close()
    late = Subscriber(mosquitto, [f"pafw/{DEVICE}/state/selftest"], client_id="late-sub")
    try:  # retained: a subscriber that comes later gets the newest report at once
        assert late.wait_for(lambda _m: bool(late.messages), timeout=10)
        assert late.messages[-1].retain and late.messages[-1].json()["failed"] == [
            "resonance_frequency"]
    finally:
        late.close()
