"""What the API's route handlers may use of the web server: a protocol, so ``api.py`` (the
route table the server dispatches on) does not import the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from firmware.app.appliance import Appliance
    from firmware.app.operations import Operations
    from firmware.app.trend import TrendRecorder
    from firmware.config.web import WebSettings
    from firmware.web.http import Response


class ApiContext(Protocol):
    """The running server as its routes see it (``WebServer`` is one)."""

    appliance: Appliance
    operations: Operations
    settings: WebSettings
    trends: TrendRecorder
    #: (node, seconds, points) -> (monotonic time, response) of recent trend answers
    trend_cache: dict[tuple[str, int, int], tuple[float, Response]]
    #: the OpenAPI document, serialized once
    openapi_bytes: bytes

    def status_payload(self) -> dict[str, Any]:
        """``ApplianceStatus``: what GET /api/v1/status answers."""
        ...
