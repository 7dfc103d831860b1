"""led_action: a status LED: heartbeat while healthy, fast blink on alarm, a short flash every
2 s once the alarm is acknowledged, solid on fault, off while an operator disabled the
action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ActionParams
from firmware.actions.triggers import DataTimeoutTrigger, TriggerEvent
from firmware.dsp.registry import register
from firmware.errors import ActionError

if TYPE_CHECKING:
    from firmware.actions.config_view import ConfigView

#: an acknowledged alarm: a short flash every 2 s, unlike any (symmetric) alarm blink
ACKNOWLEDGED_FLASH_ON_S = 0.1
ACKNOWLEDGED_FLASH_OFF_S = 1.9

Pattern = Literal["heartbeat", "alarm", "acknowledged", "fault", "off"]


class LedActionParams(ActionParams):
    """``led``: a name from ``hal.leds``. Alarm = any value trigger of this action active;
    fault = a data_timeout trigger active or the appliance reporting a fault."""

    led: str = Field(min_length=1)
    alarm_blink_s: float = Field(0.1, gt=0, le=5, description="on and off time of the blink")

    def cross_check(self, config: ConfigView) -> list[tuple[str, str]]:
        """The LED must be declared in ``hal.leds``."""
        if self.led in config.hal.leds:
            return []
        known = ", ".join(sorted(config.hal.leds)) or "none declared"
        return [("led", f"LED {self.led!r} is not in hal.leds ({known})")]


class LedAction(ActionHandler):
    """Chooses the LED pattern from the trigger states on every event and tick."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        super().__init__(node, ctx)
        if ctx.hal is None:
            raise ActionError(f"node {node.node_id!r} (led_action): no HAL configured")
        self.led = ctx.hal.led(self.params.led)
        self._timeouts = {t.name for t in self.params.all_triggers()
                          if isinstance(t, DataTimeoutTrigger)}
        self.pattern: Pattern | None = None

    def wanted_pattern(self) -> Pattern:
        """disabled: off; then fault beats alarm beats acknowledged beats heartbeat."""
        if not self.enabled:
            return "off"
        active = set(self.engine.active)
        if self.ctx.fault() is not None or active & self._timeouts:
            return "fault"
        if active - self._timeouts - self.acknowledged:
            return "alarm"
        if active - self._timeouts:
            return "acknowledged"
        return "heartbeat"

    def _apply(self) -> None:
        wanted = self.wanted_pattern()
        if wanted == self.pattern:
            return
        if wanted == "fault":
            self.led.on()
        elif wanted == "alarm":
            self.led.blink(self.params.alarm_blink_s, self.params.alarm_blink_s)
        elif wanted == "acknowledged":
            self.led.blink(ACKNOWLEDGED_FLASH_ON_S, ACKNOWLEDGED_FLASH_OFF_S)
        elif wanted == "off":
            self.led.off()
        else:
            self.led.heartbeat()
        self.pattern = wanted

    async def start(self) -> None:
        self._apply()

    async def on_event(self, event: TriggerEvent) -> bool:
        self._apply()
        return True

    async def on_tick(self, now: float) -> None:
        self._apply()

    async def apply_operator_state(self) -> None:
        self._apply()

    async def stop(self) -> None:
        self.led.safe_off()

    def outputs(self) -> dict[str, str]:
        return {f"led:{self.params.led}": str(self.pattern or "off")}

    def get_status(self) -> dict[str, Any]:
        return {**super().get_status(), "pattern": self.pattern, "led": self.led.get_status()}


@register
class LedActionNode(ActionNode):
    """Graph node of a led_action."""

    type_name = "led_action"
    Params = LedActionParams
    Handler = LedAction
