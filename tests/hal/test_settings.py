"""The ``hal`` section's validation: pin range, pin conflicts, names, as the loader shows them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from firmware.config.messages import validation_problems
from firmware.hal.settings import HalSettings, RelaySettings


def problems(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What the config loader would report (key path relative to ``hal``, message)."""
    with pytest.raises(ValidationError) as info:
        HalSettings.model_validate(data)
    return validation_problems(info.value, data, HalSettings)


def test_defaults():
    settings = HalSettings()
    assert settings.backend == "auto" and settings.gpiochip is None
    assert settings.relays == {} and settings.leds == {}
    relay = RelaySettings(pin=17)
    assert (relay.active_high, relay.initial, relay.max_pulse_s) == (True, False, 60.0)
    assert (relay.min_on_s, relay.min_off_s) == (0.0, 0.0)


def test_a_full_section():
    settings = HalSettings.model_validate({
        "backend": "lgpio", "gpiochip": 0,
        "relays": {"pump": {"pin": 17, "active_high": False, "min_off_s": 5},
                   "heater": {"pin": 22, "initial": True}},
        "leds": {"status": {"pin": 27, "pwm": True}},
    })
    assert settings.pins() == {17: "relays.pump", 22: "relays.heater", 27: "leds.status"}


def test_pin_claimed_by_a_relay_and_an_led_names_both():
    found = problems({"relays": {"pump": {"pin": 17}}, "leds": {"status": {"pin": 17}}})
    assert found == [(("leds", "status", "pin"),
                      "pin 17 is claimed twice: by relays.pump and by leds.status (got 17)")]


def test_pin_claimed_by_two_relays_is_located_at_the_second():
    found = problems({"relays": {"pump": {"pin": 5}, "fan": {"pin": 5}, "ok": {"pin": 6}}})
    assert [path for path, _ in found] == [("relays", "fan", "pin")]
    assert "by relays.pump and by relays.fan" in found[0][1]


@pytest.mark.parametrize("pin", [28, -1, 40])
def test_pin_out_of_range(pin):
    [(path, message)] = problems({"leds": {"status": {"pin": pin}}})
    assert path == ("leds", "status", "pin")
    assert message == ("BCM pin out of range: expected 0..27 (the GPIO numbers of the 40-pin "
                       f"header, e.g. 17 for GPIO17) (got {pin})")


@pytest.mark.parametrize("pin", [True, "17", 17.0])
def test_pin_must_be_an_integer(pin):
    [(path, _)] = problems({"relays": {"pump": {"pin": pin}}})
    assert path == ("relays", "pump", "pin")


@pytest.mark.parametrize("name", ["1st", "pump-1", "a b", ""])
def test_names_must_be_identifiers(name):
    [(path, message)] = problems({"relays": {name: {"pin": 3}}})
    assert path == ("relays",)
    assert message.startswith(f"relay name {name!r} is not an identifier")


@pytest.mark.parametrize(("data", "path"), [
    ({"relays": {"pump": {"pin": 3, "max_pulse_s": 0}}}, ("relays", "pump", "max_pulse_s")),
    ({"relays": {"pump": {"pin": 3, "min_on_s": -1}}}, ("relays", "pump", "min_on_s")),
    ({"gpiochip": -1}, ("gpiochip",)),
    ({"backend": "pigpio"}, ("backend",)),
    ({"leds": {"ok": {"pin": 3, "pmw": True}}}, ("leds", "ok", "pmw")),
])
def test_other_bad_values(data, path):
    assert [p for p, _ in problems(data)] == [path]


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        RelaySettings(pin=3).pin = 4  # type: ignore[misc]


def test_through_the_config_loader(make_doc):
    """Once the ``hal`` section is part of Config, conflicts come with file:line:column."""
    from firmware.config.models import Config
    from firmware.errors import ConfigError

    if "hal" not in Config.model_fields:
        pytest.skip("the hal section is not wired into Config yet")

    def change(data):
        data["hal"] = {"relays": {"pump": {"pin": 17}}, "leds": {"status": {"pin": 17}}}

    with pytest.raises(ConfigError, match=r":\d+:\d+: hal\.leds\.status\.pin: pin 17 is claimed "
                                          r"twice: by relays\.pump and by leds\.status"):
        make_doc(change)
