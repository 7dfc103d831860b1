"""http_action: POST each trigger/clear event as JSON to a webhook."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ActionParams
from firmware.actions.triggers import TriggerEvent
from firmware.actions.webhook import WebhookClient, WebhookSettings
from firmware.dsp.registry import register

EventKind = Literal["trigger", "clear", "repeat"]


def _default_events() -> list[EventKind]:
    return ["trigger", "clear"]


class HttpActionParams(ActionParams):
    """``webhook``: where and how to post; ``events``: which event kinds are sent."""

    webhook: WebhookSettings
    events: list[EventKind] = Field(default_factory=_default_events, min_length=1)


class HttpAction(ActionHandler):
    """Failures (after the client's retries) are recorded in status and history, never raised
    into the DSP loop or the other actions."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        super().__init__(node, ctx)
        self.client = WebhookClient(self.params.webhook)

    async def on_event(self, event: TriggerEvent) -> bool:
        if event.kind not in self.params.events:
            return True
        payload = {"device_id": self.ctx.device_id, "action_id": self.node_id,
                   **event.to_dict()}
        outcome = await self.client.post(payload)
        if not outcome.success:
            self.last_error = outcome.error
        return outcome.success

    def get_status(self) -> dict[str, Any]:
        return {**super().get_status(), "webhook": self.client.get_status()}


@register
class HttpActionNode(ActionNode):
    """Graph node of an http_action."""

    type_name = "http_action"
    Params = HttpActionParams
    Handler = HttpAction
