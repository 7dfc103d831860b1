"""The host side of the script API (firmware/actions/python/api_host.py), called as the worker
supervisor calls it: data read from ComputingState (NaN as None), history, logging through
the limiter, notifications (history, log and an MQTT event), the store, and the granted side
effects: MQTT publishing through a real link to a private Mosquitto, relays and LEDs of a real
HAL on gpiozero's mock pins. Every bad request raises PermissionError or ValueError with a
message for the script.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.actions.base import ActionContext
from firmware.actions.history import HistoryBuffer
from firmware.actions.mqtt.link import MqttLink
from firmware.actions.mqtt.settings import MqttSettings
from firmware.actions.python.api_host import MAX_RECENT_ENTRIES, ScriptApiHost
from firmware.actions.python.grants import Capabilities, Grants
from firmware.actions.python.store import ScriptStore
from firmware.hal import Hal, HalSettings, mock_factory
from firmware.state import ComputingResult, ComputingState
from tests.mqtt_broker import Broker, Subscriber
from tests.waiting import wait_until

CAPS = Capabilities(mqtt_publish=["alerts/#"], relays=["pump"], leds=["status"])
HAL = {"backend": "mock", "relays": {"pump": {"pin": 17, "max_pulse_s": 5},
                                     "valve": {"pin": 22}},
       "leds": {"status": {"pin": 27}, "fault": {"pin": 5}}}


def call(api: ScriptApiHost, method: str, *args: Any, **kwargs: Any) -> Any:
    return asyncio.run(api.handle(method, list(args), kwargs))


def result(node_id: str, kind: str = "concentration", **values: Any) -> ComputingResult:
    return ComputingResult(node_id, kind, time.time(), time.monotonic(), 1, detected=True,
                           **values)


class Rig:
    """An API host with its state, history, store and (optionally) HAL and MQTT link."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = ComputingState()
        self.history = HistoryBuffer(2000)
        self.store = ScriptStore(tmp_path / "store.json", max_bytes=1024)
        self.hal: Hal | None = None
        self.link: MqttLink | None = None

    def api(self, caps: Capabilities = CAPS) -> ScriptApiHost:
        ctx = ActionContext(state=self.state, device_id="lab1", state_dir=self.tmp_path,
                            hal=self.hal, mqtt=self.link,
                            node_statistics=lambda node: {"node_id": node, "frames": 12})
        return ScriptApiHost("co2_alert", ctx, grants=Grants("co2_alert", caps),
                             history=self.history, store=self.store)

    def with_hal(self) -> Rig:
        self.hal = Hal(HalSettings.model_validate(HAL), factory=mock_factory())
        return self

    def with_link(self, broker: Broker | None = None) -> MqttLink:
        settings = (MqttSettings(host=broker.host, port=broker.port, reconnect_min_s=0.1,
                                 reconnect_max_s=0.5) if broker is not None
                    else MqttSettings(port=1))  # no broker: messages wait in the outbox
        self.link = MqttLink(settings, device_id="lab1", state_dir=self.tmp_path / "mqtt",
                             software_version="0")
        if broker is not None:
            self.link.start()
            assert self.link.wait_connected(30), "the link did not connect"
        return self.link

    def close(self) -> None:
        if self.hal is not None:
            self.hal.close()
        if self.link is not None:
            self.link.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.close()


# -- dispatch ---------------------------------------------------------------------------------


def test_only_the_listed_methods_can_be_called(rig: Rig) -> None:
    api = rig.api()
    for method in ("open_file", "_store_set", "handle", "__init__", "grants"):
        with pytest.raises(ValueError, match=f"the API has no method '{method}'"):
            call(api, method)
    assert api.requests == 0
    assert {m for m in ScriptApiHost.METHODS if not hasattr(api, f"_{m}")} == set()


def test_wrong_arguments_are_a_value_error_naming_the_method(rig: Rig) -> None:
    api = rig.api()
    with pytest.raises(ValueError, match=r"get_peak_frequency: .*missing 1 required positional"):
        call(api, "get_peak_frequency")
    with pytest.raises(ValueError, match=r"store_keys: .*takes 1 positional argument"):
        call(api, "store_keys", "extra")
    with pytest.raises(ValueError, match=r"log_message: .*unexpected keyword argument 'colour'"):
        call(api, "log_message", "info", "x", colour="red")
    assert api.requests == 3


# -- data -------------------------------------------------------------------------------------


def test_values_come_from_the_state_nan_as_none(rig: Rig) -> None:
    rig.state.publish(result("conc", concentration_ppm=812.5))
    rig.state.publish(result("peak", "peak", frequency_hz=2000.25, amplitude=0.024))
    rig.state.publish(result("lost", "peak"))  # every value NaN
    api = rig.api()
    assert call(api, "get_concentration_data", "conc") == 812.5
    assert call(api, "get_peak_frequency", "peak") == 2000.25
    assert call(api, "get_peak_amplitude", "peak") == 0.024
    assert call(api, "get_concentration_data", "peak") is None
    for method in ("get_concentration_data", "get_peak_frequency", "get_peak_amplitude"):
        assert call(api, method, "lost") is None
        assert call(api, method, "no_such_node") is None


@pytest.mark.parametrize("bad", [5, None, ["conc"], {"id": "conc"}])
def test_a_node_id_must_be_a_string(rig: Rig, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"node_id must be a string, got {type(bad).__name__}"):
        call(rig.api(), "get_concentration_data", bad)


def test_node_statistics_add_the_last_result(rig: Rig) -> None:
    api = rig.api()
    assert call(api, "get_node_statistics", "conc") == {"node_id": "conc", "frames": 12}
    rig.state.publish(result("conc", concentration_ppm=900.0))
    stats = call(api, "get_node_statistics", "conc")
    assert stats["frames"] == 12 and stats["last_result"]["concentration_ppm"] == 900.0
    assert stats["last_result"]["frequency_hz"] is None  # JSON-safe
    assert stats["age_s"] >= 0.0
    json.dumps(stats, allow_nan=False)


def test_history_count_and_recent_entries(rig: Rig) -> None:
    for i in range(1500):
        rig.history.record("update", {"i": i}, timestamp=float(i))
    api = rig.api()
    assert call(api, "get_history_count") == 1500
    recent = call(api, "get_recent_entries", 3)
    assert [e["data"]["i"] for e in recent] == [1497, 1498, 1499]
    assert recent[-1]["time"] == "1970-01-01T00:24:59.000+00:00"
    assert len(call(api, "get_recent_entries", 10**6)) == MAX_RECENT_ENTRIES
    assert call(api, "get_recent_entries", 0) == []


@pytest.mark.parametrize("bad", [-1, 2.5, "3", None])
def test_recent_entries_need_a_non_negative_integer(rig: Rig, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"count must be a non-negative integer, got {bad!r}"):
        call(rig.api(), "get_recent_entries", bad)


# -- logging and notifications ----------------------------------------------------------------


def test_log_messages_are_escaped_and_leveled(rig: Rig, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pafw.script.co2_alert")
    api = rig.api()
    call(api, "log_message", "WARN", "high\nCO2")
    call(api, "log_message", "nonsense", 42)
    call(api, "log_message", "debug", "d")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("pafw.script.co2_alert", logging.WARNING, "python action co2_alert [api]: high\\nCO2"),
        ("pafw.script.co2_alert", logging.INFO, "python action co2_alert [api]: 42"),
        ("pafw.script.co2_alert", logging.DEBUG, "python action co2_alert [api]: d"),
    ]


def test_a_notification_is_logged_and_kept_in_the_history(rig: Rig, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pafw.script.co2_alert")
    api = rig.api()
    assert call(api, "trigger_notification", "CO2 at 2104 ppm", "Critical") is True
    assert api.notifications == 1
    assert caplog.records[-1].levelno == logging.CRITICAL
    assert caplog.records[-1].getMessage() == (
        "python action co2_alert [notification]: CO2 at 2104 ppm")
    entry = rig.history.recent(1)[0]
    assert (entry.kind, entry.data) == ("notification", {"severity": "critical",
                                                        "message": "CO2 at 2104 ppm"})


@pytest.mark.parametrize("severity", ["debug", "fatal", "", None])
def test_a_notification_needs_a_known_severity(rig: Rig, severity: Any) -> None:
    api = rig.api()
    with pytest.raises(ValueError, match="severity must be one of info, warning, error, "
                                         "critical, got"):
        call(api, "trigger_notification", "x", severity)
    assert api.notifications == 0 and len(rig.history) == 0


# -- the store --------------------------------------------------------------------------------


def test_the_store_through_the_api(rig: Rig) -> None:
    api = rig.api()
    assert call(api, "store_get", "count", 0) == 0
    call(api, "store_set", "count", 3)
    call(api, "store_set", "last", {"ppm": 2104.7})
    assert call(api, "store_keys") == ["count", "last"]
    assert call(api, "store_get", "last") == {"ppm": 2104.7}
    assert call(api, "store_delete", "count") is True
    assert call(api, "store_delete", "count") is False
    assert ScriptStore(rig.tmp_path / "store.json", max_bytes=1024).keys() == ["last"]
    with pytest.raises(ValueError, match="store value for 'bad' is not JSON"):
        call(api, "store_set", "bad", math.nan)
    with pytest.raises(ValueError, match="above its cap of 1024"):
        call(api, "store_set", "big", "x" * 2000)
    with pytest.raises(ValueError, match="store keys are non-empty strings"):
        call(api, "store_get", "")


# -- MQTT -------------------------------------------------------------------------------------


def test_publishing_outside_the_grant_is_refused_first(rig: Rig) -> None:
    api = rig.api()  # no MQTT at all: the grant is still checked first
    with pytest.raises(PermissionError, match="publishing to 'pafw/lab1/cmd' is not granted"):
        call(api, "publish_mqtt", "pafw/lab1/cmd", "x")
    assert api.grants.denied == 1
    with pytest.raises(ValueError, match=r"MQTT is disabled on this appliance \(mqtt.enabled: "
                                         r"false\)"):
        call(api, "publish_mqtt", "alerts/co2", "x")
    with pytest.raises(ValueError, match="topic must be a string"):
        call(api, "publish_mqtt", ["alerts", "co2"], "x")


def test_a_payload_that_is_not_json_is_refused(rig: Rig) -> None:
    rig.with_link()
    api = rig.api()
    for payload in ({"ppm": math.nan}, {1, 2}, object()):
        with pytest.raises(ValueError, match="payload is not JSON-serialisable"):
            call(api, "publish_mqtt", "alerts/co2", payload)


def test_a_topic_with_wildcards_is_a_value_error(rig: Rig) -> None:
    """A wildcard matches a granted filter ('alerts/+' matches 'alerts/#') but is no topic:
    the script hears why, the appliance logs no error of its own."""
    rig.with_link()
    for topic in ("alerts/+", "alerts/#", ""):
        with pytest.raises(ValueError, match="without the wildcards"):
            call(rig.api(), "publish_mqtt", topic, "x")


def test_granted_messages_and_notifications_reach_the_broker(rig: Rig, mosquitto: Broker
                                                             ) -> None:
    rig.with_link(mosquitto)
    api = rig.api()
    sub = Subscriber(mosquitto, ["alerts/#", "pafw/lab1/events"], client_id="api-host-sub")
    try:
        call(api, "publish_mqtt", "alerts/co2/raw", b"\x00\x01")
        call(api, "publish_mqtt", "alerts/co2/text", "2104 ppm")
        call(api, "publish_mqtt", "alerts/co2/json", {"ppm": 2104.7, "ok": [True, None]})
        call(api, "trigger_notification", "ventilate", "warning")
        assert sub.wait_for(lambda m: len(m) >= 4, 30), "four messages at the subscriber"
        assert sub.on("alerts/co2/raw")[0].payload == b"\x00\x01"
        assert sub.on("alerts/co2/text")[0].payload == b"2104 ppm"
        assert sub.on("alerts/co2/json")[0].json() == {"ppm": 2104.7, "ok": [True, None]}
        event = sub.on("pafw/lab1/events")[0].json()
        assert {k: event[k] for k in ("action_id", "kind", "severity", "message")} == {
            "action_id": "co2_alert", "kind": "notification", "severity": "warning",
            "message": "ventilate"}
    finally:
        sub.close()


def test_a_retained_message_stays_at_the_broker(rig: Rig, mosquitto: Broker) -> None:
    rig.with_link(mosquitto)
    call(rig.api(), "publish_mqtt", "alerts/co2/last", "1234", retain=1)
    late: list[Subscriber] = []

    def retained_seen() -> bool:
        """A new subscriber gets the message with the retain flag (one that subscribed
        before the message reached the broker gets it live, without the flag: try again)."""
        if late:
            late.pop().close()
        late.append(Subscriber(mosquitto, ["alerts/co2/last"], client_id="api-host-late"))
        return late[-1].wait_for(lambda m: any(x.retain for x in m), 0.5)

    try:
        wait_until(retained_seen, what="the retained message")
        assert [x.payload for x in late[-1].messages if x.retain] == [b"1234"]
    finally:
        for sub in late:
            sub.close()


# -- relays and LEDs --------------------------------------------------------------------------


def test_granted_relays_and_leds_switch_real_outputs(rig: Rig) -> None:
    hal = rig.with_hal().hal
    assert hal is not None
    api = rig.api()
    call(api, "relay_on", "pump")
    assert hal.relay("pump").is_on
    call(api, "relay_off", "pump")
    assert not hal.relay("pump").is_on
    call(api, "relay_pulse", "pump", "0.5")  # numbers may come as strings
    assert hal.relay("pump").is_on
    call(api, "led_on", "status")
    assert hal.led("status").get_status()["value"] == 1.0
    call(api, "led_blink", "status", 0.1, 0.2)
    assert hal.led("status").get_status()["pattern"] == "blink"
    call(api, "led_off", "status")
    assert hal.led("status").get_status()["value"] == 0.0


def test_outputs_outside_the_grant_are_refused_and_stay_off(rig: Rig) -> None:
    hal = rig.with_hal().hal
    assert hal is not None
    api = rig.api()
    for method, name in (("relay_on", "valve"), ("relay_pulse", "valve"), ("led_on", "fault"),
                         ("led_blink", "fault"), ("relay_on", "status")):
        args = (name, 1.0) if method == "relay_pulse" else (name,)
        with pytest.raises(PermissionError, match=f"'{name}' is not granted to action "
                                                  "'co2_alert'"):
            call(api, method, *args)
    assert not hal.relay("valve").is_on and hal.led("fault").get_status()["value"] == 0.0
    assert api.grants.denied == 5


def test_bad_output_values_are_value_errors(rig: Rig) -> None:
    hal = rig.with_hal().hal
    assert hal is not None
    api = rig.api()
    with pytest.raises(ValueError, match="pulse length must be a positive number"):
        call(api, "relay_pulse", "pump", -1)
    with pytest.raises(ValueError, match="pulse of 60 s refused, longer than its max_pulse_s"):
        call(api, "relay_pulse", "pump", 60)
    with pytest.raises(ValueError, match="could not convert string to float"):
        call(api, "relay_pulse", "pump", "long")
    with pytest.raises(ValueError, match="blink on_s must be a positive number"):
        call(api, "led_blink", "status", 0, 1)
    with pytest.raises(ValueError, match="relay_pulse: float\\(\\) argument must be"):
        call(api, "relay_pulse", "pump", None)
    assert not hal.relay("pump").is_on


def test_without_a_hal_granted_outputs_are_a_value_error(rig: Rig) -> None:
    api = rig.api()
    for method in ("relay_on", "relay_off", "led_on", "led_off"):
        target = "pump" if method.startswith("relay") else "status"
        with pytest.raises(ValueError, match=r"this appliance has no relays or LEDs "
                                             r"configured \(hal\)"):
            call(api, method, target)
