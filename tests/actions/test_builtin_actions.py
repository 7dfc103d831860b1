"""Built-in actions driven by the real analyzer on the simulator, outputs on mock pins."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from firmware.app.appliance import Appliance
from firmware.service.run import Service
from tests import waiting
from tests.conftest import graph_node

STEP_FRAMES = 24  # 2 s at 48 kHz / 4096


def wait_until(predicate, timeout: float = waiting.GENEROUS_S, what: str = "the condition"):
    """tests.waiting.wait_until (AssertionError on timeout) returning True, so that
    ``assert wait_until(..., timeout=...)`` also works: tests/actions/python/test_action_node.py
    imports it with that signature."""
    waiting.wait_until(predicate, timeout, what)
    return True


def scenario(data, levels, *, step_s=2.0, mqtt=False):
    """Default config with a finite step profile, MQTT off, fast relay limits."""
    data["acquisition"]["simulator"]["concentration"] = {
        "profile": "steps", "levels_ppm": levels, "step_s": step_s, "repeat": False}
    data["mqtt"]["enabled"] = mqtt
    graph = data["processing"]["default_graph"]
    if not mqtt:
        graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
        graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
    data["hal"]["relays"]["alarm"].update(min_on_s=0.0, min_off_s=0.0)
    for trigger in graph_node(data, "status_led")["parameters"]["triggers"]:
        if trigger["type"] == "data_timeout":
            # long enough that a loaded machine's pause between two frames never looks like
            # a data timeout; the tests wait for the real one after the last frame
            trigger["timeout_s"] = 3.0


def run_frames(appliance: Appliance, frames: int) -> None:
    """The DSP loop in this thread, the control loop in its own, in lockstep: each frame's
    results are taken by the control loop before the next frame (so none is coalesced and
    the scenario does not depend on how fast this machine is)."""
    analyzer = appliance.analyzer
    analyzer.warm_up()  # first: a cold compile must not count as a data timeout
    appliance.control.start()
    analyzer.source.open()
    feed = appliance.feed
    for _ in range(frames):
        analyzer.process_frame(analyzer.source.read())
        wait_until(lambda: feed.taken == feed.posted, what="the control loop to take the frame")


def handler(appliance, node_id):
    return next(h for h in appliance.handlers if h.node_id == node_id)


def test_relay_held_while_alarm_active_then_released(make_doc):
    doc = make_doc(lambda d: scenario(d, [500.0, 3000.0, 500.0]))
    appliance = Appliance(doc, realtime=False)
    pin = appliance.hal.factory.pin(17)
    try:
        run_frames(appliance, 3 * STEP_FRAMES)
        relay_action = handler(appliance, "alarm_relay")
        wait_until(lambda: relay_action.clears == 1)
        assert relay_action.triggers == 1 and relay_action.failures == 0
        assert [s.state for s in pin.states] == [False, True, False]
        kinds = [e.kind for e in relay_action.history.recent()]
        assert kinds.count("trigger") == 1 and kinds.count("clear") == 1
        assert kinds.count("outcome") == 2
        assert relay_action.updates == 3 * STEP_FRAMES and relay_action.coalesced == 0
    finally:
        appliance.stop()
    assert not pin.state


def test_led_heartbeat_alarm_blink_then_solid_fault_when_data_stops(make_doc):
    doc = make_doc(lambda d: scenario(d, [500.0, 3000.0, 500.0]))
    appliance = Appliance(doc, realtime=False)
    led = handler(appliance, "status_led")
    # every pattern the action chooses, recorded where it chooses it (sampling it from
    # another thread misses a short pattern when that thread is descheduled)
    seen: list[str] = []
    real_apply = led._apply

    def recording_apply():
        real_apply()
        if not seen or seen[-1] != led.pattern:
            seen.append(led.pattern)

    led._apply = recording_apply
    try:
        run_frames(appliance, 3 * STEP_FRAMES)  # then no more data
        wait_until(lambda: led.pattern == "fault", what="the data timeout's fault pattern")
        assert appliance.hal.led("status").pattern == "on"
    finally:
        appliance.stop()
    assert seen == ["heartbeat", "alarm", "heartbeat", "fault"]
    assert not appliance.hal.factory.pin(27).state


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    fail_next = 1

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Hook.fail_next > 0:
            Hook.fail_next -= 1
            self.send_response(503)
            self.end_headers()
            return
        Hook.received.append({"auth": self.headers.get("Authorization"), **body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    Hook.received = []
    Hook.fail_next = 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_http_action_posts_trigger_and_clear_after_a_failure(make_doc, webhook_server):
    def with_webhook(data):
        scenario(data, [500.0, 3000.0, 500.0])
        graph = data["processing"]["default_graph"]
        graph["nodes"].append({"id": "hook", "type": "http_action", "parameters": {
            "monitored_nodes": ["concentration"],
            "concentration_threshold": 2000.0,
            "webhook": {"url": webhook_server, "bearer_token": "t0k", "backoff_s": 0.05,
                        "retries": 2, "timeout_s": 2.0}}})
        graph["connections"].append({"from": "concentration", "to": "hook"})

    appliance = Appliance(make_doc(with_webhook), realtime=False)
    try:
        run_frames(appliance, 3 * STEP_FRAMES)
        hook = handler(appliance, "hook")
        wait_until(lambda: hook.successes + hook.failures == 2, what="both webhook calls")
    finally:
        appliance.stop()
    assert hook.successes == 2 and hook.failures == 0
    assert [r["kind"] for r in Hook.received] == ["trigger", "clear"]
    assert Hook.received[0]["auth"] == "Bearer t0k"
    assert Hook.received[0]["action_id"] == "hook"
    assert Hook.received[0]["trigger_type"] == "concentration"
    assert hook.client.get_status()["retries"] >= 1


def test_outputs_safe_after_a_dsp_fault(make_doc):
    """A crash in the DSP loop ends `run` with exit code 1 and every output off."""
    doc = make_doc(lambda d: scenario(d, [3000.0]))
    service = Service(doc, realtime=False)
    appliance = service.appliance
    source = appliance.analyzer.source
    real_read = source.read
    calls = {"n": 0}

    def failing_read():
        calls["n"] += 1
        if calls["n"] > 30:
            raise RuntimeError("simulated driver crash")
        return real_read()

    source.read = failing_read
    pin = appliance.hal.factory.pin(17)
    assert service.run(duration_s=30) == 1
    assert appliance.analyzer.fault == "RuntimeError: simulated driver crash"
    assert True in [s.state for s in pin.states], "the alarm relay was on before the crash"
    assert not pin.state
    assert appliance.hal.closed
