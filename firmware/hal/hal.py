"""The HAL as the appliance sees it: one object owning the pin factory and every named output.

Fail safe at every exit path: all outputs are driven off at start (before any ``initial: true``
relay is switched on), by ``safe_state()`` (callable from signal handlers and ``except``
blocks; it never raises), by ``close()`` and by leaving a ``with`` block, and by an ``atexit``
hook in case the interpreter exits without ``close()`` (an unhandled exception, ``sys.exit``).
Python cannot run anything on SIGKILL or ``os._exit``, and the default SIGTERM action skips
``atexit``: the appliance installs a SIGTERM handler that calls ``safe_state()`` or exits.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from firmware.hal.backend import Backend, Platform, make_backend
from firmware.hal.errors import UnknownOutputError
from firmware.hal.led import Led
from firmware.hal.output import Output
from firmware.hal.relay import Relay
from firmware.hal.settings import HalSettings

log = logging.getLogger("pafw.hal")


class Hal:
    """Every relay and LED of the ``hal`` config section, built on one pin factory.

    ``factory`` overrides the backend choice (tests pass ``mock_factory()``); a factory passed
    in is not closed by :meth:`close`, one built here is. ``clock`` is given to the relays
    (their minimum on/off times and status timestamps).

    >>> settings = HalSettings.model_validate(
    ...     {"backend": "mock", "relays": {"pump": {"pin": 17}}, "leds": {"ok": {"pin": 27}}})
    >>> with Hal(settings) as hal:
    ...     hal.relay("pump").pulse(2.0)
    ...     hal.led("ok").heartbeat()
    ...     hal.get_status()["relays"]["pump"]["state"]
    True
    'on'
    """

    def __init__(
        self,
        settings: HalSettings,
        *,
        factory: Factory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._closed = False
        self._safe_failures = 0
        self._relays: dict[str, Relay] = {}
        self._leds: dict[str, Led] = {}
        if factory is None:
            self._backend = make_backend(settings.backend, gpiochip=settings.gpiochip)
            self._owns_factory = True
        else:
            name = "mock" if isinstance(factory, MockFactory) else type(factory).__name__
            self._backend = Backend(name, factory, getattr(factory, "chip", None),
                                    Platform(None), "factory passed to Hal")
            self._owns_factory = False
        atexit.register(self._at_exit)
        try:
            for name, relay_settings in settings.relays.items():
                self._relays[name] = Relay(name, relay_settings, factory=self.factory,
                                           clock=clock)
            for name, led_settings in settings.leds.items():
                self._leds[name] = Led(name, led_settings, factory=self.factory)
            self.safe_state()  # already off from construction; this makes the rule explicit
            for name, relay in self._relays.items():
                if relay.settings.initial:
                    log.info("relay %r: initial on after the safe start", name)
                    relay.on()
        except BaseException:
            self.close()
            raise
        log.info("HAL ready: backend %s, %d relays, %d LEDs", self._backend.name,
                 len(self._relays), len(self._leds))

    # -- access --------------------------------------------------------------------------

    @property
    def factory(self) -> Factory:
        return self._backend.factory

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def relays(self) -> dict[str, Relay]:
        """A copy of the name -> relay mapping."""
        return dict(self._relays)

    @property
    def leds(self) -> dict[str, Led]:
        """A copy of the name -> LED mapping."""
        return dict(self._leds)

    def relay(self, name: str) -> Relay:
        """The relay called ``name``; :class:`UnknownOutputError` lists the known ones."""
        try:
            return self._relays[name]
        except KeyError:
            raise UnknownOutputError(
                f"no relay named {name!r} in hal.relays ({_known(self._relays)})"
            ) from None

    def led(self, name: str) -> Led:
        """The LED called ``name``; :class:`UnknownOutputError` lists the known ones."""
        try:
            return self._leds[name]
        except KeyError:
            raise UnknownOutputError(
                f"no LED named {name!r} in hal.leds ({_known(self._leds)})"
            ) from None

    def _outputs(self) -> list[Output[Any]]:
        """Every output, relays first: the order safe_state() and close() visit them."""
        return [*self._relays.values(), *self._leds.values()]

    # -- safety --------------------------------------------------------------------------

    def safe_state(self) -> None:
        """Drive every output off now, ignoring minimum times; never raises.

        Safe from signal handlers (the outputs' locks are re-entrant and waited for at most a
        second) and from ``except`` / ``finally`` blocks. A failing output is logged and the
        others are still switched off.
        """
        for output in self._outputs():
            try:
                output.safe_off()
            except Exception:
                self._safe_failures += 1
                log.exception("safe state: %r could not be switched off", output)

    def close(self) -> None:
        """Safe state, then release every pin (and the factory built here); idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        self.safe_state()
        for output in self._outputs():
            try:
                output.close()
            except Exception:
                log.exception("closing %r failed", output)
        if self._owns_factory:
            try:
                self.factory.close()
            except Exception:
                log.exception("closing the %s pin factory failed", self._backend.name)

    @property
    def closed(self) -> bool:
        return self._closed

    def _at_exit(self) -> None:
        """The interpreter is exiting without close(): leave every output off."""
        if not self._closed:
            log.warning("interpreter exit without Hal.close(): switching every output off")
            self.close()

    # -- status --------------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """A new JSON-safe dict: backend, chip, board model, and every output's status."""
        return {
            "backend": self._backend.name,
            "chip": self._backend.chip,
            "simulated": self._backend.simulated,
            "board": self._backend.platform.model,
            "reason": self._backend.reason,
            "closed": self._closed,
            "safe_state_failures": self._safe_failures,
            "relays": {name: r.get_status() for name, r in self._relays.items()},
            "leds": {name: led.get_status() for name, led in self._leds.items()},
        }

    def __enter__(self) -> Hal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<Hal {self._backend.name} {len(self._relays)} relays "
                f"{len(self._leds)} LEDs {state}>")


def _known(outputs: dict[str, Any]) -> str:
    return "known: " + ", ".join(sorted(outputs)) if outputs else "none configured"
