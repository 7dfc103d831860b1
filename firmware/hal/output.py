"""What every HAL output shares: a name, its settings, one gpiozero device, a lock, a safe off.

:class:`Output` owns the device's lifecycle so relays and LEDs cannot differ in it: the device
is opened in the constructor (a failure is an :class:`OutputSetupError` naming the pin),
``safe_off()`` drives it off whatever state it is in, ``close()`` goes off first and then
releases the pin (idempotent), and leaving a ``with`` block closes. ``get_status()`` (the
status protocol of ``firmware/status.py``) answers the same way for every output: a new
JSON-safe dict, built under the lock, whose common keys (:data:`COMMON_STATUS_KEYS`) come
first and whose other keys are the subclass's.

The lock is re-entrant so ``safe_off()`` can run from a signal handler that interrupted the
thread holding it; it waits at most :data:`SAFE_LOCK_TIMEOUT_S` for the lock and then forces
the pin off without it, because a safe state beats a consistent bookkeeping.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from gpiozero import Factory, OutputDevice

from firmware.errors import HalError
from firmware.hal.errors import OutputClosedError, OutputSetupError

log = logging.getLogger("pafw.hal")

#: how long safe_off() waits for the lock before driving the pin anyway
SAFE_LOCK_TIMEOUT_S = 1.0

#: the status keys every output answers (docs/status.md lists each output's others)
COMMON_STATUS_KEYS = ("pin", "active_high")


class PinSettings(Protocol):
    """What the base reads of an output's settings (``RelaySettings``, ``LedSettings``)."""

    @property
    def pin(self) -> int: ...

    @property
    def active_high(self) -> bool: ...


SettingsT = TypeVar("SettingsT", bound=PinSettings)


class Output(ABC, Generic[SettingsT]):
    """One named output on one GPIO pin, driven through a gpiozero output device.

    A subclass sets :attr:`kind` (the word its messages use), opens its device in
    :meth:`_open_device`, and says what "off" means for it in :meth:`_safe_off_locked`; its
    own status keys come from :meth:`_status` and its one-word state (for ``repr``) from
    :meth:`_state_name`. Commands of a subclass take :attr:`_lock` and call
    :meth:`_check_open` first.

    >>> from firmware.hal.backend import mock_factory
    >>> from firmware.hal.relay import Relay
    >>> from firmware.hal.settings import RelaySettings
    >>> with Relay("fan", RelaySettings(pin=22), factory=mock_factory()) as fan:
    ...     fan.on()
    ...     {key: fan.get_status()[key] for key in COMMON_STATUS_KEYS}
    {'pin': 22, 'active_high': True}
    >>> fan.closed, fan
    (True, <Relay 'fan' pin=22 closed>)
    """

    #: the word messages use for this kind of output ("relay", "LED")
    kind: ClassVar[str] = "output"

    def __init__(self, name: str, settings: SettingsT, *, factory: Factory) -> None:
        self.name = name
        self.settings = settings
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._device: OutputDevice = self._open_device(factory)
        except Exception as exc:  # gpiozero's many pin errors, converted at the boundary
            raise OutputSetupError(
                f"{self.kind} {name!r} cannot use {self._pin_label()} {settings.pin}: {exc}"
            ) from None

    # -- what a subclass provides --------------------------------------------------------

    @abstractmethod
    def _open_device(self, factory: Factory) -> OutputDevice:
        """Open the gpiozero device on ``self.settings.pin``, driven off."""

    @abstractmethod
    def _safe_off_locked(self) -> None:
        """Cancel whatever would switch the output later and drive it off (lock held, open)."""

    @abstractmethod
    def _status(self) -> dict[str, Any]:
        """The subclass's status keys, JSON-safe (lock held)."""

    @abstractmethod
    def _state_name(self) -> str:
        """One word for what the output does now (``closed`` once closed)."""

    def _pin_label(self) -> str:
        """How setup errors name the pin ("pin", or "a PWM pin" when PWM is needed)."""
        return "pin"

    def _force_off(self) -> None:
        """Drive the pin off without the lock (another thread holds it for too long)."""
        self._device.off()

    # -- lifecycle -----------------------------------------------------------------------

    def safe_off(self) -> None:
        """Drive the output off now, ignoring minimum times and cancelling timed changes.

        Never waits more than :data:`SAFE_LOCK_TIMEOUT_S` for the lock; harmless once closed.
        """
        if not self._lock.acquire(timeout=SAFE_LOCK_TIMEOUT_S):
            log.warning("%s %r: lock busy, forcing the pin off without it", self.kind, self.name)
            self._force_off()
            return
        try:
            if not self._closed:
                self._safe_off_locked()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Go off (see :meth:`safe_off`) and release the pin; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self.safe_off()
            finally:
                self._closed = True
                self._device.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran; every command then raises OutputClosedError."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- status --------------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """A new JSON-safe dict: the common keys (pin, active_high), then the subclass's."""
        with self._lock:
            return {
                "pin": self.settings.pin,
                "active_high": self.settings.active_high,
                **self._status(),
            }

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} pin={self.settings.pin} "
                f"{self._state_name()}>")

    # -- helpers for subclasses ----------------------------------------------------------

    def _check_open(self) -> None:
        """Refuse a command after close() (call it with the lock held)."""
        if self._closed:
            raise OutputClosedError(f"{self.kind} {self.name!r} is closed")

    def _drive_error(self, exc: Exception) -> HalError:
        """A driver error while writing the pin, as a HalError naming the output and pin."""
        return HalError(f"{self.kind} {self.name!r}: cannot drive pin {self.settings.pin}: {exc}")
