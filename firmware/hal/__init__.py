"""Hardware access: named relays and LEDs on GPIO, through gpiozero (the only importer of it).

``Hal`` builds the pin factory (``backend.make_backend``: lgpio on a Pi 5, RPi.GPIO or lgpio
on older Pis, gpiozero's MockFactory elsewhere) and every output, and keeps them in a safe
state (off) at start and at every exit path. Relays and LEDs share one base, ``Output``: the
device's lifecycle, the safe off and ``get_status()``. The settings are imported eagerly;
everything that needs gpiozero is imported on first use, so validating a config does not
load it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from firmware.hal.settings import HalSettings, LedSettings, RelaySettings

if TYPE_CHECKING:
    from firmware.hal.backend import (
        Backend,
        Platform,
        detect_platform,
        make_backend,
        mock_factory,
    )
    from firmware.hal.errors import (
        BackendUnavailableError,
        OutputClosedError,
        OutputSetupError,
        OutputValueError,
        PulseTooLongError,
        PwmUnsupportedError,
        UnknownOutputError,
    )
    from firmware.hal.hal import Hal
    from firmware.hal.led import Led
    from firmware.hal.output import Output
    from firmware.hal.relay import Relay

_LAZY = {
    "Backend": "backend", "Platform": "backend", "detect_platform": "backend",
    "make_backend": "backend", "mock_factory": "backend",
    "BackendUnavailableError": "errors", "OutputClosedError": "errors",
    "OutputSetupError": "errors", "OutputValueError": "errors", "PulseTooLongError": "errors",
    "PwmUnsupportedError": "errors", "UnknownOutputError": "errors",
    "Hal": "hal", "Led": "led", "Output": "output", "Relay": "relay",
}

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "Hal",
    "HalSettings",
    "Led",
    "LedSettings",
    "Output",
    "OutputClosedError",
    "OutputSetupError",
    "OutputValueError",
    "Platform",
    "PulseTooLongError",
    "PwmUnsupportedError",
    "Relay",
    "RelaySettings",
    "UnknownOutputError",
    "detect_platform",
    "make_backend",
    "mock_factory",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"firmware.hal.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'firmware.hal' has no attribute {name!r}")
