"""A PythonAction's capabilities (firmware/actions/python/grants.py): what the YAML grant
accepts (MQTT topic filters, host:port lists) and refuses with a message naming the bad entry,
and the host's checks: a request outside the grant raises PermissionError naming what was
asked, the action and what is granted, and is counted."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from firmware.actions.python.grants import Capabilities, Grants


def test_nothing_is_granted_by_default() -> None:
    caps = Capabilities()
    assert (caps.mqtt_publish, caps.relays, caps.leds, caps.data_mb, caps.network) == (
        [], [], [], 0, False)
    assert caps.network_hosts == []


@pytest.mark.parametrize("topic_filter", ["alerts", "lab/+/co2", "lab/#", "#", "+", "+/+/x",
                                          "a/b/c"])
def test_valid_topic_filters_are_accepted(topic_filter: str) -> None:
    assert Capabilities(mqtt_publish=[topic_filter]).mqtt_publish == [topic_filter]


@pytest.mark.parametrize("topic_filter", ["", "lab/#/x", "lab#", "#/x", "lab/co2+", "+x/y",
                                          "a/\x00"])
def test_invalid_topic_filters_are_refused(topic_filter: str) -> None:
    with pytest.raises(ValidationError, match="is not a valid MQTT topic filter"):
        Capabilities(mqtt_publish=["ok/topic", topic_filter])


@pytest.mark.parametrize("network", [True, False, ["smtp.example.com:587"],
                                     ["192.0.2.10:8080", "[2001:db8::1]:443"], ["h:1", "h:65535"]])
def test_valid_network_grants_are_accepted(network: Any) -> None:
    caps = Capabilities(network=network)
    assert caps.network == network
    assert caps.network_hosts == ([] if isinstance(network, bool) else network)


@pytest.mark.parametrize(("entry", "match"), [
    ("smtp.example.com", "'smtp.example.com' is not host:port"),
    (":587", "is not host:port"),
    ("[]:443", "is not host:port"),
    ("host:0", "is not host:port"),
    ("host:65536", "is not host:port"),
    ("host:http", "is not host:port"),
    ("host:-1", "is not host:port"),
    ("ev il.com:80", "'ev il.com' is not a host name or address"),
    ("a;b:80", "is not a host name or address"),
    ("x/y:80", "is not a host name or address"),
    ('"q":80', "is not a host name or address"),
])
def test_bad_network_entries_are_refused(entry: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Capabilities(network=[entry])


def test_an_empty_host_list_is_refused_as_meaningless() -> None:
    with pytest.raises(ValidationError, match="an empty host list grants nothing: write "
                                              "network: false"):
        Capabilities(network=[])


@pytest.mark.parametrize(("options", "match"), [
    ({"data_mb": -1}, "greater than or equal to 0"),
    ({"data_mb": 100_001}, "less than or equal to 100000"),
    ({"gpio": ["17"]}, "Extra inputs are not permitted"),
])
def test_other_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Capabilities.model_validate(options)


# -- the host's checks --------------------------------------------------------------------------


def grants(**caps: Any) -> Grants:
    return Grants("co2_alert", Capabilities(**caps))


def test_publishing_matches_the_granted_filters() -> None:
    g = grants(mqtt_publish=["alerts/+/co2", "site/#"])
    for topic in ("alerts/lab/co2", "site", "site/a/b/c"):
        g.check_publish(topic)
    assert g.denied == 0 and g.last_denied is None
    for topic in ("alerts/lab/co", "alerts/lab/co2/x", "other", "Site/a"):
        with pytest.raises(PermissionError, match="is not granted"):
            g.check_publish(topic)
    assert g.denied == 4


def test_a_refused_publish_names_topic_action_and_grant() -> None:
    g = grants(mqtt_publish=["alerts/#"])
    with pytest.raises(PermissionError) as refused:
        g.check_publish("pafw/dev/cmd")
    message = ("publishing to 'pafw/dev/cmd' is not granted to action 'co2_alert' "
               "(capabilities.mqtt_publish: ['alerts/#'])")
    assert str(refused.value) == message
    assert g.last_denied == message and g.denied == 1


def test_without_any_grant_the_message_says_none() -> None:
    g = grants()
    checks = [(g.check_publish, "x", "capabilities.mqtt_publish: none"),
              (g.check_relay, "pump", "relay 'pump' is not granted to action 'co2_alert' "
                                      "(capabilities.relays: none)"),
              (g.check_led, "status", "LED 'status' is not granted to action 'co2_alert' "
                                      "(capabilities.leds: none)")]
    for check, name, expected in checks:
        with pytest.raises(PermissionError, match=re.escape(expected)):
            check(name)
    assert g.denied == 3


def test_relays_and_leds_are_granted_by_exact_name() -> None:
    g = grants(relays=["pump"], leds=["status"])
    g.check_relay("pump")
    g.check_led("status")
    for check, name in ((g.check_relay, "Pump"), (g.check_relay, "status"),
                        (g.check_led, "pump"), (g.check_led, "status2")):
        with pytest.raises(PermissionError, match=r"\(capabilities\.(relays|leds): \['"):
            check(name)
    assert g.denied == 4
    assert g.last_denied == ("LED 'status2' is not granted to action 'co2_alert' "
                             "(capabilities.leds: ['status'])")
