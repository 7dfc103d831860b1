"""The SDK as customer scripts see it: :class:`CustomPythonAction` and :class:`PhotoacousticAPI`.

A script defines one class (named by ``python_class_name`` in the node's YAML) that usually
subclasses :class:`CustomPythonAction`. The worker injects ``CustomPythonAction``,
``PhotoacousticAPI`` and its alias ``RustPhotoacousticAPI`` (the design study's name) into
the script's globals, so scripts written for the study run without importing them; editors
and type checkers find them with ``from firmware.actions.python.sdk import ...``.

Every API method runs synchronously from the script's point of view. Configuration reads
(``get_node_config``, ``get_node_parameter``, ``get_monitored_node_ids``) and
``log_message`` are answered inside the worker; everything else is a request to the
appliance, which checks the action's capabilities and may raise PermissionError (capability
not granted), ValueError (unknown relay, bad argument) and so on: the exception raised in
the script is that builtin type. All values crossing to the appliance must be JSON-like
(dict with str keys, list, str, int, float, bool, None); datetime, date and time values are
sent as ISO 8601 strings (datetimes in UTC, naive ones taken as local time).

Example (``user_scripts/threshold_led.py``)::

    class ThresholdLed(CustomPythonAction):
        def __init__(self, api):
            super().__init__(api)
            self.led = api.get_node_parameter("led", "alarm")

        def on_trigger(self, trigger_type, data):
            self.api.led_blink(self.led, on_s=0.2, off_s=0.2)
            return True

        def on_clear(self, trigger_type, data):
            self.api.led_off(self.led)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

#: sends one API request and returns the host's answer (or raises its error)
Transport = Callable[[str, tuple[Any, ...], dict[str, Any]], Any]
#: sends one log line: (level, message)
LogSink = Callable[[str, str], None]

LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical")


class Store:
    """Small persistent key-value store of this action, kept by the appliance (JSON values).

    Survives worker restarts and hot reloads; use it for state such as "last alert sent".
    """

    def __init__(self, transport: Transport) -> None:
        self._request = transport

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        return self._request("store_get", (_key(key), default), {})

    def set(self, key: str, value: Any) -> None:
        """Store a JSON-like ``value`` under ``key``."""
        self._request("store_set", (_key(key), value), {})

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return bool(self._request("store_delete", (_key(key),), {}))

    def keys(self) -> list[str]:
        """All keys, sorted."""
        return list(self._request("store_keys", (), {}))


class PhotoacousticAPI:
    """What a script may do: read results, its configuration and history, log, and use the
    capabilities granted to its node (MQTT, relays, LEDs, store).

    One instance is passed to the script class's ``__init__``; scripts never build it.
    """

    def __init__(self, transport: Transport, log: LogSink, *, node_id: str,
                 python_config: dict[str, Any], parameters: dict[str, Any],
                 monitored_nodes: list[str]) -> None:
        self._request = transport
        self._log = log
        self._node_id = node_id
        self._python_config = python_config
        self._parameters = parameters
        self._monitored = list(monitored_nodes)
        self.store = Store(transport)

    @property
    def node_id(self) -> str:
        """Id of this action's node in the processing graph."""
        return self._node_id

    # ------------------------------------------------------------ measurement data
    def get_concentration_data(self, node_id: str) -> float | None:
        """Latest concentration (ppm) of a computing node, or None if unknown."""
        return _optional_float(self._request("get_concentration_data", (_node(node_id),), {}))

    def get_peak_frequency(self, node_id: str) -> float | None:
        """Latest detected peak frequency (Hz) of a computing node, or None."""
        return _optional_float(self._request("get_peak_frequency", (_node(node_id),), {}))

    def get_peak_amplitude(self, node_id: str) -> float | None:
        """Latest peak amplitude (input units) of a computing node, or None."""
        return _optional_float(self._request("get_peak_amplitude", (_node(node_id),), {}))

    def get_node_statistics(self, node_id: str) -> dict[str, Any]:
        """Performance statistics and latest result of a node, as a dict."""
        return dict(self._request("get_node_statistics", (_node(node_id),), {}))

    def get_history_count(self) -> int:
        """Number of entries in this action's history buffer."""
        return int(self._request("get_history_count", (), {}))

    def get_recent_entries(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` most recent history entries, oldest first (read-only copies)."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        return list(self._request("get_recent_entries", (count,), {}))

    # ----------------------------------------------------------------- configuration
    def get_node_config(self) -> dict[str, Any]:
        """This node's configuration: its parameters overlaid with ``python_config`` (the
        same lookup as :meth:`get_node_parameter`); a copy, changing it changes nothing."""
        return copy.deepcopy({**self._parameters, **self._python_config})

    def get_node_parameter(self, name: str, default: Any = None) -> Any:
        """``python_config[name]`` if present, else the node parameter ``name``, else
        ``default`` (a copy: mutating it changes nothing)."""
        for source in (self._python_config, self._parameters):
            if name in source:
                return copy.deepcopy(source[name])
        return default

    def get_monitored_node_ids(self) -> list[str]:
        """Ids of the computing nodes this action watches (``monitored_nodes``)."""
        return list(self._monitored)

    # ------------------------------------------------------------------ log, notify
    def log_message(self, level: str, message: str) -> None:
        """Write ``message`` to the appliance log at ``level`` (debug, info, warning, error,
        critical; anything else is logged as debug)."""
        level = str(level).lower()
        self._log(level if level in LOG_LEVELS else "debug", str(message))

    def trigger_notification(self, message: str, severity: str) -> bool:
        """Raise a system notification (severity: info, warning, critical); True if sent."""
        return bool(self._request("trigger_notification", (str(message), str(severity)), {}))

    # ------------------------------------------------------------------ capabilities
    def publish_mqtt(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        """Publish ``payload`` (str, or JSON-like data sent as JSON) on ``topic``, exactly as
        written (QoS 1, through the appliance's durable outbox unless ``retain``). The topic
        must match a filter of the node's ``capabilities.mqtt_publish``."""
        self._request("publish_mqtt", (str(topic), payload), {"retain": bool(retain)})

    def relay_on(self, name: str) -> None:
        """Switch the named relay on. Needs the relay in the node's capabilities."""
        self._request("relay_on", (str(name),), {})

    def relay_off(self, name: str) -> None:
        """Switch the named relay off."""
        self._request("relay_off", (str(name),), {})

    def relay_pulse(self, name: str, seconds: float) -> None:
        """Switch the named relay on for ``seconds``, then off (the appliance times it)."""
        self._request("relay_pulse", (str(name), float(seconds)), {})

    def led_on(self, name: str) -> None:
        """Switch the named LED on."""
        self._request("led_on", (str(name),), {})

    def led_off(self, name: str) -> None:
        """Switch the named LED off."""
        self._request("led_off", (str(name),), {})

    def led_blink(self, name: str, on_s: float = 0.5, off_s: float = 0.5) -> None:
        """Blink the named LED (the appliance keeps blinking until led_on/led_off)."""
        self._request("led_blink", (str(name), float(on_s), float(off_s)), {})


#: the design study's name for the API
RustPhotoacousticAPI = PhotoacousticAPI


class CustomPythonAction:
    """Base class of customer actions. Override :meth:`on_trigger`; the rest is optional.

    Methods run one at a time, each within the node's ``python_timeout_ms`` (past it the
    worker is killed and restarted, losing in-memory state: keep what matters in
    ``api.store``).
    """

    def __init__(self, api: PhotoacousticAPI) -> None:
        self.api = api

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        """A trigger fired (``data``: value, threshold, source_node_id, ...); return True if
        the action succeeded."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_trigger")

    def on_update(self, computing_data: dict[str, Any]) -> None:
        """Called with the latest result of each monitored node after new data."""

    def on_clear(self, trigger_type: str, data: dict[str, Any]) -> bool | None:
        """The trigger's condition ended (optional)."""
        return None

    def get_status(self) -> dict[str, Any]:
        """JSON-like status shown in the appliance's status."""
        return {"status": "active"}

    def on_stop(self) -> None:
        """The action stops (shutdown or hot reload): release what you hold."""


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"store keys must be str, got {type(key).__name__}")
    return key


def _node(node_id: str) -> str:
    if not isinstance(node_id, str):
        raise TypeError(f"node_id must be a str, got {type(node_id).__name__}")
    return node_id


def _optional_float(value: Any) -> float | None:
    """A result value from the appliance: a number, or None while it is unknown."""
    return None if value is None else float(value)
