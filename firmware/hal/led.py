"""A named LED output: steady on/off, PWM brightness, and repeating blink/heartbeat patterns.

Patterns run on one daemon thread per LED as a list of ``(level, seconds)`` steps, timed
against absolute deadlines so they do not drift. Stopping a pattern sets its event under the
LED's lock, and the thread checks that event under the same lock before every write, so no
step can land after ``off()`` / ``safe_off()`` returned. gpiozero's own ``blink()`` is not used
because it only knows one on/off pair, and one mechanism for every pattern is simpler to test.
The device's lifecycle, the lock and the safe off are :class:`~firmware.hal.output.Output`'s.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from gpiozero import LED, PWMLED, Factory, OutputDevice

from firmware.hal.errors import OutputValueError, PwmUnsupportedError
from firmware.hal.output import Output
from firmware.hal.settings import LedSettings

log = logging.getLogger("pafw.hal")

#: a double pulse, as fractions of the period: on 0.1, off 0.1, on 0.1, off 0.7
HEARTBEAT: tuple[tuple[float, float], ...] = ((1.0, 0.1), (0.0, 0.1), (1.0, 0.1), (0.0, 0.7))

Steps = Sequence[tuple[float, float]]


def _positive(what: str, value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise OutputValueError(f"{what} must be a positive number of seconds (got {value!r})")
    return float(value)


class Led(Output[LedSettings]):
    """One LED on a GPIO pin; starts off. ``pattern`` in the status names what it shows.

    >>> from firmware.hal.backend import mock_factory
    >>> with Led("status", LedSettings(pin=27, pwm=True), factory=mock_factory()) as led:
    ...     led.brightness = 0.25
    ...     led.get_status()["pattern"]
    'dim'
    """

    kind: ClassVar[str] = "LED"

    def __init__(self, name: str, settings: LedSettings, *, factory: Factory) -> None:
        super().__init__(name, settings, factory=factory)
        self._pattern = "off"
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _open_device(self, factory: Factory) -> OutputDevice:
        if self.settings.pwm:
            return PWMLED(self.settings.pin, active_high=self.settings.active_high,
                          initial_value=0, pin_factory=factory)
        return LED(self.settings.pin, active_high=self.settings.active_high,
                   initial_value=False, pin_factory=factory)

    def _pin_label(self) -> str:
        return "a PWM pin" if self.settings.pwm else "pin"

    # -- commands ------------------------------------------------------------------------

    def on(self) -> None:
        """Steady on (full brightness); stops any pattern."""
        self._steady(1.0, "on")

    def off(self) -> None:
        """Steady off; stops any pattern."""
        self._steady(0.0, "off")

    @property
    def brightness(self) -> float:
        """The current level, 0..1 (a digital LED reads 0.0 or 1.0)."""
        with self._lock:
            return 0.0 if self._closed else float(self._device.value)

    @brightness.setter
    def brightness(self, value: float) -> None:
        if not self.settings.pwm:
            raise PwmUnsupportedError(
                f"LED {self.name!r} has no PWM: set pwm: true on pin {self.settings.pin} "
                "to use brightness, or use on()/off()"
            )
        if not 0.0 <= value <= 1.0:  # also false for NaN
            raise OutputValueError(
                f"LED {self.name!r}: brightness must be between 0 and 1 (got {value!r})"
            )
        name = "off" if value == 0 else "on" if value == 1 else "dim"
        self._steady(float(value), name)

    def blink(self, on_s: float = 0.5, off_s: float = 0.5) -> None:
        """Repeat on ``on_s`` / off ``off_s`` until another command; returns at once."""
        steps = ((1.0, _positive("blink on_s", on_s)), (0.0, _positive("blink off_s", off_s)))
        self._start_pattern("blink", steps)

    def heartbeat(self, *, period_s: float = 1.0) -> None:
        """Repeat a double pulse (on 10 %, off 10 %, on 10 %, off 70 % of ``period_s``)."""
        period = _positive("heartbeat period_s", period_s)
        self._start_pattern("heartbeat", [(level, f * period) for level, f in HEARTBEAT])

    def close(self) -> None:
        """Switch off and release the pin (see :meth:`Output.close`), then wait up to a
        second for the pattern thread to end; idempotent."""
        with self._lock:
            thread = self._thread
            super().close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    # -- state ---------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        """``off``, ``on``, ``dim``, ``blink``, ``heartbeat`` or ``closed``."""
        return "closed" if self._closed else self._pattern

    # -- Output's hooks ------------------------------------------------------------------

    def _safe_off_locked(self) -> None:
        """Stop any pattern and drive the LED off."""
        self._stop_pattern()
        self._device.value = 0
        self._pattern = "off"

    def _force_off(self) -> None:
        # the same steps: setting the stop event and writing the pin need no lock, and the
        # pattern thread checks the event before its next write
        self._safe_off_locked()

    def _status(self) -> dict[str, Any]:
        """pwm, pattern and the current level."""
        return {"pwm": self.settings.pwm, "pattern": self.pattern, "value": self.brightness}

    def _state_name(self) -> str:
        return self.pattern

    # -- internals -----------------------------------------------------------------------

    def _steady(self, level: float, name: str) -> None:
        with self._lock:
            self._check_open()
            self._stop_pattern()
            try:
                self._device.value = level
            except Exception as exc:  # a driver error, converted at the boundary
                raise self._drive_error(exc) from exc
            self._pattern = name

    def _start_pattern(self, name: str, steps: Steps) -> None:
        with self._lock:
            self._check_open()
            self._stop_pattern()
            stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(tuple(steps), stop), name=f"led-{self.name}", daemon=True
            )
            self._stop, self._thread, self._pattern = stop, thread, name
            thread.start()

    def _stop_pattern(self) -> None:
        """Stop the pattern thread (not joined: it may be waiting for the lock we hold)."""
        if self._stop is not None:
            self._stop.set()
        self._stop = self._thread = None

    def _run(self, steps: Steps, stop: threading.Event) -> None:
        deadline = time.monotonic()
        for level, seconds in itertools.cycle(steps):
            with self._lock:
                if stop.is_set():
                    return
                try:
                    self._device.value = level
                except Exception:
                    log.exception("LED %r: pattern step failed", self.name)
                    return
            deadline += seconds
            if stop.wait(max(0.0, deadline - time.monotonic())):
                return
