"""A named relay output: on/off, timed pulses, and minimum on/off times that spare contactors.

A switch requested before the relay's ``min_on_s`` / ``min_off_s`` allows it is *deferred*:
scheduled on a timer thread for the moment it becomes allowed, never dropped (the latest
request wins, and deferrals are counted in the status). ``safe_off()`` ignores those times:
a safe state beats contactor wear. Every method is thread-safe; the device's lifecycle, the
lock and the safe off are :class:`~firmware.hal.output.Output`'s.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from gpiozero import Factory, OutputDevice

from firmware.hal.errors import OutputValueError, PulseTooLongError
from firmware.hal.output import Output
from firmware.hal.settings import RelaySettings

log = logging.getLogger("pafw.hal")


class Relay(Output[RelaySettings]):
    """One relay (or contactor) on a GPIO pin; starts off whatever ``settings.initial`` says.

    ``initial`` is applied by :class:`~firmware.hal.hal.Hal` once every output is off. The
    start counts as a switch to off, so ``min_off_s`` also protects against restart loops.

    >>> from firmware.hal.backend import mock_factory
    >>> with Relay("pump", RelaySettings(pin=17), factory=mock_factory()) as pump:
    ...     pump.pulse(0.5)          # on now, off 0.5 s later on a timer thread
    ...     pump.is_on
    True
    True
    """

    kind: ClassVar[str] = "relay"

    def __init__(
        self,
        name: str,
        settings: RelaySettings,
        *,
        factory: Factory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, settings, factory=factory)
        self._clock = clock
        self._is_on = False
        self._switches = 0
        self._deferred = 0
        self._pending: bool | None = None  # the deferred target state
        self._pending_pulse: float | None = None  # pulse length to start when it is applied
        self._pulse_until: float | None = None
        self._timer: threading.Timer | None = None
        self._generation = 0  # bumped on every cancel: a stale timer callback does nothing
        self._last_change = clock()  # the device opened off: the start counts as a switch

    def _open_device(self, factory: Factory) -> OutputDevice:
        return OutputDevice(
            self.settings.pin, active_high=self.settings.active_high, initial_value=False,
            pin_factory=factory,
        )

    # -- commands ------------------------------------------------------------------------

    def on(self) -> None:
        """Switch on (now, or deferred until ``min_off_s`` has passed); cancels a pulse."""
        with self._lock:
            self._check_open()
            self._request(True, pulse_s=None)

    def off(self) -> None:
        """Switch off (now, or deferred until ``min_on_s`` has passed); cancels a pulse."""
        with self._lock:
            self._check_open()
            self._request(False, pulse_s=None)

    def pulse(self, seconds: float, *, only_if_off: bool = False) -> bool:
        """Switch on for ``seconds``, then off; returns at once (a timer thread releases).

        The length counts from the moment the relay actually closes, so a deferred start
        still gives a full pulse; a relay already on stays on and is released ``seconds``
        from now. A release earlier than ``min_on_s`` is deferred like any other switch.
        ``only_if_off``: do nothing and return False if the relay is on or about to switch
        on (checked and requested atomically: a test pulse never shortens a held relay).
        """
        limit = self.settings.max_pulse_s
        if not seconds > 0 or math.isinf(seconds):
            raise OutputValueError(
                f"relay {self.name!r}: pulse length must be a positive number of seconds "
                f"(got {seconds!r})"
            )
        if seconds > limit:
            raise PulseTooLongError(
                f"relay {self.name!r}: pulse of {seconds:g} s refused, longer than its "
                f"max_pulse_s of {limit:g} s"
            )
        with self._lock:
            self._check_open()
            if only_if_off and (self._is_on or self._pending is True):
                return False
            self._request(True, pulse_s=seconds)
        return True

    # -- state ---------------------------------------------------------------------------

    @property
    def is_on(self) -> bool:
        """The commanded (and driven) state; a deferred switch has not happened yet."""
        return self._is_on

    # -- Output's hooks (called with the lock held) --------------------------------------

    def _safe_off_locked(self) -> None:
        """Cancel pending switches and pulses, then drive the pin off ignoring minimum times."""
        self._cancel_timer()
        self._pending = self._pending_pulse = self._pulse_until = None
        was_on = self._is_on
        self._device.off()  # written even when already off: the pin is what matters
        if was_on:
            self._is_on = False
            self._switches += 1
            self._last_change = self._clock()

    def _status(self) -> dict[str, Any]:
        """State, counters, pending switch, pulse left, last change (clock seconds)."""
        now = self._clock()
        pending = None if self._pending is None else ("on" if self._pending else "off")
        return {
            "state": self._state_name(),
            "switch_count": self._switches,
            "deferred_count": self._deferred,
            "pending": pending,
            "pulse_remaining_s": (
                None if self._pulse_until is None else max(0.0, self._pulse_until - now)
            ),
            "last_change_s": self._last_change,
            "since_change_s": now - self._last_change,
        }

    def _state_name(self) -> str:
        return "closed" if self._closed else ("on" if self._is_on else "off")

    # -- internals (called with the lock held) -------------------------------------------

    def _request(self, target: bool, *, pulse_s: float | None) -> None:
        """The one path of every switch: the latest request replaces any pending one."""
        self._cancel_timer()
        self._pending = self._pending_pulse = self._pulse_until = None
        now = self._clock()
        if target == self._is_on:
            if target and pulse_s is not None:
                self._start_release(pulse_s, now)
            return
        minimum = self.settings.min_on_s if self._is_on else self.settings.min_off_s
        wait = self._last_change + minimum - now
        if wait > 0:
            self._pending, self._pending_pulse = target, pulse_s
            self._deferred += 1
            log.info("relay %r: switching %s deferred by %.3f s (min_%s_s %g)", self.name,
                     "on" if target else "off", wait, "on" if self._is_on else "off", minimum)
            self._arm(wait, self._apply_pending)
            return
        now = self._switch(target)
        if target and pulse_s is not None:
            self._start_release(pulse_s, now)

    def _switch(self, target: bool) -> float:
        """Drive the pin; returns the clock time just after, from which minimum times count."""
        try:
            if target:
                self._device.on()
            else:
                self._device.off()
        except Exception as exc:  # a driver error, converted at the boundary
            raise self._drive_error(exc) from exc
        self._is_on = target
        self._switches += 1
        self._last_change = self._clock()
        log.debug("relay %r: %s", self.name, "on" if target else "off")
        return self._last_change

    def _start_release(self, seconds: float, now: float) -> None:
        self._pulse_until = now + seconds
        self._arm(seconds, lambda: self._request(False, pulse_s=None))

    def _apply_pending(self) -> None:
        """The deferred switch's timer fired: its time has come, so it happens now."""
        target, pulse_s = self._pending, self._pending_pulse
        self._pending = self._pending_pulse = None
        if target is None:
            return
        now = self._switch(target)
        if target and pulse_s is not None:
            self._start_release(pulse_s, now)

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        self._generation += 1
        timer = threading.Timer(delay, self._fire, args=(self._generation, action))
        timer.daemon = True
        timer.name = f"relay-{self.name}"
        self._timer = timer
        timer.start()

    def _fire(self, generation: int, action: Callable[[], None]) -> None:
        with self._lock:
            if generation != self._generation or self._closed:
                return  # cancelled after the timer had already started waiting for the lock
            self._timer = None
            try:
                action()
            except Exception:
                log.exception("relay %r: timed switch failed", self.name)

    def _cancel_timer(self) -> None:
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
