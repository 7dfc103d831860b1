"""LED pin sequences on gpiozero's mock pins: steady, PWM brightness, blink and heartbeat."""

from __future__ import annotations

import statistics

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
from tests.waiting import holds_for, wait_until

PIN = 27
# A pattern thread that wakes late makes one step longer and (the schedule being drift-free)
# the next one shorter: on a loaded machine any single step may be off by a scheduler
# delay. The durations of each kind of step are therefore judged by their median (most
# wake-ups are on time even under load), and the schedule as a whole by where its last step
# starts (no drift), with a bound of several scheduler delays.
TOLERANCE_S = 0.03
SCHEDULE_TOLERANCE_S = 0.25


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


def run_pattern(led: Led, start, steps: int) -> list[tuple[float, float]]:
    """Run a pattern until it has made ``steps`` complete steps, stop it, and return (level,
    duration) of each step.

    The first entry (the level before the pattern) and the last (cut short by ``off()``) are
    dropped; durations are measured by the mock pin's state history. The test waits for a
    number of steps, not for a time: a loaded machine runs the same steps, later.
    """
    pin = led._device.pin
    pin.clear_states()
    start()
    wait_until(lambda: len(pin.states) >= steps + 2, what=f"{steps} pattern steps")
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


def assert_steps_follow(steps: list[tuple[float, float]],
                        expected: list[tuple[float, float]]) -> None:
    """Levels exactly in the pattern's order; each kind of step lasts its nominal time (by
    the median); the schedule does not drift (the steps add up to the nominal total)."""
    assert [level for level, _ in steps] == [expected[i % len(expected)][0]
                                             for i in range(len(steps))]
    for k, (_, want) in enumerate(expected):
        kind = [duration for i, (_, duration) in enumerate(steps) if i % len(expected) == k]
        assert statistics.median(kind) == pytest.approx(want, abs=TOLERANCE_S), (k, kind)
    nominal = sum(expected[i % len(expected)][1] for i in range(len(steps)))
    assert sum(d for _, d in steps) == pytest.approx(nominal, abs=SCHEDULE_TOLERANCE_S), steps


def test_blink_sequence(make):
    led = make()
    steps = run_pattern(led, lambda: led.blink(0.03, 0.06), 12)
    assert len(steps) >= 10
    assert_steps_follow(steps, [(1.0, 0.03), (0.0, 0.06)])


def test_blink_on_a_pwm_led(make):
    led = make(pwm=True)
    steps = run_pattern(led, lambda: led.blink(0.02, 0.02), 6)
    assert {level for level, _ in steps} == {0.0, 1.0}


def test_heartbeat_is_a_double_pulse(make):
    led = make()
    steps = run_pattern(led, lambda: led.heartbeat(period_s=0.4), 13)
    assert len(steps) >= 12  # three double pulses
    assert_steps_follow(steps, [(1.0, 0.04), (0.0, 0.04), (1.0, 0.04), (0.0, 0.28)])


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
    wait_until(lambda: len(factory.pin(PIN).states) >= 4, what="the blinking to start")
    led.off()
    count = len(factory.pin(PIN).states)
    holds_for(lambda: len(factory.pin(PIN).states) == count, 0.2, "the pin staying still")
    assert factory.pin(PIN).state == 0


@pytest.mark.parametrize("args", [(0, 1), (1, -1), (float("inf"), 1)])
def test_blink_times_must_be_positive(make, args):
    with pytest.raises(OutputValueError, match=r"blink o(n|ff)_s must be a positive number"):
        make().blink(*args)


def test_safe_off_stops_a_pattern(make, factory):
    led = make(pwm=True)
    led.heartbeat(period_s=0.2)
    wait_until(lambda: factory.pin(PIN).state == 1, what="the heartbeat to start")
    led.safe_off()
    holds_for(lambda: factory.pin(PIN).state == 0 and led.pattern == "off", 0.3,
              "the LED staying off")


def test_close_is_idempotent(make, factory):
    led = make()
    led.blink(0.01, 0.01)
    wait_until(lambda: len(factory.pin(PIN).states) >= 3, what="the blinking to start")
    led.close()
    led.close()
    pin = factory.pin(PIN)
    assert pin.function == "input" and pin.state == 0
    assert led.get_status()["pattern"] == "closed"
    with pytest.raises(OutputClosedError, match="LED 'status' is closed"):
        led.on()
    with pytest.raises(OutputClosedError):
        led.heartbeat()
