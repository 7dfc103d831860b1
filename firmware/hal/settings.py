"""Validated settings of the ``hal`` config section: the GPIO backend, named relays and LEDs.

Kept apart from the devices so the config loader can validate a file without importing
gpiozero. Pins are BCM numbers (``GPIO17`` is ``17``), the numbering of the 40-pin header on
every Raspberry Pi with one. Example::

    hal:
      backend: auto          # auto | lgpio | rpigpio | mock
      relays:
        pump: {pin: 17, active_high: false, min_off_s: 5}
      leds:
        status: {pin: 27, pwm: true}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from firmware.strict_model import StrictModel

#: the BCM GPIO numbers of the 40-pin header
BCM_PINS = range(0, 28)

BackendName = Literal["auto", "lgpio", "rpigpio", "mock"]


def _check_pin(value: int) -> int:
    """Reject a pin that is not on the 40-pin header (the loader appends the bad value)."""
    if value not in BCM_PINS:
        raise ValueError(
            f"BCM pin out of range: expected {BCM_PINS.start}..{BCM_PINS.stop - 1} "
            "(the GPIO numbers of the 40-pin header, e.g. 17 for GPIO17)"
        )
    return value


def _check_names(kind: str, names: Iterable[str]) -> None:
    """Output names end up in status keys, MQTT topics and action configs: identifiers only."""
    for name in names:
        if not name.isidentifier():
            raise ValueError(
                f"{kind} name {name!r} is not an identifier: use letters, digits and '_', "
                "not starting with a digit"
            )


class RelaySettings(StrictModel):
    """One relay (or contactor) output.

    ``initial`` is applied after the safe start: every output is first driven off, then relays
    with ``initial: true`` are switched on through the normal path (so ``min_off_s`` counts from
    the start, which protects a contactor from a crash-restart loop). ``min_on_s`` and
    ``min_off_s`` defer (never drop) a switch requested too early; ``max_pulse_s`` bounds
    ``pulse()``.
    """

    pin: int = Field(strict=True)
    active_high: bool = True
    initial: bool = False
    max_pulse_s: float = Field(60.0, gt=0, description="longest pulse() accepted")
    min_on_s: float = Field(0.0, ge=0, description="shortest time on before switching off")
    min_off_s: float = Field(0.0, ge=0, description="shortest time off before switching on")

    @field_validator("pin")
    @classmethod
    def _pin_range(cls, value: int) -> int:
        return _check_pin(value)


class LedSettings(StrictModel):
    """One LED output; ``pwm: true`` allows ``brightness`` (software or hardware PWM)."""

    pin: int = Field(strict=True)
    pwm: bool = False
    active_high: bool = True

    @field_validator("pin")
    @classmethod
    def _pin_range(cls, value: int) -> int:
        return _check_pin(value)


class HalSettings(StrictModel):
    """The ``hal`` section: which GPIO backend to use and the named outputs.

    ``gpiochip`` only matters to the lgpio backend. ``null`` (the default) chooses the chip of
    the 40-pin header: on a Raspberry Pi 5 that is ``/dev/gpiochip4`` on kernels before 6.6.45
    and ``/dev/gpiochip0`` after (where ``gpiochip4`` may remain as a link to it); on older
    Pis it is ``0``. gpiozero's own ``LGPIOFactory`` makes the same choice.
    """

    backend: BackendName = "auto"
    gpiochip: int | None = Field(None, ge=0)
    relays: dict[str, RelaySettings] = Field(default_factory=dict)
    leds: dict[str, LedSettings] = Field(default_factory=dict)

    @field_validator("relays")
    @classmethod
    def _relay_names(cls, value: dict[str, RelaySettings]) -> dict[str, RelaySettings]:
        _check_names("relay", value)
        return value

    @field_validator("leds")
    @classmethod
    def _led_names(cls, value: dict[str, LedSettings]) -> dict[str, LedSettings]:
        _check_names("LED", value)
        return value

    @model_validator(mode="after")
    def _pins_unique(self) -> HalSettings:
        """A pin claimed twice is an error located at the later user, naming both."""
        owners: dict[int, str] = {}
        problems: list[InitErrorDetails] = []
        users = [("relays", n, s.pin) for n, s in self.relays.items()]
        users += [("leds", n, s.pin) for n, s in self.leds.items()]
        for section, name, pin in users:
            user = f"{section}.{name}"
            if pin in owners:
                message = f"pin {pin} is claimed twice: by {owners[pin]} and by {user}"
                problems.append(InitErrorDetails(
                    type=PydanticCustomError("pin_conflict", message),
                    loc=(section, name, "pin"), input=pin,
                ))
            else:
                owners[pin] = user
        if problems:
            raise ValidationError.from_exception_data("HalSettings", problems)
        return self

    def pins(self) -> dict[int, str]:
        """Pin -> its user (``relays.pump``), for status pages and docs."""
        out = {s.pin: f"relays.{n}" for n, s in self.relays.items()}
        out.update({s.pin: f"leds.{n}" for n, s in self.leds.items()})
        return out
