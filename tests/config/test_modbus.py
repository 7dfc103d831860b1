"""The modbus section: off by default, non-root port, writes only from listed addresses."""

from __future__ import annotations

import pytest

from firmware.errors import ConfigError


def test_the_default_is_off_on_loopback_and_a_non_root_port(make_doc):
    modbus = make_doc().config.modbus
    assert (modbus.enabled, modbus.bind, modbus.port) == (False, "127.0.0.1", 5020)
    assert (modbus.writes_enabled, modbus.write_allowed_clients) == (False, [])
    assert modbus.word_order == "big"


def test_allowed_clients_are_ip_addresses_normalised(make_doc):
    def edit(data):
        data["modbus"] = {"write_allowed_clients": ["10.0.0.7", "::FFFF:10.0.0.8"]}

    assert make_doc(edit).config.modbus.write_allowed_clients == ["10.0.0.7",
                                                                  "10.0.0.8"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("write_allowed_clients", ["plc.local"], "is not an IP address"),
    ("word_order", "middle", "'big' or 'little'"),
    ("port", 70000, "less than or equal to 65535"),
    ("unit_id", 256, "less than or equal to 255"),
])
def test_bad_values_name_the_option(make_doc, key, value, message):
    def edit(data):
        data["modbus"] = {key: value}

    with pytest.raises(ConfigError, match=message) as info:
        make_doc(edit)
    assert f"modbus.{key}" in str(info.value)
