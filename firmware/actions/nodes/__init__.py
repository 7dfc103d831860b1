"""Every action node type; importing this package registers them all with
``firmware.dsp.registry``. The built-in ones live here, one module each (relay, LED, HTTP,
MQTT: users of hal/, webhook.py and mqtt/); the Python action lives with the rest of its
package (python/)."""

from firmware.actions.nodes import http_action, led_action, mqtt_action, relay_action
from firmware.actions.python import action_node as python_action

__all__ = ["http_action", "led_action", "mqtt_action", "python_action", "relay_action"]
