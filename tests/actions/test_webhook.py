"""Webhook client against a real local HTTP server with a scripted sequence of answers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from firmware.actions import webhook
from firmware.actions.webhook import WebhookClient, WebhookSettings

SLOW = "slow"  # the server reads the request, then answers only after the client gave up
PAYLOAD = {"trigger_name": "co2_high", "value": 1234.5, "node": "co2", "tags": ["a", "b"]}


class ScriptedServer:
    """127.0.0.1 server answering POSTs with the next scripted status (200 when exhausted)."""

    def __init__(self, script: list[int | str]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": body})
                action = server.script.pop(0) if server.script else 200
                if action == SLOW:
                    server.release.wait(5.0)
                    action = 200
                try:
                    self.send_response(int(action))
                    if action == 302:
                        self.send_header("Location", "/elsewhere")
                    if action == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"ok": true}')
                except OSError:
                    pass  # the client timed out and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?key=secret"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(*script: int | str) -> ScriptedServer:
        servers.append(ScriptedServer(list(script)))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def fast(url: str, **kw: Any) -> WebhookSettings:
    return WebhookSettings(url=url, **{"timeout_s": 0.3, "backoff_s": 0.02, **kw})


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_fails_then_times_out_then_succeeds(serve: Any) -> None:
    server = serve(500, SLOW, 200)
    client = WebhookClient(fast(server.url, retries=3, bearer_token="s3cret"))
    outcome = asyncio.run(client.post(PAYLOAD))
    assert (outcome.success, outcome.attempts, outcome.status_code, outcome.error) == (
        True, 3, 200, None)
    assert outcome.duration_s >= 0.3 + 0.02 + 0.04
    assert len(server.requests) == 3
    for request in server.requests:
        assert json.loads(request["body"]) == PAYLOAD
        assert request["headers"]["Authorization"] == "Bearer s3cret"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["path"] == "/hook?key=secret"
    status = client.get_status()
    assert {k: status[k] for k in ("sent", "succeeded", "failed", "retries", "last_status")} \
        == {"sent": 1, "succeeded": 1, "failed": 0, "retries": 2, "last_status": 200}
    assert status["url"].endswith("/hook") and "secret" not in json.dumps(status)


def test_client_error_fails_without_retry(serve: Any) -> None:
    server = serve(404, 200)
    client = WebhookClient(fast(server.url, retries=3))
    outcome = asyncio.run(client.post(PAYLOAD))
    assert (outcome.success, outcome.attempts, outcome.status_code) == (False, 1, 404)
    assert outcome.error == "HTTP 404 Not Found"
    assert len(server.requests) == 1
    assert client.get_status()["failed"] == 1
    assert client.get_status()["last_error"] == "HTTP 404 Not Found"


def test_too_many_requests_is_retried_and_5xx_exhausts_retries(serve: Any) -> None:
    server = serve(429, 200)
    outcome = asyncio.run(WebhookClient(fast(server.url)).post(PAYLOAD))
    assert (outcome.success, outcome.attempts) == (True, 2)
    server = serve(503, 502, 500, 200)
    outcome = asyncio.run(WebhookClient(fast(server.url, retries=2)).post(PAYLOAD))
    assert (outcome.success, outcome.attempts, outcome.status_code) == (False, 3, 500)
    assert len(server.requests) == 3


def test_redirects_are_not_followed(serve: Any) -> None:
    server = serve(302)
    outcome = asyncio.run(WebhookClient(fast(server.url)).post(PAYLOAD))
    assert (outcome.success, outcome.attempts, outcome.status_code) == (False, 1, 302)
    assert "redirects are not followed" in (outcome.error or "")
    assert len(server.requests) == 1


def test_connection_refused_is_a_recorded_failure() -> None:
    client = WebhookClient(fast(closed_port_url(), retries=2))
    outcome = asyncio.run(client.post(PAYLOAD))
    assert (outcome.success, outcome.attempts, outcome.status_code) == (False, 3, None)
    assert "refused" in (outcome.error or "").lower()
    status = client.get_status()
    assert (status["sent"], status["failed"], status["retries"]) == (1, 1, 2)
    assert status["last_error"] == outcome.error
    json.dumps(outcome.to_dict())


def test_backoff_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep
    test_thread = threading.get_ident()

    async def record(delay: float) -> None:
        # asyncio.sleep is patched for the whole process: record only this test's loop (an
        # event loop another test left running must neither be counted nor spin)
        if threading.get_ident() != test_thread:
            await real_sleep(delay)
            return
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(webhook.asyncio, "sleep", record)
    settings = fast(closed_port_url(), retries=4, backoff_s=0.1, max_backoff_s=0.3)
    outcome = asyncio.run(WebhookClient(settings).post(PAYLOAD))
    assert outcome.attempts == 5
    assert delays == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_event_loop_keeps_running_during_a_slow_request(serve: Any) -> None:
    server = serve(SLOW)
    client = WebhookClient(fast(server.url, retries=0))
    ticks = 0

    async def main() -> Any:
        nonlocal ticks
        task = asyncio.create_task(client.post(PAYLOAD))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return task.result()

    outcome = asyncio.run(main())
    assert (outcome.success, outcome.attempts) == (False, 1)
    assert outcome.error == "timed out after 0.3 s"
    # a request that blocked the loop would let it tick once or twice (before and after the
    # timeout); a free loop ticks up to 30 times in 0.3 s, fewer when the machine is loaded
    assert ticks >= 5


def test_unserialisable_payload_is_a_failure_without_request(serve: Any) -> None:
    server = serve(200)
    outcome = asyncio.run(WebhookClient(fast(server.url)).post({"v": float("nan")}))
    assert (outcome.success, outcome.attempts) == (False, 0)
    assert "not JSON-serialisable" in (outcome.error or "")
    assert server.requests == []


@pytest.mark.parametrize(("data", "message"), [
    ({"url": "ftp://example.com/x"}, r"url\n.*must be an http:// or https:// URL with a host"),
    ({"url": "http:///path"}, r"with a host, got 'http:///path'"),
    ({"url": "https://user:pw@example.com/"}, r"credentials in the URL are not supported"),
    ({"url": "http://h/", "retries": -1}, r"retries\n.*greater than or equal to 0"),
    ({"url": "http://h/", "timeout_s": 0}, r"timeout_s\n.*greater than 0"),
    ({"url": "http://h/", "headers": {"X-A": "1\r\nX-B: 2"}}, r"contains a line break"),
    ({"url": "http://h/", "headers": {"Bad Name": "1"}}, r"not a valid HTTP token"),
    ({"url": "http://h/", "bearer_token": "t", "headers": {"authorization": "x"}},
     r"either bearer_token or an Authorization header"),
    ({"url": "http://h/", "retry": 2}, r"retry\n.*Extra inputs"),
])
def test_settings_validation(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookSettings.model_validate(data)


def test_settings_defaults_and_secret_token() -> None:
    s = WebhookSettings(url="https://hooks.example.com/x", bearer_token="Zq9-secret")
    assert (s.timeout_s, s.retries, s.backoff_s, s.max_backoff_s, s.verify_tls, s.headers) == (
        5.0, 3, 0.5, 30.0, True, {})
    assert "Zq9" not in repr(s) and "Zq9" not in str(s.model_dump())
