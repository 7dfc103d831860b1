"""Every action node type; importing this package registers them all with
``firmware.dsp.registry``. The built-in hardware and webhook actions live here, one module
each; the MQTT and Python actions live with the rest of their packages."""

from firmware.actions.mqtt import action_node as mqtt_action
from firmware.actions.nodes import http_action, led_action, relay_action
from firmware.actions.python import action_node as python_action

__all__ = ["http_action", "led_action", "mqtt_action", "python_action", "relay_action"]
