"""The status protocol: every part of the appliance that runs answers ``get_status()``.

Actions, HAL outputs, sources, graph nodes, the MQTT link, the control loop and the analyzer
each return a JSON-safe mapping of what they are doing (the idea of Klipper's
``get_status()``). The appliance composes them into one tree; the web API's views,
``pafw status`` (from the status snapshot) and the MQTT status topic all read that tree, so a
figure means the same thing wherever it is shown. docs/status.md lists the keys.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class StatusReporter(Protocol):
    """Something that reports its state as a JSON-safe mapping (read without blocking)."""

    def get_status(self) -> dict[str, Any]:
        """What this part is doing now: counters, state names, last error; JSON-safe."""
        ...
