"""Every endpoint answers the shape its OpenAPI description documents (validated with
jsonschema against the description the server itself serves), and the stream's events too."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from firmware.web.api import ROUTES
from tests.web.conftest import TOKEN, WebRig

DOC_URI = "urn:pafw-openapi"


class OpenApi:
    """Validates instances against the served OpenAPI document's schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def validate_component(self, name: str, instance: Any) -> None:
        schema = {"$ref": f"{DOC_URI}#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=self.registry).validate(instance)

    def validate_response(self, method: str, path: str, status: int, instance: Any) -> None:
        operation = self.document["paths"][path][method.lower()]
        documented = operation["responses"]
        assert str(status) in documented, f"{method} {path}: status {status} undocumented"
        schema = documented[str(status)]["content"]["application/json"]["schema"]
        ref = schema["$ref"].replace("#", f"{DOC_URI}#", 1)
        Draft202012Validator({"$ref": ref}, registry=self.registry).validate(instance)


@pytest.fixture
def rig(make_rig: Any) -> WebRig:
    def change(data: dict[str, Any]) -> None:
        data["scripts"] = {"worker_user": None}

    rig = make_rig(change)
    rig.wait_for(lambda: rig.appliance.analyzer.frames > 5, what="frames")
    return rig


@pytest.fixture
def openapi(rig: WebRig) -> OpenApi:
    answer = rig.get("/api/v1/openapi.json")
    assert answer.status == 200
    assert answer.body["openapi"].startswith("3.1")
    return OpenApi(answer.body)


def test_every_route_is_documented_with_its_security(openapi: OpenApi) -> None:
    for route in ROUTES:
        operation = openapi.document["paths"][route.path][route.method.lower()]
        security = operation["security"]
        if route.access == "write":
            assert security == [{"bearer": []}], route.path
            assert {"401", "403"} <= set(operation["responses"]), route.path
        else:
            assert {} in security, route.path


def test_read_endpoints_return_documented_shapes(rig: WebRig, openapi: OpenApi) -> None:
    rig.wait_for(lambda: rig.get("/api/v1/trend").status == 200, what="a trend point")
    action_id = rig.appliance.handlers[0].node_id
    paths = {
        "/healthz": "/healthz",
        "/api/v1/status": "/api/v1/status",
        "/api/v1/results": "/api/v1/results",
        "/api/v1/graph": "/api/v1/graph",
        "/api/v1/actions": "/api/v1/actions",
        "/api/v1/actions/{id}": f"/api/v1/actions/{action_id}",
        "/api/v1/actions/{id}/history": f"/api/v1/actions/{action_id}/history?limit=5",
        "/api/v1/outputs": "/api/v1/outputs",
        "/api/v1/spectrum": "/api/v1/spectrum",
        "/api/v1/trend": "/api/v1/trend?seconds=60&points=20",
        "/api/v1/events": "/api/v1/events?limit=5",
        "/api/v1/calibration": "/api/v1/calibration",
        "/api/v1/calibration/records": "/api/v1/calibration/records",
        "/api/v1/cycle": "/api/v1/cycle",
        "/api/v1/selftest": "/api/v1/selftest",
        "/api/v1/allan": "/api/v1/allan",
    }
    for template, path in paths.items():
        answer = rig.get(path)
        assert answer.status == 200, (path, answer.body)
        openapi.validate_response("GET", template, 200, answer.body)
    documented_gets = {r.path for r in ROUTES if r.method == "GET"}
    assert documented_gets - set(paths) == {"/api/v1/stream", "/api/v1/openapi.json",
                                            "/api/v1/export.csv",
                                            # need a record or a session: test_calibration_api
                                            "/api/v1/calibration/records/{id}",
                                            "/api/v1/calibration/session"}


def test_the_measurement_cycle_phase_time_left_and_averages(make_rig: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        data["scripts"] = {"worker_user": None}
        data["cycle"] = {"enabled": True, "phases": [
            {"name": "purge", "duration_s": 0.2, "relays": {"pump": True}},
            {"name": "measure", "duration_s": 0.6, "measure": True},
            {"name": "idle", "duration_s": 30}]}
        data["hal"]["relays"]["pump"] = {"pin": 24}

    rig = make_rig(change)
    openapi = OpenApi(rig.get("/api/v1/openapi.json").body)
    rig.wait_for(lambda: rig.get("/api/v1/cycle").body["phase"] == "idle", what="idle")
    cycle = rig.get("/api/v1/cycle").body
    openapi.validate_response("GET", "/api/v1/cycle", 200, cycle)
    assert cycle["enabled"] is True and cycle["state"] == "running"
    assert cycle["inlet"] is None and cycle["measure"] is False
    assert 0 < cycle["time_left_s"] <= 30 and cycle["phase_ends"] > cycle["time_left_s"]
    assert [p["name"] for p in cycle["phases"]] == ["purge", "measure", "idle"]
    average = cycle["averages"]["concentration.cycle_average"]
    assert average["kind"] == "cycle_average" and average["phase"] == "measure"
    assert average["average"]["n"] >= 1
    status = rig.get("/api/v1/status").body
    openapi.validate_response("GET", "/api/v1/status", 200, status)
    assert status["cycle"]["phase"] == "idle"


def test_values_are_those_of_the_running_appliance(rig: WebRig) -> None:
    status = rig.get("/api/v1/status").body
    assert status["source"] == "simulator"
    assert status["sample_rate"] == 48000
    assert status["frames"] > 0
    assert status["health"]["state"] in ("ok", "alarm")
    assert status["cycle"]["enabled"] is False and status["cycle"]["state"] == "off"
    results = rig.get("/api/v1/results").body["results"]
    assert 300 < results["concentration"]["concentration_ppm"] < 3000
    spectrum = rig.get("/api/v1/spectrum").body
    peak_hz = spectrum["peak"]["frequency_hz"]
    assert spectrum["search_hz"] == [1700.0, 2300.0]
    assert abs(peak_hz - 2000.0) < 20.0
    loudest = max(range(len(spectrum["amplitude_db"])),
                  key=lambda i: spectrum["amplitude_db"][i] or -999.0)
    assert abs(spectrum["frequencies_hz"][loudest] - peak_hz) <= spectrum["bin_hz"]
    graph = rig.get("/api/v1/graph").body
    timed = {n["id"]: n["timing"] for n in graph["nodes"]}
    assert timed["peak_finder"]["count"] > 0
    assert timed["mqtt"] is None  # action nodes do no DSP work
    actions = {a["id"]: a for a in rig.get("/api/v1/actions").body["actions"]}
    assert set(actions) == {"mqtt", "alarm_relay", "status_led"}
    assert actions["alarm_relay"]["thresholds"][0]["above"] == 2000.0
    assert actions["alarm_relay"]["outputs"] == {"relay:alarm": "off"}


def test_history_limit_and_kinds(rig: WebRig) -> None:
    rig.wait_for(lambda: rig.appliance.handlers[0].history.appended > 6, what="history")
    body = rig.get("/api/v1/actions/mqtt/history?limit=3").body
    assert body["count"] == 3 and len(body["entries"]) == 3
    assert [e["kind"] for e in body["entries"]] == ["update"] * 3
    assert rig.get("/api/v1/actions/mqtt/history?kinds=trigger").body["entries"] == []
    assert rig.get("/api/v1/actions/mqtt/history?limit=0").body["entries"] == []
    for bad in ("limit=-1", "limit=abc", "limit=999999999"):
        answer = rig.get(f"/api/v1/actions/mqtt/history?{bad}")
        assert answer.status == 400, bad
        assert answer.body["error"]["code"] == "bad_query"


def test_errors_have_the_documented_shape(rig: WebRig, openapi: OpenApi) -> None:
    cases = [("GET", "/api/v1/actions/nope", None, 404),
             ("GET", "/api/v1/spectrum?node=concentration", None, 404),
             ("GET", "/api/v1/trend?node=nope", None, 404),
             ("POST", "/api/v1/actions/nope/enable", TOKEN, 404),
             ("POST", "/api/v1/actions/mqtt/reload", TOKEN, 409)]
    for method, path, token, status in cases:
        answer = rig.request(method, path, token=token, body={} if method == "POST" else None)
        assert answer.status == status, (path, answer.body)
        openapi.validate_component("ErrorResponse", answer.body)
    for path, status in (("/nothing", 404), ("/api/v1/status/x", 404)):
        answer = rig.get(path)
        assert answer.status == status
        openapi.validate_component("ErrorResponse", answer.body)
    answer = rig.request("DELETE", "/api/v1/status")
    assert answer.status == 405 and answer.headers["allow"] == "GET"


def read_stream_events(rig: WebRig, wanted: set[str], *, limit_s: float = 10.0,
                       headers: str = "") -> dict[str, list[Any]]:
    """Read the SSE stream until every event name in ``wanted`` arrived."""
    events: dict[str, list[Any]] = {}
    with socket.create_connection(("127.0.0.1", rig.port), timeout=limit_s) as sock:
        sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
        buffer = b""
        while not wanted <= set(events):
            chunk = sock.recv(65536)
            assert chunk, "the stream closed"
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                name, data = None, None
                for line in block.decode().split("\n"):
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if name is not None:
                    events.setdefault(name, []).append(data)
    return events


def test_stream_events_have_the_documented_shapes(rig: WebRig, openapi: OpenApi) -> None:
    assert rig.post("/api/v1/actions/status_led/disable", token=TOKEN).status == 200
    events = read_stream_events(rig, {"results", "status"}, headers="Last-Event-ID: 0\r\n")
    for results in events["results"]:
        openapi.validate_component("ResultsEvent", results)
    status = events["status"][0]
    openapi.validate_component("StatusEvent", status)
    assert {a["id"] for a in status["actions"]} == {"mqtt", "alarm_relay", "status_led"}
    assert status["web"]["connections"] >= 1
    replayed = read_stream_events(rig, {"action"}, headers="Last-Event-ID: 0\r\n")["action"]
    openapi.validate_component("ActionEvent", replayed[0])
    assert any(e["id"] == "status_led" and e["kind"] == "disabled" for e in replayed)


def test_static_dashboard_is_served_with_a_strict_policy(rig: WebRig) -> None:
    page = rig.get("/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert b"/static/app.js" in page.body
    script = rig.get("/static/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    again = rig.get("/static/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status == 304 and again.body == b""
    assert rig.get("/static/../runtime.py").status == 404
    assert rig.get("/static/%2e%2e/default_config.yaml").status == 404


def read_stream_for(rig: WebRig, seconds: float, headers: str = "") -> list[tuple[str, Any]]:
    """Every (event, data) of the stream during ``seconds``."""
    import time

    got: list[tuple[str, Any]] = []
    end = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", rig.port), timeout=seconds + 5) as sock:
        sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\n{headers}\r\n".encode())
        buffer = b""
        while time.monotonic() < end:
            sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                buffer += sock.recv(65536)
            except TimeoutError:
                break
        for block in buffer.split(b"\n\n"):
            lines = block.decode().split("\n")
            name = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
            data = next((json.loads(ln[6:]) for ln in lines if ln.startswith("data: ")), None)
            if name is not None:
                got.append((name, data))
    return got


def test_a_replay_after_reconnection_sends_each_action_event_once(rig: WebRig) -> None:
    for verb in ("disable", "enable", "disable", "enable"):
        assert rig.post(f"/api/v1/actions/status_led/{verb}", token=TOKEN).status == 200
    seqs = [d["seq"] for name, d in read_stream_for(rig, 1.5, "Last-Event-ID: 0\r\n")
            if name == "action"]
    assert len(seqs) >= 4
    assert len(seqs) == len(set(seqs)), seqs


def test_a_failing_periodic_step_is_logged_and_the_stream_goes_on(
        rig: WebRig, caplog: pytest.LogCaptureFixture) -> None:
    def broken(_snapshot: Any) -> None:
        raise RuntimeError("injected")

    rig.server.trends.sample = broken  # type: ignore[method-assign]
    events = [name for name, _ in read_stream_for(rig, 1.5)]
    assert events.count("results") >= 3
    assert "periodic _sample_trend failed" in caplog.text
