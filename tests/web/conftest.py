"""A running appliance (simulator paced in real time) with its web server on a free port,
and a small HTTP client for it."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from firmware.app.appliance import Appliance
from firmware.config.loader import ConfigDocument
from firmware.web.server import WebServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.web.browser import Dashboard

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Answer:
    """One HTTP answer: status, lower-case headers, body parsed as JSON when it is JSON."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class WebRig:
    """The appliance, its web server, and requests against it."""

    appliance: Appliance
    server: WebServer

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def request(self, method: str, path: str, *, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None, raw_body: bytes | None = None,
                timeout: float = 30.0) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
            data = raw_body
            if body is not None:
                data = json.dumps(body).encode()
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            kind = response.getheader("Content-Type") or ""
            parsed: Any = json.loads(raw) if raw and kind.startswith("application/json") \
                else raw
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          parsed)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("POST", path, body=body if body is not None else {}, **kwargs)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0,
                 what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


def fast_web(data: dict[str, Any], **web: Any) -> None:
    """Web settings for tests: any free port, a token, quick stream and status events."""
    data["web"] = {"port": 0, "token": TOKEN, "stream_interval_s": 0.1,
                   "status_interval_s": 0.2, **web}


@pytest.fixture
def make_rig(make_doc: Callable[..., ConfigDocument]) -> Iterator[Callable[..., WebRig]]:
    """Start an appliance + web server from the default config changed by ``change``."""
    started: list[WebRig] = []

    def build(change: Callable[[dict[str, Any]], None] | None = None, *,
              realtime: bool = True, **web: Any) -> WebRig:
        def edit(data: dict[str, Any]) -> None:
            fast_web(data, **web)
            if change is not None:
                change(data)

        doc = make_doc(edit)
        appliance = Appliance(doc, realtime=realtime)
        server = WebServer(appliance, doc.config.web, appliance.operations)
        rig = WebRig(appliance, server)
        started.append(rig)
        appliance.start()
        server.start()
        assert server.port is not None, server.bind_error
        return rig

    yield build
    for rig in reversed(started):
        rig.server.stop()
        rig.appliance.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per browser-test module (each test gets its own context).
    Playwright is imported here, not at the top: only the browser tests need it, and they
    skip themselves when Debian's chromium is missing."""
    from playwright.sync_api import sync_playwright

    from tests.web.browser import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def boards(browser: Browser, make_rig: Any) -> Iterator[list[Dashboard]]:
    """Dashboards opened by a test, closed after it (before its rigs stop: ``make_rig`` is
    set up first, so torn down last)."""
    opened: list[Dashboard] = []
    yield opened
    for board in opened:
        board.context.close()
