"""user_scripts/webhook_notification.py (the study's WebhookNotificationAction plus its
_send_webhook over urllib) POSTing to a real HTTP server on loopback; and what happens
without a server, and without the network grant."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.conftest import free_port
from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

STEP_FRAMES = 24


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first POST (the script must retry), 200 afterwards."""

    posts: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            if Receiver.refused == 0:
                Receiver.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            Receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                   "json": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_url():
    Receiver.posts, Receiver.refused = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pafw/co2"
    server.shutdown()
    server.server_close()


def node(node_id: str, url: str, *, network: bool = True) -> dict[str, Any]:
    """The docstring's node, with another id and URL."""
    n = docstring_node("webhook_notification.py")
    n["id"] = node_id
    n["parameters"]["python_config"]["webhook_url"] = url
    n["parameters"]["capabilities"]["network"] = network
    return n


def test_posts_the_study_payload_after_a_retry(tmp_path, webhook_url, caplog):
    caplog.set_level(logging.INFO, logger="pafw.script")
    nodes = [node("webhook_alerts", webhook_url),
             node("webhook_nobody_listens", f"http://127.0.0.1:{free_port()}/x"),
             node("webhook_not_granted", webhook_url, network=False)]
    for n in nodes[1:]:
        n["parameters"]["python_config"]["retry_count"] = 1
    with example_run(tmp_path, "webhook_notification.py", nodes=nodes,
                     env={"WEBHOOK_API_KEY": "k3y-from-env"}, profile={
                         "profile": "steps", "levels_ppm": [500.0, 3000.0, 500.0],
                         "step_s": 2.0, "repeat": False}) as run:
        actions = {n["id"]: run.handler(n["id"]) for n in nodes}
        run.frames(3 * STEP_FRAMES)
        wait_until(lambda: all(a.successes + a.failures == 2  # trigger + clear
                               for a in actions.values()), 60, "every action's two outcomes")
        statuses = {i: run.status(i) for i in actions}

    ok = actions["webhook_alerts"]
    assert ok.triggers == 1 and ok.clears == 1 and ok.successes == 2, ok.last_error
    assert Receiver.refused == 1 and len(Receiver.posts) == 1  # the study posts on triggers
    post = Receiver.posts[0]
    assert post["path"] == "/pafw/co2"
    assert post["headers"]["Authorization"] == "Bearer k3y-from-env"
    assert post["headers"]["Content-Type"] == "application/json"
    payload = post["json"]
    assert set(payload) == {"timestamp", "trigger_type", "sensor_data", "message", "severity",
                            "node_id"}
    datetime.fromisoformat(payload["timestamp"])
    assert payload["trigger_type"] == "concentration"
    assert payload["message"] == "CO2 above 2000 ppm" and payload["severity"] == "critical"
    assert payload["node_id"] == ["concentration"]
    sensor = payload["sensor_data"]
    assert sensor["kind"] == "trigger" and sensor["trigger_name"] == "high_co2"
    assert sensor["threshold"] == 2000.0 and sensor["value"] >= 2000.0
    assert sensor["source_node_id"] == "concentration"

    for failing in ("webhook_nobody_listens", "webhook_not_granted"):
        action, status = actions[failing], statuses[failing]
        assert action.triggers == 1 and action.failures == 1, failing  # the trigger's POST
        assert status["worker"]["timeouts"] == 0 and status["worker"]["state"] == "running"
    logs = [r.getMessage() for r in caplog.records if r.name.startswith("pafw.script")]
    assert any("webhook_alerts" in m and "HTTP 200 (attempt 2)" in m for m in logs), logs
    assert any("webhook_nobody_listens" in m and "Connection refused" in m for m in logs), logs
    assert any("webhook_not_granted" in m and "network access is not granted" in m
               for m in logs), logs
