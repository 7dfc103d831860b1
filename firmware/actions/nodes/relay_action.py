"""relay_action: energise a named relay while an alarm is active (or pulse it per trigger)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ActionParams
from firmware.actions.triggers import TriggerEvent
from firmware.dsp.registry import register
from firmware.errors import ActionError

if TYPE_CHECKING:
    from firmware.actions.config_view import ConfigView

log = logging.getLogger("pafw.actions")


class RelayActionParams(ActionParams):
    """``relay``: a name from ``hal.relays``. ``hold``: on while any trigger is active, off
    when all have cleared; ``pulse``: a ``pulse_s`` pulse on each trigger (and repeat)."""

    relay: str = Field(min_length=1)
    mode: Literal["hold", "pulse"] = "hold"
    pulse_s: float = Field(1.0, gt=0)

    def cross_check(self, config: ConfigView) -> list[tuple[str, str]]:
        """The relay must be declared in ``hal.relays``."""
        if self.relay in config.hal.relays:
            return []
        known = ", ".join(sorted(config.hal.relays)) or "none declared"
        return [("relay", f"relay {self.relay!r} is not in hal.relays ({known})")]

    @model_validator(mode="after")
    def _has_triggers(self) -> RelayActionParams:
        if not self.all_triggers():
            raise ValueError("a relay_action needs at least one trigger (triggers or "
                             "concentration_threshold/amplitude_threshold)")
        return self


class RelayAction(ActionHandler):
    """Drives one relay through the HAL; its limits (pulse maximum, minimum on/off times)
    are enforced there. The relay's state is published to MQTT when a broker is configured."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        super().__init__(node, ctx)
        if ctx.hal is None:
            raise ActionError(f"node {node.node_id!r} (relay_action): no HAL configured")
        self.relay = ctx.hal.relay(self.params.relay)
        #: hold mode: the relay was asked to stay on by this action
        self.held = False
        self._hold_lock = asyncio.Lock()

    async def start(self) -> None:
        self._publish()

    async def on_event(self, event: TriggerEvent) -> bool:
        if self.params.mode == "pulse":
            if event.kind in ("trigger", "repeat"):
                await asyncio.to_thread(self.relay.pulse, self.params.pulse_s)
        else:
            await self._hold()
        self._publish()
        return True

    async def _hold(self) -> None:
        """Hold mode: on while an unacknowledged trigger is active and the action enabled.
        Only a change is requested (a repeated request would restart the HAL's timers);
        one change at a time, and ``held`` records a request the HAL accepted."""
        async with self._hold_lock:
            wanted = self.enabled and bool(self.unacknowledged_active)
            if wanted != self.held:
                await asyncio.to_thread(self.relay.on if wanted else self.relay.off)
                self.held = wanted

    async def on_tick(self, now: float) -> None:
        """Hold mode: a relay that should be held but is neither on nor about to switch on
        (something else switched it off) is switched on again."""
        if self.params.mode != "hold" or not self.held or self._hold_lock.locked():
            return
        status = self.relay.get_status()
        if status["state"] == "off" and status["pending"] != "on":
            log.warning("relay %s should be held on by %s: switching it on again",
                        self.params.relay, self.node_id)
            await asyncio.to_thread(self.relay.on)
            self._publish()

    async def apply_operator_state(self) -> None:
        if self.params.mode == "hold":
            await self._hold()
        elif not self.enabled:
            await asyncio.to_thread(self.relay.off)
        self._publish()

    async def stop(self) -> None:
        self.relay.safe_off()
        self._publish()

    def _publish(self) -> None:
        if self.ctx.mqtt is not None:
            self.ctx.mqtt.publish_state(f"relay_{self.params.relay}",
                                        "ON" if self.relay.is_on else "OFF")

    def outputs(self) -> dict[str, str]:
        return {f"relay:{self.params.relay}": str(self.relay.get_status()["state"])}

    def get_status(self) -> dict[str, Any]:
        return {**super().get_status(), "relay": self.relay.get_status()}


@register
class RelayActionNode(ActionNode):
    """Graph node of a relay_action."""

    type_name = "relay_action"
    Params = RelayActionParams
    Handler = RelayAction
