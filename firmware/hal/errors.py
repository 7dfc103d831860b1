"""The HAL's leaf errors: each is a :class:`HalError` and, where one fits, a builtin too."""

from __future__ import annotations

from firmware.errors import HalError


class BackendUnavailableError(HalError):
    """Raised when no usable GPIO backend can be loaded or opened (names what to install)."""


class OutputSetupError(HalError):
    """Raised when an output's pin cannot be opened (invalid, already in use, no PWM)."""


class OutputClosedError(HalError):
    """Raised when a relay or LED is used after ``close()``."""


class OutputValueError(HalError, ValueError):
    """Raised when an output is given a bad number (a pulse length, a brightness, a period)."""


class PulseTooLongError(OutputValueError):
    """Raised when ``Relay.pulse()`` asks for more than the relay's ``max_pulse_s``."""


class PwmUnsupportedError(HalError):
    """Raised when a brightness is set on an LED configured without ``pwm: true``."""


class UnknownOutputError(HalError, KeyError):
    """Raised when ``Hal.relay()`` or ``Hal.led()`` is asked for a name not in the config."""

    def __str__(self) -> str:
        # KeyError would show the message quoted, as a key
        return str(self.args[0]) if self.args else ""
