"""The ``mqtt`` config section (firmware/actions/mqtt/settings.py): the topic-prefix and
topic-level checks, the TLS options (``~`` expanded, certificate and key together, nothing
set while TLS is off), discovery names, the bounds of every number, and the cross-option
checks, each bad value with a message that names the option and what is expected.

A few of these cases also appear in tests/actions/mqtt/test_link.py, next to the link that
uses the settings.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from firmware.actions.mqtt.settings import (
    DiscoverySettings,
    MqttSettings,
    TlsSettings,
    check_topic_level,
    check_topic_prefix,
)

# -- topic checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["pafw", "site/lab", "a/b/c", "with space", "ümlaut", "x-1_2"])
def test_good_topic_prefixes_pass_unchanged(prefix: str) -> None:
    assert check_topic_prefix(prefix, "base_topic") == prefix


@pytest.mark.parametrize(("prefix", "match"), [
    ("", "base_topic must not be empty"),
    ("/pafw", "base_topic '/pafw' must not start or end with '/'"),
    ("pafw/", "must not start or end with '/'"),
    ("a//b", "base_topic 'a//b' has an invalid level ''"),
    ("a/#", "invalid level '#': expected non-empty levels without the wildcards"),
    ("a/b+c", "invalid level 'b\\+c'"),
    ("a/\x00", "invalid level"),
])
def test_bad_topic_prefixes_are_refused_by_name(prefix: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_topic_prefix(prefix, "base_topic")


@pytest.mark.parametrize("level", ["relay_a", "CO2 sensor", "1"])
def test_good_topic_levels_pass(level: str) -> None:
    assert check_topic_level(level, "state name") == level


@pytest.mark.parametrize("level", ["", "a/b", "#", "+", "a+", "a#b", "nul\x00"])
def test_bad_topic_levels_are_refused(level: str) -> None:
    with pytest.raises(ValueError, match=r"^state name .* cannot be used in an MQTT topic: "
                                         r"expected a non-empty name without '/', '#', '\+'$"):
        check_topic_level(level, "state name")


# -- TLS --------------------------------------------------------------------------------------


def test_tls_defaults_to_off_with_nothing_set() -> None:
    tls = TlsSettings()
    assert (tls.enabled, tls.ca_file, tls.cert_file, tls.key_file, tls.insecure) == (
        False, None, None, None, False)


def test_tls_paths_expand_the_home_directory() -> None:
    tls = TlsSettings(enabled=True, ca_file=Path("~/ca.pem"), cert_file="~/c.pem",
                      key_file="/etc/k.pem")
    home = Path(os.path.expanduser("~"))
    assert tls.ca_file == home / "ca.pem" and tls.cert_file == home / "c.pem"
    assert tls.key_file == Path("/etc/k.pem")


def test_tls_path_of_an_unknown_user_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot expand '~'"):
        TlsSettings(enabled=True, ca_file="~no-such-user-pafw-test/ca.pem")


@pytest.mark.parametrize(("options", "match"), [
    ({"enabled": True, "cert_file": "c.pem"},
     "tls.cert_file is set but tls.key_file is not: a client certificate needs both"),
    ({"enabled": True, "key_file": "k.pem"}, "tls.key_file is set but tls.cert_file is not"),
    ({"ca_file": "ca.pem"}, "tls.ca_file is set but tls.enabled is false"),
    ({"cert_file": "c.pem", "key_file": "k.pem"}, "tls.cert_file is set but tls.enabled is"),
    ({"insecure": True}, "tls.insecure is set but tls.enabled is false: set tls.enabled: true"),
    ({"enabled": True, "verify": False}, "Extra inputs are not permitted"),
])
def test_inconsistent_tls_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TlsSettings.model_validate(options)


def test_complete_tls_options_are_accepted() -> None:
    tls = TlsSettings(enabled=True, ca_file="ca.pem", cert_file="c.pem", key_file="k.pem",
                      insecure=True)
    assert tls.insecure and tls.cert_file == Path("c.pem")


# -- discovery ----------------------------------------------------------------------------------


def test_discovery_defaults() -> None:
    d = DiscoverySettings()
    assert (d.enabled, d.prefix, d.gas_device_class, d.gas_name) == (
        True, "homeassistant", "carbon_dioxide", None)
    assert DiscoverySettings(prefix="ha/site1").prefix == "ha/site1"


@pytest.mark.parametrize(("options", "match"), [
    ({"prefix": "home+assistant"}, "discovery.prefix 'home\\+assistant' has an invalid level"),
    ({"prefix": ""}, "discovery.prefix must not be empty"),
    ({"gas_device_class": "Carbon Dioxide"}, "String should match pattern"),
    ({"gas_device_class": "1co2"}, "String should match pattern"),
    ({"gas_name": ""}, "at least 1 character"),
    ({"gas_name": "x" * 65}, "at most 64 characters"),
])
def test_bad_discovery_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DiscoverySettings.model_validate(options)


# -- the section ----------------------------------------------------------------------------------


def test_an_empty_section_means_localhost_buffered() -> None:
    s = MqttSettings.model_validate({})
    assert (s.enabled, s.host, s.port, s.keepalive_s, s.base_topic) == (
        True, "localhost", 1883, 30, "pafw")
    assert (s.reconnect_min_s, s.reconnect_max_s, s.outbox_max_messages) == (0.5, 30.0, 100_000)
    assert s.username is None and s.password is None and not s.tls.enabled
    assert s.discovery.enabled


@pytest.mark.parametrize(("options", "match"), [
    ({"host": ""}, "host\n.*at least 1 character"),
    ({"port": 65536}, "port\n.*less than or equal to 65535"),
    ({"keepalive_s": 4}, "keepalive_s\n.*greater than or equal to 5"),
    ({"keepalive_s": 3601}, "keepalive_s\n.*less than or equal to 3600"),
    ({"measurement_interval_s": math.nan}, "measurement_interval_s\n.*finite number"),
    ({"reconnect_min_s": math.inf}, "reconnect_min_s\n.*finite number"),
    ({"reconnect_max_s": 0}, "reconnect_max_s\n.*greater than 0"),
    ({"max_inflight": 0}, "max_inflight\n.*greater than or equal to 1"),
    ({"outbox_max_messages": 10_000_001}, "outbox_max_messages\n.*less than or equal to"),
    ({"client_id": ""}, "client_id\n.*at least 1 character"),
    ({"client_id": "x" * 129}, "client_id\n.*at most 128 characters"),
    ({"client_id": "tab\there"}, "client_id 'tab\\\\there' must be printable ASCII"),
    ({"client_id": "pafw-ü"}, "must be printable ASCII without spaces"),
    ({"username": ""}, "username\n.*at least 1 character"),
    ({"base_topic": "pafw/+/x"}, "base_topic 'pafw/\\+/x' has an invalid level '\\+'"),
    ({"reconnect_min_s": 10, "reconnect_max_s": 2.5},
     r"reconnect_max_s \(2.5\) must be >= reconnect_min_s \(10\)"),
    ({"password": "pw"}, "password is set but username is not: MQTT sends a password only"),
    ({"tls": {"insecure": True}}, "tls.insecure is set but tls.enabled is false"),
    ({"discovery": {"enabled": "maybe"}}, "discovery.enabled\n.*valid boolean"),
])
def test_bad_values_name_the_option(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        MqttSettings.model_validate(options)


def test_equal_reconnect_bounds_and_a_user_without_password_are_fine() -> None:
    s = MqttSettings(reconnect_min_s=2, reconnect_max_s=2, username="sensor")
    assert s.reconnect_max_s == s.reconnect_min_s and s.password is None


def test_the_password_is_never_shown() -> None:
    s = MqttSettings(username="u", password="hunter2-secret")
    assert s.password is not None and s.password.get_secret_value() == "hunter2-secret"
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "hunter2-secret" not in text


def test_the_client_id_defaults_to_the_device() -> None:
    assert MqttSettings().client_id_for("lab-1") == "pafw-lab-1"
    assert MqttSettings(client_id="analyzer~7").client_id_for("lab-1") == "analyzer~7"
