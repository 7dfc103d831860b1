"""LED pin sequences on gpiozero's mock pins: steady, PWM brightness, blink and heartbeat."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.hal.backend import mock_factory
from firmware.hal.errors import (
    OutputClosedError,
    OutputSetupError,
    OutputValueError,
    PwmUnsupportedError,
)
from firmware.hal.led import Led
from firmware.hal.settings import LedSettings

PIN = 27
TOLERANCE_S = 0.03  # thread wake-up jitter on a loaded 2-core CI machine


def levels(pin) -> list[float]:
    return [float(s.state) for s in pin.states]


@pytest.fixture
def factory():
    return mock_factory()


@pytest.fixture
def make(factory):
    made: list[Led] = []

    def build(**options) -> Led:
        led = Led("status", LedSettings(pin=PIN, **options), factory=factory)
        made.append(led)
        return led

    yield build
    for led in made:
        led.close()


def run_pattern(led: Led, start, seconds: float) -> list[tuple[float, float]]:
    """Run a pattern for ``seconds``, stop it, and return (level, duration) of each step.

    The first entry (the level before the pattern) and the last (cut short by ``off()``) are
    dropped; durations are measured by the mock pin's state history.
    """
    pin = led._device.pin
    pin.clear_states()
    start()
    time.sleep(seconds)
    led.off()
    states = pin.states
    # states[i].timestamp is how long states[i - 1] lasted
    return [(float(states[i - 1].state), states[i].timestamp) for i in range(2, len(states))][:-1]


def test_steady_on_off(make, factory):
    led = make()
    pin = factory.pin(PIN)
    led.on()
    assert led.pattern == "on" and led.brightness == 1.0
    led.off()
    assert levels(pin) == [0, 1, 0]
    assert led.get_status() == {
        "pin": PIN, "pwm": False, "active_high": True, "pattern": "off", "value": 0.0,
    }


def test_active_low_inverts_the_pin(make, factory):
    led = make(active_high=False)
    pin = factory.pin(PIN)
    assert pin.state == 1
    led.on()
    assert pin.state == 0


def test_pwm_brightness(make, factory):
    led = make(pwm=True)
    pin = factory.pin(PIN)
    assert pin.frequency == 100  # gpiozero's default PWM frequency
    led.brightness = 0.3
    assert pin.state == pytest.approx(0.3)
    assert led.brightness == pytest.approx(0.3) and led.pattern == "dim"
    led.brightness = 1
    assert led.pattern == "on"
    led.brightness = 0
    assert led.pattern == "off"
    assert levels(pin) == pytest.approx([0, 0.3, 1, 0])


def test_pwm_active_low_inverts_the_duty_cycle(make, factory):
    led = make(pwm=True, active_high=False)
    led.brightness = 0.25
    assert factory.pin(PIN).state == pytest.approx(0.75)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_brightness_out_of_range(make, value):
    with pytest.raises(OutputValueError, match=r"LED 'status': brightness must be between 0 and 1"):
        make(pwm=True).brightness = value


def test_brightness_needs_pwm(make):
    with pytest.raises(PwmUnsupportedError, match=r"LED 'status' has no PWM: set pwm: true"):
        make().brightness = 0.5


def test_pwm_on_a_factory_without_pwm_pins_is_a_setup_error():
    with pytest.raises(OutputSetupError, match="LED 'status' cannot use a PWM pin 27"):
        Led("status", LedSettings(pin=PIN, pwm=True), factory=MockFactory())


def test_blink_sequence(make):
    led = make()
    steps = run_pattern(led, lambda: led.blink(0.03, 0.06), 0.5)
    assert len(steps) >= 6
    for i, (level, duration) in enumerate(steps):
        assert level == (1.0 if i % 2 == 0 else 0.0)
        assert duration == pytest.approx(0.03 if level else 0.06, abs=TOLERANCE_S)


def test_blink_on_a_pwm_led(make):
    led = make(pwm=True)
    steps = run_pattern(led, lambda: led.blink(0.02, 0.02), 0.15)
    assert {level for level, _ in steps} == {0.0, 1.0}


def test_heartbeat_is_a_double_pulse(make):
    led = make()
    steps = run_pattern(led, lambda: led.heartbeat(period_s=0.4), 1.0)
    assert len(steps) >= 6
    expected = [(1.0, 0.04), (0.0, 0.04), (1.0, 0.04), (0.0, 0.28)]
    for i, (level, duration) in enumerate(steps):
        want_level, want_duration = expected[i % 4]
        assert level == want_level
        assert duration == pytest.approx(want_duration, abs=TOLERANCE_S)


def test_pattern_is_named_in_status(make):
    led = make()
    led.heartbeat()
    assert led.get_status()["pattern"] == "heartbeat"
    led.blink()
    assert led.get_status()["pattern"] == "blink"
    led.on()
    assert led.get_status()["pattern"] == "on"


def test_off_stops_the_pattern_for_good(make, factory):
    led = make()
    led.blink(0.01, 0.01)
    time.sleep(0.05)
    led.off()
    count = len(factory.pin(PIN).states)
    time.sleep(0.05)
    assert len(factory.pin(PIN).states) == count
    assert factory.pin(PIN).state == 0


@pytest.mark.parametrize("args", [(0, 1), (1, -1), (float("inf"), 1)])
def test_blink_times_must_be_positive(make, args):
    with pytest.raises(OutputValueError, match=r"blink o(n|ff)_s must be a positive number"):
        make().blink(*args)


def test_safe_off_stops_a_pattern(make, factory):
    led = make(pwm=True)
    led.heartbeat(period_s=0.2)
    time.sleep(0.01)
    led.safe_off()
    time.sleep(0.05)
    assert factory.pin(PIN).state == 0 and led.pattern == "off"


def test_close_is_idempotent(make, factory):
    led = make()
    led.blink(0.01, 0.01)
    time.sleep(0.03)
    led.close()
    led.close()
    pin = factory.pin(PIN)
    assert pin.function == "input" and pin.state == 0
    assert led.get_status()["pattern"] == "closed"
    with pytest.raises(OutputClosedError, match="LED 'status' is closed"):
        led.on()
    with pytest.raises(OutputClosedError):
        led.heartbeat()
