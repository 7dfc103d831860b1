"""mqtt_action: publish measurements at an interval and every trigger/clear event."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ActionParams
from firmware.actions.triggers import DataTimeoutTrigger, TriggerEvent
from firmware.dsp.registry import register
from firmware.errors import ActionError
from firmware.state import ComputingResult

if TYPE_CHECKING:
    from firmware.actions.config_view import ConfigView


class MqttActionParams(ActionParams):
    """``interval_s``: seconds between measurement messages (null: ``mqtt.measurement_interval_s``;
    0: every new result, for the lowest latency). Alarm states are published retained as
    ``state/alarm_<action>_<trigger>`` = ON/OFF for Home Assistant."""

    interval_s: float | None = Field(None, ge=0)
    publish_events: bool = True

    def cross_check(self, config: ConfigView) -> list[tuple[str, str]]:
        """An mqtt_action needs the mqtt section enabled."""
        if config.mqtt.enabled:
            return []
        return [("interval_s", "this mqtt_action needs MQTT, but mqtt.enabled is false")]


def alarm_state_name(action_id: str, trigger_name: str) -> str:
    """The retained state topic suffix of one alarm."""
    return f"alarm_{action_id}_{trigger_name}"


class MqttAction(ActionHandler):
    """Uses the appliance's single MQTT link; messages are durable in its outbox."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        super().__init__(node, ctx)
        if ctx.mqtt is None:
            raise ActionError(f"node {node.node_id!r} (mqtt_action): the mqtt section is "
                              f"disabled; enable it or remove this node")
        self.link = ctx.mqtt
        interval = self.params.interval_s
        self.interval_s = link_interval(ctx) if interval is None else interval
        self._next_due = 0.0
        self._last_sent: dict[str, int] = {}
        self.measurements = 0
        self.alarm_names = [t.name for t in self.params.all_triggers()
                            if not isinstance(t, DataTimeoutTrigger) and t.name]

    async def start(self) -> None:
        for name in self.alarm_names:
            self.link.publish_state(alarm_state_name(self.node_id, name), "OFF")

    def _publish_measurement(self, results: dict[str, ComputingResult]) -> None:
        fresh = {k: r for k, r in results.items() if self._last_sent.get(k) != r.sequence}
        if not fresh:
            return
        for node_id, result in fresh.items():
            self._last_sent[node_id] = result.sequence
        self.link.publish_measurement(
            {"results": {k: r.to_dict() for k, r in results.items()}}
        )
        self.measurements += 1

    async def on_update(self, latest: dict[str, ComputingResult]) -> None:
        if self.interval_s == 0:
            self._publish_measurement(latest)

    async def on_tick(self, now: float) -> None:
        if not self.enabled:
            return
        if self.interval_s > 0 and now >= self._next_due and self.latest:
            self._next_due = now + self.interval_s
            self._publish_measurement(dict(self.latest))

    async def on_event(self, event: TriggerEvent) -> bool:
        if self.params.publish_events:
            self.link.publish_event({"action_id": self.node_id, **event.to_dict()})
        if event.kind in ("trigger", "clear") and event.trigger_name in self.alarm_names:
            self.link.publish_state(alarm_state_name(self.node_id, event.trigger_name),
                                    "ON" if event.kind == "trigger" else "OFF")
        return True

    async def acknowledge(self) -> list[str]:
        """Acknowledge, and announce it on the events topic (alarm states stay ON: the
        condition persists)."""
        names = await super().acknowledge()
        if names and self.params.publish_events:
            self.link.publish_event({"action_id": self.node_id, "kind": "acknowledged",
                                     "triggers": names, "timestamp": time.time()})
        return names

    def get_status(self) -> dict[str, Any]:
        return {**super().get_status(), "interval_s": self.interval_s,
                "measurements": self.measurements}


def link_interval(ctx: ActionContext) -> float:
    """The appliance-wide default measurement interval."""
    assert ctx.mqtt is not None
    return float(ctx.mqtt.settings.measurement_interval_s)


@register
class MqttActionNode(ActionNode):
    """Graph node of an mqtt_action."""

    type_name = "mqtt_action"
    Params = MqttActionParams
    Handler = MqttAction
