"""MQTT republisher: the concentration and the alarm state on your own topics.

For a site whose dashboards expect their own topic tree (``site/lab1/...``) rather than the
appliance's (``pafw/<device>/measurements``):

* on every update, the latest concentration of ``source_node`` goes to ``value_topic``, at
  most once every ``min_interval_s`` seconds (of data time), as JSON
  ``{"ppm": 1234.5, "time": "2025-06-23T10:15:02.123+00:00", "timestamp": 1750673702.123,
  "node": "concentration", "detected": true}``;
* when a trigger fires or clears, ``alarm_topic`` gets a *retained*
  ``{"state": "ON" | "OFF", "trigger": "high_co2", "value": 2101.3, "threshold": 2000.0,
  "node": "concentration", "time": "..."}``, so a dashboard that connects later still
  sees the current alarm state.

Messages go out through the appliance's own MQTT connection (its broker, credentials, TLS
and on-disk outbox: nothing is lost while the broker is away); the script holds no socket.
It may only publish on topics matching ``capabilities.mqtt_publish``: anything else raises
``PermissionError``, which the script logs and counts (``denied``; the node status counts
it in ``denied_calls``). Topics are used as written (not under the device's prefix).

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node; needs ``mqtt.enabled: true``):

```yaml
- id: site_republisher
  type: python_action
  parameters:
    python_script_path: /user_scripts/mqtt_republisher.py
    python_class_name: MqttRepublisher
    monitored_nodes: [concentration]
    triggers:
      - { type: threshold, name: high_co2, kind: concentration, above: 2000.0,
          hysteresis: 100.0 }
    python_config:
      source_node: concentration
      value_topic: site/lab1/co2
      alarm_topic: site/lab1/alarm
      min_interval_s: 10.0
      retain_values: false
    capabilities:
      mqtt_publish: ["site/lab1/#"]
```
"""

from typing import Any

from firmware.actions.sdk import CustomPythonAction, PhotoacousticAPI


class MqttRepublisher(CustomPythonAction):
    """Rate-limited concentration and retained alarm state on site topics."""

    def __init__(self, api: PhotoacousticAPI) -> None:
        super().__init__(api)
        monitored = api.get_monitored_node_ids()
        self.node = api.get_node_parameter("source_node") or (monitored[0] if monitored
                                                              else "concentration")
        self.value_topic = str(api.get_node_parameter("value_topic", "site/lab1/co2"))
        self.alarm_topic = str(api.get_node_parameter("alarm_topic", "site/lab1/alarm"))
        self.min_interval_s = float(api.get_node_parameter("min_interval_s", 10.0))
        self.retain_values = bool(api.get_node_parameter("retain_values", False))
        self.last_sent_at: float | None = None  # data timestamp of the last value sent
        self.counts = {"values": 0, "alarms": 0, "denied": 0, "errors": 0}
        self.last_denied: str | None = None
        self.last_value: float | None = None

    def on_update(self, computing_data: dict[str, Any]) -> None:
        result = computing_data.get(self.node)
        if not result or result.get("concentration_ppm") is None:
            return
        at = float(result["timestamp"])
        if self.last_sent_at is not None and at - self.last_sent_at < self.min_interval_s:
            return
        self.last_sent_at = at  # also after a refusal: one attempt per interval, no storm
        ppm = round(float(result["concentration_ppm"]), 1)
        payload = {"ppm": ppm, "time": result["time"], "timestamp": at, "node": self.node,
                   "detected": bool(result.get("detected"))}
        if self._publish(self.value_topic, payload, retain=self.retain_values):
            self.counts["values"] += 1
            self.last_value = ppm

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        return self._alarm("ON", data)

    def on_clear(self, trigger_type: str, data: dict[str, Any]) -> bool:
        return self._alarm("OFF", data)

    def get_status(self) -> dict[str, Any]:
        return {"status": "active", "value_topic": self.value_topic,
                "alarm_topic": self.alarm_topic, **self.counts,
                "last_value_ppm": self.last_value, "last_denied": self.last_denied}

    # ------------------------------------------------------------------------------
    def _alarm(self, state: str, data: dict[str, Any]) -> bool:
        payload = {"state": state, "trigger": data.get("trigger_name"),
                   "value": data.get("value"), "threshold": data.get("threshold"),
                   "node": data.get("source_node_id"), "time": data.get("time"),
                   "repeat": bool(data.get("repeat", False))}
        ok = self._publish(self.alarm_topic, payload, retain=True)
        if ok:
            self.counts["alarms"] += 1
        return ok

    def _publish(self, topic: str, payload: dict[str, Any], *, retain: bool) -> bool:
        try:
            self.api.publish_mqtt(topic, payload, retain=retain)
        except PermissionError as exc:  # topic outside capabilities.mqtt_publish
            self.counts["denied"] += 1
            self.last_denied = str(exc)
            self.api.log_message("error", f"not granted: {exc}")
            return False
        except ValueError as exc:  # MQTT disabled, payload not JSON
            self.counts["errors"] += 1
            self.api.log_message("error", f"publish to {topic} failed: {exc}")
            return False
        return True
