"""Host side of the script API: answers a worker's requests from ComputingState, the action's
history and store, and performs granted side effects through the HAL and the MQTT link.

Every method a script may call is listed in ``ScriptApiHost.METHODS``; anything else is a
ValueError in the script. Hardware calls run in a thread so a relay's lock never blocks the
control loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from firmware.actions.base import ActionContext
from firmware.actions.history import HistoryBuffer
from firmware.actions.log_limit import LogLimiter, printable
from firmware.actions.python.grants import Grants
from firmware.actions.python.store import ScriptStore

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
SEVERITIES = ("info", "warning", "error", "critical")
MAX_RECENT_ENTRIES = 1000
SCRIPT_LINES_PER_S = 20


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ScriptApiHost:
    """One action's API endpoint on the host."""

    METHODS = frozenset({
        "get_concentration_data", "get_peak_frequency", "get_peak_amplitude",
        "get_node_statistics", "log_message", "trigger_notification", "get_history_count",
        "get_recent_entries", "store_get", "store_set", "store_delete", "store_keys",
        "publish_mqtt", "relay_on", "relay_off", "relay_pulse", "led_on", "led_off",
        "led_blink",
    })

    def __init__(self, action_id: str, ctx: ActionContext, *, grants: Grants,
                 history: HistoryBuffer, store: ScriptStore) -> None:
        self.action_id = action_id
        self.ctx = ctx
        self.grants = grants
        self.history = history
        self.store = store
        self.script_log = logging.getLogger(f"pafw.script.{action_id}")
        #: the script's own log lines: escaped, at most SCRIPT_LINES_PER_S a second
        self.log_limit = LogLimiter(self.script_log, f"python action {action_id}",
                                    SCRIPT_LINES_PER_S)
        self.requests = 0
        self.notifications = 0

    async def handle(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Answer one request; raises PermissionError/ValueError/KeyError for the script."""
        if method not in self.METHODS:
            raise ValueError(f"the API has no method {method!r}")
        self.requests += 1
        try:
            return await getattr(self, f"_{method}")(*args, **kwargs)
        except TypeError as exc:  # wrong arguments from the script
            raise ValueError(f"{method}: {exc}") from None

    # ---------------------------------------------------------------- data (read-only)
    def _result(self, node_id: str) -> Any:
        if not isinstance(node_id, str):
            raise ValueError(f"node_id must be a string, got {type(node_id).__name__}")
        return self.ctx.state.get(node_id)

    async def _get_concentration_data(self, node_id: str) -> float | None:
        r = self._result(node_id)
        return None if r is None else _finite(r.concentration_ppm)

    async def _get_peak_frequency(self, node_id: str) -> float | None:
        r = self._result(node_id)
        return None if r is None else _finite(r.frequency_hz)

    async def _get_peak_amplitude(self, node_id: str) -> float | None:
        r = self._result(node_id)
        return None if r is None else _finite(r.amplitude)

    async def _get_node_statistics(self, node_id: str) -> dict[str, Any]:
        stats = self.ctx.node_statistics(node_id)
        r = self._result(node_id)
        if r is not None:
            stats = {**stats, "last_result": r.to_dict(), "age_s": round(r.age_s(), 3)}
        return stats

    async def _get_history_count(self) -> int:
        return len(self.history)

    async def _get_recent_entries(self, count: int) -> list[dict[str, Any]]:
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        return self.history.get_recent_entries(min(count, MAX_RECENT_ENTRIES))

    # ------------------------------------------------------------------ logging
    async def _log_message(self, level: str, message: str) -> None:
        self.log_limit.log(LEVELS.get(str(level).lower(), logging.INFO), "api", str(message))

    async def _trigger_notification(self, message: str, severity: str) -> bool:
        severity = str(severity).lower()
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got "
                             f"{severity!r}")
        self.notifications += 1
        self.log_limit.log(LEVELS[severity], "notification", str(message))
        self.history.record("notification", {"severity": severity, "message": str(message)})
        if self.ctx.mqtt is not None:
            self.ctx.mqtt.publish_event({"action_id": self.action_id, "kind": "notification",
                                         "severity": severity, "message": str(message)})
        return True

    # ------------------------------------------------------------------- store
    async def _store_get(self, key: str, default: Any = None) -> Any:
        return self.store.get(key, default)

    async def _store_set(self, key: str, value: Any) -> None:
        await asyncio.to_thread(self.store.set, key, value)

    async def _store_delete(self, key: str) -> bool:
        return await asyncio.to_thread(self.store.delete, key)

    async def _store_keys(self) -> list[str]:
        return self.store.keys()

    # ---------------------------------------------------------- granted side effects
    async def _publish_mqtt(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        if not isinstance(topic, str):
            raise ValueError("topic must be a string")
        if not topic or "#" in topic or "+" in topic or "\0" in topic or len(topic) > 65535:
            raise ValueError(f"cannot publish to {printable(topic, 200)!r}: a topic is 1 to "
                             "65535 characters without the wildcards + and # (those are for "
                             "subscriptions)")
        self.grants.check_publish(topic)
        if self.ctx.mqtt is None:
            raise ValueError("MQTT is disabled on this appliance (mqtt.enabled: false)")
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            try:
                data = json.dumps(payload, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"payload is not JSON-serialisable: {exc}") from None
        self.ctx.mqtt.publish(topic, data, retain=bool(retain))

    def _hal(self) -> Any:
        if self.ctx.hal is None:
            raise ValueError("this appliance has no relays or LEDs configured (hal)")
        return self.ctx.hal

    async def _relay_on(self, name: str) -> None:
        self.grants.check_relay(name)
        await asyncio.to_thread(self._hal().relay(name).on)

    async def _relay_off(self, name: str) -> None:
        self.grants.check_relay(name)
        await asyncio.to_thread(self._hal().relay(name).off)

    async def _relay_pulse(self, name: str, seconds: float) -> None:
        self.grants.check_relay(name)
        await asyncio.to_thread(self._hal().relay(name).pulse, float(seconds))

    async def _led_on(self, name: str) -> None:
        self.grants.check_led(name)
        await asyncio.to_thread(self._hal().led(name).on)

    async def _led_off(self, name: str) -> None:
        self.grants.check_led(name)
        await asyncio.to_thread(self._hal().led(name).off)

    async def _led_blink(self, name: str, on_s: float = 0.5, off_s: float = 0.5) -> None:
        self.grants.check_led(name)
        await asyncio.to_thread(self._hal().led(name).blink, float(on_s), float(off_s))
