"""The Hal object: safe start, initial states, safe_state(), close(), exceptions, atexit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from firmware.errors import HalError
from firmware.hal import Hal, HalSettings, mock_factory
from firmware.hal.errors import UnknownOutputError
from tests.waiting import holds_for, wait_until

ROOT = Path(__file__).resolve().parents[2]

SECTION: dict[str, Any] = {
    "backend": "mock",
    "relays": {
        "pump": {"pin": 17, "min_on_s": 10},
        "valve": {"pin": 22, "active_high": False},
    },
    "leds": {
        "status": {"pin": 27, "pwm": True},
        "fault": {"pin": 5, "active_high": False},
    },
}
PINS = {"pump": 17, "valve": 22, "status": 27, "fault": 5}
#: the pin level of "off" for each output
OFF = {"pump": 0, "valve": 1, "status": 0, "fault": 1}


def settings(**changes: Any) -> HalSettings:
    data = json.loads(json.dumps(SECTION))
    data.update(changes)
    return HalSettings.model_validate(data)


def levels(factory: MockFactory, pin: int) -> list[float]:
    return [float(s.state) for s in factory.pin(pin).states]


def assert_all_off(factory: MockFactory) -> None:
    """Every output's pin was last driven to its off level."""
    for name, pin in PINS.items():
        history = levels(factory, pin)
        if factory.pin(pin).function == "input" and OFF[name] == 1:
            history = history[:-1]  # releasing a MockPWMPin drops it to 0: not a driven level
        assert history[-1] == OFF[name], (name, history)


def busy(hal: Hal) -> None:
    """Turn everything on, in every way there is."""
    hal.relay("pump").on()
    hal.relay("valve").pulse(5)
    hal.led("status").heartbeat(period_s=0.1)
    hal.led("fault").blink(0.01, 0.01)
    time.sleep(0.02)


@pytest.fixture
def factory() -> MockFactory:
    return mock_factory()


def test_everything_starts_off(factory):
    with Hal(settings(), factory=factory) as hal:
        for name, pin in PINS.items():
            assert factory.pin(pin).function == "output"
            assert factory.pin(pin).state == OFF[name], name
        status = hal.get_status()
        assert {n: r["state"] for n, r in status["relays"].items()} == {
            "pump": "off", "valve": "off"}
        assert {n: led["pattern"] for n, led in status["leds"].items()} == {
            "status": "off", "fault": "off"}


def test_initial_on_is_applied_after_the_safe_start(factory):
    section = settings(relays={"valve": {"pin": 22, "active_high": False, "initial": True}})
    with Hal(section, factory=factory) as hal:
        assert hal.relay("valve").is_on
        # floating input, then driven off (high), then on (low)
        assert levels(factory, 22) == [0, 1, 0]


def test_initial_on_waits_for_min_off(factory):
    section = settings(relays={"heater": {"pin": 6, "initial": True, "min_off_s": 0.05}})
    with Hal(section, factory=factory) as hal:
        heater = hal.relay("heater")
        assert not heater.is_on and heater.get_status()["pending"] == "on"
        wait_until(lambda: heater.is_on, what="the deferred initial on")
        assert levels(factory, 6) == [0, 1]
        assert factory.pin(6).states[1].timestamp >= 0.05  # off at least min_off_s first


def test_lookup_of_unknown_outputs(factory):
    with Hal(settings(), factory=factory) as hal:
        with pytest.raises(UnknownOutputError, match=r"no relay named 'pmup' in hal.relays "
                                                     r"\(known: pump, valve\)") as info:
            hal.relay("pmup")
        assert isinstance(info.value, HalError) and isinstance(info.value, KeyError)
        with pytest.raises(UnknownOutputError, match=r"no LED named 'x'.*known: fault, status"):
            hal.led("x")
    with Hal(HalSettings(), factory=mock_factory()) as empty, \
            pytest.raises(UnknownOutputError, match="none configured"):
        empty.relay("pump")


def test_safe_state_switches_everything_off_at_once(factory):
    with Hal(settings(), factory=factory) as hal:
        busy(hal)
        hal.safe_state()  # pump's min_on_s of 10 s is ignored
        assert_all_off(factory)
        # no pattern step or pulse release comes back
        holds_for(lambda: assert_all_off(factory) is None, 0.2, "everything staying off")
        assert not hal.relay("pump").is_on
        assert {led["pattern"] for led in hal.get_status()["leds"].values()} == {"off"}


def test_safe_state_never_raises_and_still_switches_the_rest(factory, monkeypatch):
    with Hal(settings(), factory=factory) as hal:
        busy(hal)

        def broken() -> None:
            raise RuntimeError("pin driver gone")

        monkeypatch.setattr(hal.relay("pump"), "safe_off", broken)
        hal.safe_state()
        assert hal.get_status()["safe_state_failures"] == 1
        assert factory.pin(PINS["valve"]).state == OFF["valve"]
        assert factory.pin(PINS["status"]).state == OFF["status"]
        monkeypatch.undo()


def test_close_is_idempotent_and_leaves_everything_off(factory):
    hal = Hal(settings(), factory=factory)
    busy(hal)
    hal.close()
    hal.close()
    assert hal.closed
    assert_all_off(factory)
    assert all(factory.pin(pin).function == "input" for pin in PINS.values())  # released
    status = hal.get_status()
    assert status["closed"] and status["relays"]["pump"]["state"] == "closed"
    assert levels(factory, PINS["pump"]) == [0, 1, 0]
    # a factory passed in is the caller's: it still works
    factory.pin(PINS["pump"]).function = "output"


def test_exception_inside_with_leaves_everything_off(factory):
    with pytest.raises(RuntimeError, match="control loop crashed"), \
            Hal(settings(), factory=factory) as hal:
        busy(hal)
        raise RuntimeError("control loop crashed")
    assert hal.closed
    assert_all_off(factory)


def test_hal_builds_and_closes_its_own_mock_backend():
    hal = Hal(settings())
    assert isinstance(hal.factory, MockFactory)
    hal.relay("pump").on()
    hal.close()
    assert hal.factory.pins == {}  # the factory built here was closed with the Hal


def test_a_bad_output_closes_what_was_built(factory):
    taken = LED(27, pin_factory=factory)  # another device already holds the LED's pin
    with pytest.raises(HalError, match="LED 'status' cannot use a PWM pin 27"):
        Hal(settings(), factory=factory)
    assert factory.pin(PINS["pump"]).function == "input"  # the relays built first were released
    taken.close()


def test_status_is_json_safe(factory):
    with Hal(settings(), factory=factory) as hal:
        busy(hal)
        status = hal.get_status()
        json.dumps(status)
        assert status["backend"] == "mock" and status["chip"] is None
        assert status["relays"]["valve"]["pulse_remaining_s"] > 0
        assert status["leds"]["status"]["pattern"] == "heartbeat"


def test_auto_backend_on_this_pc_is_simulated():
    if any(Path(p).exists() for p in ("/proc/device-tree/model",
                                      "/sys/firmware/devicetree/base/model")):
        pytest.skip("this machine has a device tree")
    with Hal(settings(backend="auto")) as hal:
        status = hal.get_status()
        assert status["backend"] == "mock" and status["simulated"]


ATEXIT_SCRIPT = textwrap.dedent("""
    import atexit, json, sys
    from firmware.hal import Hal, HalSettings, mock_factory

    factory = mock_factory()

    def report():  # registered before the Hal's hook, so it runs after it
        print(json.dumps({str(p): [float(s.state) for s in factory.pin(p).states]
                          for p in (17, 22, 27)}), flush=True)

    atexit.register(report)
    hal = Hal(HalSettings.model_validate({
        "relays": {"pump": {"pin": 17, "min_on_s": 60}, "fan": {"pin": 22}},
        "leds": {"status": {"pin": 27}},
    }), factory=factory)
    hal.relay("pump").on()
    hal.relay("fan").pulse(30)
    hal.led("status").blink(0.01, 0.01)
    {ending}
""")


@pytest.mark.parametrize("ending", ["raise RuntimeError('unexpected')", "sys.exit(3)"])
def test_atexit_hook_leaves_outputs_off(ending):
    result = subprocess.run(
        [sys.executable, "-c", ATEXIT_SCRIPT.replace("{ending}", ending)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode != 0
    assert "interpreter exit without Hal.close()" in result.stderr
    states = json.loads(result.stdout.strip().splitlines()[-1])
    assert states["17"] == [0, 1, 0]  # min_on_s of 60 s ignored on the way out
    assert states["22"] == [0, 1, 0]  # the 30 s pulse did not outlive the process
    assert states["27"][-1] == 0


@pytest.mark.parametrize("module", ["backend", "relay", "led", "hal"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"firmware.hal.{module}"))
    assert result.attempted > 0 and result.failed == 0
