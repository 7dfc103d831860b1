"""Home Assistant discovery: config shapes, and republishing when Home Assistant comes online."""

from __future__ import annotations

import json

import pytest

from firmware.actions.mqtt.discovery import DiscoveryEntities, discovery_messages, object_name
from firmware.actions.mqtt.link import MqttLink
from firmware.actions.mqtt.settings import MqttSettings
from tests.mqtt_broker import Subscriber
from tests.waiting import wait_until

ENTITIES = DiscoveryEntities(concentration_nodes=["co2"], peak_nodes=["peak.main"],
                             alarms=["high"], relays=["fan"])


def messages(entities: DiscoveryEntities = ENTITIES, **overrides) -> dict[str, dict]:
    options = {"device_id": "lab1", "device_name": "Lab analyzer", "base_topic": "site/pafw",
               "prefix": "homeassistant", "gas_device_class": "carbon_dioxide",
               "gas_name": "CO2", "software_version": "1.2.3", **overrides}
    return dict(discovery_messages(entities, **options))


def test_every_entity_has_ids_availability_device_and_origin():
    msgs = messages()
    assert sorted(msgs) == [
        "homeassistant/binary_sensor/lab1/alarm_high/config",
        "homeassistant/binary_sensor/lab1/relay_fan/config",
        "homeassistant/sensor/lab1/co2_concentration/config",
        "homeassistant/sensor/lab1/peak_main_amplitude/config",
        "homeassistant/sensor/lab1/peak_main_frequency/config",
    ]
    unique = {c["unique_id"] for c in msgs.values()}
    assert len(unique) == 5 and all(u.startswith("lab1_") for u in unique)
    for topic, config in msgs.items():
        assert config["object_id"] == config["unique_id"]
        assert topic.split("/")[3] in config["unique_id"]
        assert config["availability_topic"] == "site/pafw/lab1/availability"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online", "offline")
        assert config["device"] == {"identifiers": ["lab1"], "name": "Lab analyzer",
                                    "manufacturer": "pafw",
                                    "model": "Photoacoustic gas analyzer", "sw_version": "1.2.3"}
        assert config["origin"] == {"name": "pafw", "sw": "1.2.3"}
        json.dumps(config)  # plain JSON


def test_sensors_read_the_measurements_json():
    msgs = messages()
    gas = msgs["homeassistant/sensor/lab1/co2_concentration/config"]
    assert gas["device_class"] == "carbon_dioxide" and gas["unit_of_measurement"] == "ppm"
    assert gas["state_class"] == "measurement" and gas["name"] == "CO2"
    assert gas["state_topic"] == "site/pafw/lab1/measurements"
    assert "value_json.results['co2'].concentration_ppm" in gas["value_template"]
    freq = msgs["homeassistant/sensor/lab1/peak_main_frequency/config"]
    assert (freq["device_class"], freq["unit_of_measurement"]) == ("frequency", "Hz")
    assert "value_json.results['peak.main'].frequency_hz" in freq["value_template"]
    amp = msgs["homeassistant/sensor/lab1/peak_main_amplitude/config"]
    assert amp["unit_of_measurement"] == "dB" and "device_class" not in amp
    assert "value_json.results['peak.main'].amplitude_db" in amp["value_template"]


def test_alarms_and_relays_are_binary_sensors_on_state_topics():
    msgs = messages()
    alarm = msgs["homeassistant/binary_sensor/lab1/alarm_high/config"]
    assert alarm["state_topic"] == "site/pafw/lab1/state/alarm_high"
    assert (alarm["payload_on"], alarm["payload_off"], alarm["device_class"]) == (
        "ON", "OFF", "problem")
    relay = msgs["homeassistant/binary_sensor/lab1/relay_fan/config"]
    assert relay["state_topic"] == "site/pafw/lab1/state/relay_fan"
    assert relay["device_class"] == "power" and "command_topic" not in relay  # read-only


def test_gas_class_name_and_prefix_are_configurable():
    entities = DiscoveryEntities(concentration_nodes=["a", "b"])
    msgs = messages(entities, gas_device_class="gas", gas_name="CH4", prefix="ha/disc")
    configs = list(msgs.values())
    assert all(t.startswith("ha/disc/sensor/lab1/") for t in msgs)
    assert [c["name"] for c in configs] == ["CH4 (a)", "CH4 (b)"]
    assert {c["device_class"] for c in configs} == {"gas"}


def test_bad_or_colliding_names_are_refused():
    with pytest.raises(ValueError, match="alarm or relay name 'a/b'"):
        messages(DiscoveryEntities(alarms=["a/b"]))
    with pytest.raises(ValueError, match="both map to the entity id 'lab1_x_y_concentration'"):
        messages(DiscoveryEntities(concentration_nodes=["x.y", "x_y"]))
    assert object_name("Peak.Main", "freq") == "peak_main_freq"


def test_link_publishes_configs_retained_and_again_when_home_assistant_comes_online(
        mosquitto, tmp_path):
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    link = MqttLink(settings, device_id="lab1", state_dir=tmp_path, software_version="1.2.3",
                    device_name="Lab analyzer")
    link.set_discovery(ENTITIES)
    link.start()
    wait_until(lambda: link.get_status()["discovery_published"] == 5)
    sub = Subscriber(mosquitto, ["homeassistant/+/lab1/+/config"])
    try:
        assert sub.wait_for(lambda m: len(m) == 5, 30)
        assert all(m.retain for m in sub.messages)  # retained: HA gets them whenever it starts
        assert {m.topic: m.json() for m in sub.messages} == messages(
            base_topic="pafw", software_version="1.2.3")
        sub.clear()
        sub.publish("homeassistant/status", "online")  # Home Assistant restarted
        assert sub.wait_for(lambda m: len(m) == 5, 30)
        assert not any(m.retain for m in sub.messages)  # fresh copies, not the stored ones
        wait_until(lambda: link.get_status()["discovery_published"] == 10)
        sub.clear()
        sub.publish("homeassistant/status", "offline")
        link.set_discovery(DiscoveryEntities(concentration_nodes=["co2"]))  # fewer entities
        assert sub.wait_for(lambda m: len(m) == 5, 30)
        removed = {m.topic for m in sub.messages if m.payload == b""}
        assert len(removed) == 4 and "homeassistant/sensor/lab1/co2_concentration/config" \
            not in removed
        assert link.get_status()["discovery_entities"] == 1
    finally:
        link.stop()
        sub.close()


def test_the_calibration_due_state_is_a_sensor_on_the_measurements():
    import jinja2

    entities = DiscoveryEntities(concentration_nodes=["co2"], calibration_node="co2")
    config = messages(entities)["homeassistant/sensor/lab1/calibration/config"]
    assert config["state_topic"] == "site/pafw/lab1/measurements"
    assert config["device_class"] == "enum" and config["options"] == ["ok", "due", "overdue"]
    template = jinja2.Environment().from_string(config["value_template"])

    def state(results: dict) -> str:
        return template.render(value_json={"results": results})

    assert state({"co2": {"flags": []}}) == "ok"
    assert state({"co2": {"flags": ["calibration_due", "mic_b_clipping"]}}) == "due"
    assert state({"co2": {"flags": ["calibration_overdue"]}}) == "overdue"
    assert state({}) == "None"
def test_cycle_averages_are_sensors_on_their_topics_with_statistics_as_attributes():
    jinja2 = pytest.importorskip("jinja2")
    entities = DiscoveryEntities(cycle_averages=[("co2", "concentration", "room"),
                                                 ("co2", "concentration", None),
                                                 ("peak.main", "peak", "room")])
    msgs = messages(entities)
    room = msgs["homeassistant/sensor/lab1/co2_cycle_average_room/config"]
    assert room["state_topic"] == "site/pafw/lab1/cycle_average/room"
    assert room["json_attributes_topic"] == room["state_topic"]
    assert (room["device_class"], room["unit_of_measurement"]) == ("carbon_dioxide", "ppm")
    assert room["name"] == "Cycle average (co2 room)"
    plain = msgs["homeassistant/sensor/lab1/co2_cycle_average/config"]
    assert plain["state_topic"] == "site/pafw/lab1/cycle_average"
    amp = msgs["homeassistant/sensor/lab1/peak_main_cycle_average_room/config"]
    assert "unit_of_measurement" not in amp and "amplitude" in amp["value_template"]
    # the templates, rendered as Home Assistant does, pick the mean and the statistics
    payload = {"inlet": "room", "results": {"co2": {
        "concentration_ppm": 412.5, "average": {"n": 12, "concentration_std": 1.5}}}}
    env = jinja2.Environment()
    assert env.from_string(room["value_template"]).render(value_json=payload) == "412.5"
    attributes = env.from_string(room["json_attributes_template"]).render(value_json=payload)
    assert json.loads(attributes) == {"n": 12, "concentration_std": 1.5}
    other = {"results": {}}
    assert env.from_string(room["value_template"]).render(value_json=other) == "None"
    assert env.from_string(room["json_attributes_template"]).render(value_json=other) == "{}"
