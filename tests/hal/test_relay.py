"""Relay pin sequences on gpiozero's mock pins: pulses, limits, minimum times, safe off."""

from __future__ import annotations

import threading
import time

import pytest

from firmware.errors import HalError
from firmware.hal.backend import mock_factory
from firmware.hal.errors import (
    OutputClosedError,
    OutputSetupError,
    OutputValueError,
    PulseTooLongError,
)
from firmware.hal.relay import Relay
from firmware.hal.settings import RelaySettings
from tests.waiting import holds_for, wait_until

PIN = 17


def levels(pin) -> list[float]:
    """The pin's state history (the first entry is the floating input before the device)."""
    return [float(s.state) for s in pin.states]


def durations(pin) -> list[float]:
    """How long each state after the first lasted before the next change."""
    return [s.timestamp for s in pin.states[2:]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factory():
    return mock_factory()


@pytest.fixture
def make(factory):
    made: list[Relay] = []

    def build(*, clock=time.monotonic, **options) -> Relay:
        relay = Relay("pump", RelaySettings(pin=PIN, **options), factory=factory, clock=clock)
        made.append(relay)
        return relay

    yield build
    for relay in made:
        relay.close()


def test_starts_off_and_switches(make, factory):
    relay = make()
    pin = factory.pin(PIN)
    assert pin.function == "output" and not relay.is_on
    relay.on()
    relay.on()  # already on: no extra switch
    relay.off()
    assert levels(pin) == [0, 1, 0]
    assert relay.get_status()["switch_count"] == 2


def test_active_low_inverts_the_pin(make, factory):
    relay = make(active_high=False)
    pin = factory.pin(PIN)
    assert pin.state == 1  # off is high on an active-low board
    relay.on()
    assert pin.state == 0
    relay.off()
    assert levels(pin) == [0, 1, 0, 1]


def test_pulse_returns_at_once_and_releases_on_a_timer(make, factory):
    relay = make()
    pin = factory.pin(PIN)
    relay.pulse(0.5)
    # returned while the pulse still runs (a blocking pulse would return with the relay off)
    assert pin.state == 1 and relay.get_status()["pulse_remaining_s"] > 0
    wait_until(lambda: not relay.is_on, what="the pulse to end")
    assert levels(pin) == [0, 1, 0]
    # the pulse length is the behaviour: never shorter, and late only by a timer's delay
    # (the upper bound is generous: a loaded machine wakes the timer thread late)
    assert 0.495 <= durations(pin)[0] < 5.0
    assert relay.get_status()["pulse_remaining_s"] is None


def test_pulse_above_maximum_is_refused(make, factory):
    relay = make(max_pulse_s=1.0)
    with pytest.raises(PulseTooLongError, match=r"relay 'pump': pulse of 1.5 s refused.*"
                                                r"max_pulse_s of 1 s") as info:
        relay.pulse(1.5)
    assert isinstance(info.value, HalError) and isinstance(info.value, ValueError)
    assert levels(factory.pin(PIN)) == [0]  # never switched on


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_pulse_length_must_be_positive(make, seconds):
    with pytest.raises(OutputValueError, match="positive number of seconds"):
        make().pulse(seconds)


def test_min_on_defers_the_off(make, factory):
    relay = make(min_on_s=0.1)
    pin = factory.pin(PIN)
    relay.on()
    relay.off()  # too early: deferred, not dropped
    status = relay.get_status()
    assert relay.is_on and pin.state == 1
    assert status["pending"] == "off" and status["deferred_count"] == 1
    wait_until(lambda: not relay.is_on)
    assert levels(pin) == [0, 1, 0]
    assert durations(pin)[0] >= 0.1
    assert relay.get_status()["pending"] is None


def test_min_off_counts_from_the_safe_start(make, factory):
    """A restart loop cannot chatter a contactor: the start itself counts as switching off."""
    relay = make(min_off_s=0.1)
    relay.on()
    assert not relay.is_on and relay.get_status()["pending"] == "on"
    wait_until(lambda: relay.is_on)
    pin = factory.pin(PIN)
    assert levels(pin) == [0, 1]
    # the pin's own log: it was off (from its setup at the start) at least min_off_s
    assert pin.states[1].timestamp >= 0.1


def test_latest_request_wins(make, factory):
    relay = make(min_off_s=0.05)
    relay.on()  # deferred
    relay.off()  # cancels the pending on: the relay is already off
    holds_for(lambda: levels(factory.pin(PIN)) == [0], 0.3, "the relay staying off")
    assert relay.get_status()["deferred_count"] == 1
    assert relay.get_status()["pending"] is None


def test_pulse_counts_from_a_deferred_start(make, factory):
    relay = make(min_off_s=0.05)
    relay.pulse(0.05)
    wait_until(lambda: relay.is_on)
    wait_until(lambda: not relay.is_on)
    pin = factory.pin(PIN)
    assert levels(pin) == [0, 1, 0]
    assert durations(pin)[0] >= 0.045  # a full pulse despite the deferred start


def test_pulse_shorter_than_min_on_is_extended(make, factory):
    relay = make(min_on_s=0.1)
    relay.pulse(0.02)
    wait_until(lambda: not relay.is_on)
    assert durations(factory.pin(PIN))[0] >= 0.1
    assert relay.get_status()["deferred_count"] == 1


def test_on_during_a_pulse_cancels_the_release(make, factory):
    relay = make()
    relay.pulse(0.03)
    relay.on()
    holds_for(lambda: relay.is_on and levels(factory.pin(PIN)) == [0, 1], 0.3,
              "the relay staying on past the pulse's end")


def test_injected_clock_decides_minimum_times(make, factory):
    clock = FakeClock()
    relay = make(min_on_s=10.0, clock=clock)
    relay.on()
    clock.now += 3.0
    relay.off()  # 7 s too early on the injected clock
    status = relay.get_status()
    assert relay.is_on and status["pending"] == "off" and status["deferred_count"] == 1
    assert status["since_change_s"] == pytest.approx(3.0)
    clock.now += 8.0
    relay.off()  # allowed now: happens at once and replaces the pending switch
    status = relay.get_status()
    assert not relay.is_on and status["pending"] is None
    assert status["last_change_s"] == clock.now
    assert levels(factory.pin(PIN)) == [0, 1, 0]


def test_safe_off_ignores_minimum_times_and_pending_switches(make, factory):
    relay = make(min_on_s=10.0)
    relay.on()
    relay.off()  # deferred by 10 s
    relay.safe_off()
    assert not relay.is_on and factory.pin(PIN).state == 0
    assert relay.get_status()["pending"] is None


def test_safe_off_cancels_a_pulse(make, factory):
    relay = make(min_off_s=0.0)
    relay.pulse(0.05)
    relay.safe_off()
    relay.on()
    # the cancelled pulse's release does not fire
    holds_for(lambda: relay.is_on, 0.3, "the relay staying on")


def test_close_is_idempotent_and_goes_off_first(make, factory):
    relay = make(min_on_s=10.0)
    pin = factory.pin(PIN)
    relay.on()
    relay.close()
    relay.close()
    assert levels(pin) == [0, 1, 0]  # off, ignoring min_on_s
    assert pin.function == "input"  # released
    assert relay.closed and relay.get_status()["state"] == "closed"
    with pytest.raises(OutputClosedError, match="relay 'pump' is closed"):
        relay.on()
    relay.safe_off()  # harmless after close


def test_context_manager_closes(factory):
    with Relay("fan", RelaySettings(pin=22), factory=factory) as relay:
        relay.on()
    assert relay.closed and levels(factory.pin(22)) == [0, 1, 0]


def test_pin_in_use_is_a_setup_error(make, factory):
    make()
    with pytest.raises(OutputSetupError, match="relay 'other' cannot use pin 17"):
        Relay("other", RelaySettings(pin=PIN), factory=factory)


def test_concurrent_callers_leave_a_consistent_state(make, factory):
    relay = make()
    pin = factory.pin(PIN)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        try:
            for i in range(200):
                match (seed + i) % 3:
                    case 0:
                        relay.on()
                    case 1:
                        relay.off()
                    case _:
                        relay.pulse(0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # let a last pulse release: no timer may switch the pin while the state is compared
    wait_until(lambda: relay.get_status()["pulse_remaining_s"] is None
               and relay.get_status()["pending"] is None, what="the last pulse to release")
    assert not errors
    assert bool(pin.state) == relay.is_on
    assert relay.get_status()["switch_count"] == len(pin.states) - 1


def test_driver_errors_become_hal_errors(make, factory, monkeypatch):
    relay = make()

    def broken(value):
        raise OSError("EIO")

    monkeypatch.setattr(factory.pin(PIN), "_set_state", broken)
    with pytest.raises(HalError, match="relay 'pump': cannot drive pin 17: EIO"):
        relay.on()
    assert not relay.is_on
