"""The Output base on gpiozero's mock pins: what every output (relay, LED, any later one) does
the same way: close, context manager, safe off, setup and drive errors, the status protocol."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from gpiozero import DigitalOutputDevice, Factory
from gpiozero.pins.mock import MockFactory

from firmware.errors import HalError
from firmware.hal import output as output_module
from firmware.hal.backend import mock_factory
from firmware.hal.errors import OutputClosedError, OutputSetupError
from firmware.hal.led import Led
from firmware.hal.output import COMMON_STATUS_KEYS, Output
from firmware.hal.relay import Relay
from firmware.hal.settings import LedSettings, RelaySettings
from firmware.status import StatusReporter

PIN = 17


class Buzzer(Output[RelaySettings]):
    """The smallest output: only what the base asks of a subclass, plus on()."""

    kind: ClassVar[str] = "buzzer"

    def _open_device(self, factory: Factory) -> DigitalOutputDevice:
        return DigitalOutputDevice(self.settings.pin, active_high=self.settings.active_high,
                                   initial_value=False, pin_factory=factory)

    def on(self) -> None:
        with self._lock:
            self._check_open()
            try:
                self._device.on()
            except Exception as exc:
                raise self._drive_error(exc) from exc

    def _safe_off_locked(self) -> None:
        self._device.off()

    def _status(self) -> dict[str, Any]:
        return {"sounding": not self._closed and bool(self._device.value)}

    def _state_name(self) -> str:
        return "closed" if self._closed else ("on" if self._device.value else "off")


Builder = Callable[[MockFactory, bool], Output[Any]]

#: every kind of output, built on PIN (active-high or active-low), with its own status keys
OUTPUTS: dict[str, tuple[Builder, set[str]]] = {
    "relay": (
        lambda f, high: Relay("pump", RelaySettings(pin=PIN, active_high=high), factory=f),
        {"state", "switch_count", "deferred_count", "pending", "pulse_remaining_s",
         "last_change_s", "since_change_s"},
    ),
    "led": (
        lambda f, high: Led("status", LedSettings(pin=PIN, active_high=high), factory=f),
        {"pwm", "pattern", "value"},
    ),
    "pwm_led": (
        lambda f, high: Led("status", LedSettings(pin=PIN, pwm=True, active_high=high),
                            factory=f),
        {"pwm", "pattern", "value"},
    ),
    "buzzer": (
        lambda f, high: Buzzer("horn", RelaySettings(pin=PIN, active_high=high), factory=f),
        {"sounding"},
    ),
}


def levels(factory: MockFactory) -> list[float]:
    return [float(s.state) for s in factory.pin(PIN).states]


@pytest.fixture
def factory() -> MockFactory:
    return mock_factory()


@pytest.fixture(params=sorted(OUTPUTS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def build(kind, factory):
    made: list[Output[Any]] = []

    def make(*, active_high: bool = True) -> Output[Any]:
        output = OUTPUTS[kind][0](factory, active_high)
        made.append(output)
        return output

    yield make
    for output in made:
        output.close()


def test_the_base_alone_is_abstract(factory):
    with pytest.raises(TypeError, match="abstract"):
        Output("x", RelaySettings(pin=PIN), factory=factory)  # type: ignore[abstract]


def test_starts_off(build, factory):
    output = build()
    assert factory.pin(PIN).function == "output" and factory.pin(PIN).state == 0
    assert not output.closed


@pytest.mark.parametrize("active_high", [True, False])
def test_safe_off_drives_the_off_level(build, factory, active_high):
    output = build(active_high=active_high)
    output.on()
    output.safe_off()
    assert factory.pin(PIN).state == (0 if active_high else 1)
    output.safe_off()  # already off: harmless, still off
    assert factory.pin(PIN).state == (0 if active_high else 1)


def test_close_is_idempotent(build, factory):
    output = build()
    output.on()
    output.close()
    output.close()
    assert output.closed
    assert levels(factory) == [0, 1, 0]  # off once, before the release
    assert factory.pin(PIN).function == "input"  # released
    with pytest.raises(OutputClosedError, match=rf"{output.kind} '{output.name}' is closed"):
        output.on()
    output.safe_off()  # harmless after close
    assert "closed" in repr(output)


@pytest.mark.parametrize("active_high", [True, False])
def test_context_manager_puts_the_safe_state(build, factory, active_high):
    with build(active_high=active_high) as output:
        output.on()
        assert factory.pin(PIN).state == (1 if active_high else 0)
    assert output.closed and factory.pin(PIN).function == "input"
    # floating input, (off if that is high), on, off; then the release, which drops a
    # simulated PWM pin to 0 (not a driven level)
    driven = [0, 1, 0] if active_high else [0, 1, 0, 1]
    history = levels(factory)
    assert history[: len(driven)] == driven and history[len(driven):] in ([], [0])


def test_context_manager_goes_off_when_the_block_raises(build, factory):
    with pytest.raises(RuntimeError, match="crash"), build() as output:
        output.on()
        raise RuntimeError("crash")
    assert output.closed and levels(factory) == [0, 1, 0]


def test_enter_returns_the_output_itself(build):
    output = build()
    with output as entered:
        assert entered is output


def test_status_starts_with_the_common_keys(build, kind):
    output = build()
    status = output.get_status()
    assert tuple(status)[: len(COMMON_STATUS_KEYS)] == COMMON_STATUS_KEYS
    assert set(status) == set(COMMON_STATUS_KEYS) | OUTPUTS[kind][1]
    assert status["pin"] == PIN and status["active_high"] is True
    json.dumps(status)


def test_every_output_speaks_the_status_protocol(build):
    assert isinstance(build(), StatusReporter)


def test_status_is_a_new_dict_each_time(build):
    output = build()
    first = output.get_status()
    first["pin"] = -1
    second = output.get_status()
    assert second is not first and second["pin"] == PIN


def test_status_is_answered_after_close(build, kind):
    output = build(active_high=False)
    output.close()
    status = output.get_status()
    assert set(status) == set(COMMON_STATUS_KEYS) | OUTPUTS[kind][1]
    assert status["active_high"] is False
    json.dumps(status)


def test_pin_in_use_is_a_setup_error_naming_output_and_pin(build, factory):
    build()
    with pytest.raises(OutputSetupError, match=r"buzzer 'second' cannot use pin 17: "):
        Buzzer("second", RelaySettings(pin=PIN), factory=factory)


def test_driver_errors_become_hal_errors(factory, monkeypatch):
    with Buzzer("horn", RelaySettings(pin=PIN), factory=factory) as buzzer:

        def broken(value: object) -> None:
            raise OSError("EIO")

        monkeypatch.setattr(factory.pin(PIN), "_set_state", broken)
        with pytest.raises(HalError, match=r"buzzer 'horn': cannot drive pin 17: EIO"):
            buzzer.on()
        monkeypatch.undo()


def test_safe_off_forces_the_pin_when_the_lock_stays_busy(build, factory, monkeypatch, caplog):
    """A thread that holds the lock too long cannot keep the output on."""
    monkeypatch.setattr(output_module, "SAFE_LOCK_TIMEOUT_S", 0.05)
    output = build()
    output.on()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with output._lock:
            held.set()
            release.wait(5.0)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5.0)
        with caplog.at_level(logging.WARNING, logger="pafw.hal"):
            output.safe_off()
        assert factory.pin(PIN).state == 0
        assert "lock busy, forcing the pin off without it" in caplog.text
    finally:
        release.set()
        holder.join()


def test_relay_and_led_are_outputs():
    assert issubclass(Relay, Output) and issubclass(Led, Output)
    assert (Relay.kind, Led.kind) == ("relay", "LED")


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(output_module)
    assert result.attempted > 0 and result.failed == 0
