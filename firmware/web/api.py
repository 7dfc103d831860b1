"""The API's routes: what each path answers, who may call it, and its documentation.

``ROUTES`` is the single table the server dispatches on and ``openapi.py`` documents, so an
endpoint cannot exist undocumented. Handlers are coroutines on the web server's loop; writes
run on the control loop through ``firmware.app.operations`` and are awaited with a deadline.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from firmware.actions.python.protocol import ReloadError
from firmware.app.allan_live import allan_payload
from firmware.app.export import Series, TimeRangeError, csv_text, parse_time
from firmware.app.operations import OperationRefusedError
from firmware.web import calibration_api as cal
from firmware.web import schemas, views
from firmware.web.http import HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from firmware.web.context import ApiContext

Handler = Callable[["ApiContext", Request], Awaitable[Response]]
WRITE_TIMEOUT_S = 30.0
MAX_HISTORY = 10_000
MAX_TREND_POINTS = 2000
MAX_EVENTS = 5000
TREND_CACHE_S = 1.0


@dataclass(frozen=True)
class Param:
    """A documented query parameter."""

    name: str
    kind: Literal["integer", "number", "string"]
    description: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path template (``{name}`` segments), access and documentation."""

    method: str
    path: str
    handler: Handler
    summary: str
    access: Literal["read", "write"]
    response: type[schemas.Shape] | None
    errors: tuple[int, ...] = ()
    query: tuple[Param, ...] = ()
    body: type[schemas.Shape] | None = None
    content_type: str = "application/json"
    tag: str = "appliance"
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+)\}", self.path)  # literal, name, literal, name, ...
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[A-Za-z0-9_.-]{{1,64}})"
                        for i, part in enumerate(parts))
        object.__setattr__(self, "pattern", re.compile(rf"\A{regex}\Z"))


# --------------------------------------------------------------------------- helpers
def _int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_value(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, "bad_query", f"{name} must be an integer, got {raw[:20]!r}"
                        ) from None
    if not lo <= value <= hi:
        raise HttpError(400, "bad_query", f"{name} must be between {lo} and {hi}, got {value}")
    return value


async def _await_write(server: ApiContext, future: Any) -> Any:
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            return await asyncio.wrap_future(future)
    except OperationRefusedError as exc:
        code = {404: "not_found", 409: "refused", 500: "not_saved"}.get(exc.status, "invalid")
        raise HttpError(exc.status, code, str(exc)) from None
    except ReloadError as exc:
        raise HttpError(422, "reload_failed", str(exc)) from None
    except TimeoutError:
        raise HttpError(504, "timeout", f"the appliance did not finish the operation within "
                        f"{WRITE_TIMEOUT_S:g} s") from None


def _operation(server: ApiContext, call: Callable[[], Any]) -> Any:
    """Run an Operations call, turning its synchronous refusals into HTTP errors."""
    try:
        return call()
    except OperationRefusedError as exc:
        raise HttpError(exc.status, "not_found" if exc.status == 404 else "refused",
                        str(exc)) from None


def _handler_or_404(server: ApiContext, action_id: str) -> Any:
    return _operation(server, lambda: server.operations.handler(action_id))


# ------------------------------------------------------------------------ read routes
async def get_status(server: ApiContext, request: Request) -> Response:
    return json_response(200, server.status_payload())


async def get_health(server: ApiContext, request: Request) -> Response:
    state = views.health(server.appliance)["state"]
    return json_response(200 if state != "fault" else 503,
                         {"ok": state != "fault", "state": state})


async def get_results(server: ApiContext, request: Request) -> Response:
    return json_response(200, views.results(server.appliance))


async def get_graph(server: ApiContext, request: Request) -> Response:
    return json_response(200, views.graph(server.appliance))


async def get_actions(server: ApiContext, request: Request) -> Response:
    return json_response(200, {"actions": [views.action_summary(h)
                                           for h in server.appliance.handlers]})


async def get_action(server: ApiContext, request: Request) -> Response:
    handler = _handler_or_404(server, request.params["id"])
    return json_response(200, views.action_summary(handler))


async def get_history(server: ApiContext, request: Request) -> Response:
    handler = _handler_or_404(server, request.params["id"])
    limit = _int_query(request, "limit", 100, 0, MAX_HISTORY)
    raw_kinds = request.query_value("kinds")
    kinds = {k.strip() for k in raw_kinds.split(",") if k.strip()} if raw_kinds else None
    return json_response(200, views.history(handler, limit, kinds))


async def get_outputs(server: ApiContext, request: Request) -> Response:
    return json_response(200, views.outputs(server.appliance))


async def get_spectrum(server: ApiContext, request: Request) -> Response:
    nodes = views.spectrum_nodes(server.appliance)
    wanted = request.query_value("node")
    if not nodes:
        raise HttpError(404, "no_spectrum", "no node of the graph offers a spectrum "
                        "(add a peak_finder node)")
    if wanted is not None and wanted not in nodes:
        raise HttpError(404, "not_found", f"node {wanted!r} offers no spectrum (nodes with "
                        f"one: {', '.join(nodes)})")
    node = nodes[wanted or next(iter(nodes))]
    payload = views.spectrum(node, server.appliance)
    if payload is None:  # the copy starts with the first request: ask again shortly
        for _ in range(20):
            await asyncio.sleep(0.05)
            payload = views.spectrum(node, server.appliance)
            if payload is not None:
                break
    if payload is None:
        raise HttpError(503, "no_data", f"node {node.node_id!r} has processed no frame yet",
                        {"Retry-After": "1"})
    return json_response(200, payload)


def _trend_node(server: ApiContext, wanted: str | None) -> str:
    """The node whose trend a request reads: ``wanted``, else the first concentration node,
    else the first node with a trend. 404 for a node that computes nothing, 503 while the
    node has no recorded result yet."""
    trends = server.trends.trends
    if wanted is None:
        concentration = [n for n, t in trends.items() if t.field == "concentration_ppm"]
        candidates = concentration or list(trends)
        wanted = candidates[0] if candidates else None
    if wanted is None or wanted not in trends:
        computing = server.appliance.analyzer.graph.computing_node_ids()
        if wanted is not None and wanted not in computing:
            raise HttpError(404, "not_found", f"node {wanted!r} has no trend (computing "
                            f"nodes: {', '.join(computing) or 'none'})")
        raise HttpError(503, "no_data", "no result recorded yet", {"Retry-After": "1"})
    return wanted


async def get_trend(server: ApiContext, request: Request) -> Response:
    trends = server.trends.trends
    wanted = request.query_value("node")
    seconds = _int_query(request, "seconds", 600, 10, int(server.settings.trend_hours * 3600))
    points = _int_query(request, "points", 600, 10, MAX_TREND_POINTS)
    wanted = _trend_node(server, wanted)
    trend = trends[wanted]
    # the same chart asked by many screens at once costs one computation per second
    key = (wanted, seconds, points)
    cached = server.trend_cache.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < TREND_CACHE_S:
        return cached[1]
    bucket, rows = trend.points(time.time() - seconds, points)
    lines = [line for h in server.appliance.handlers for line in views.thresholds(h)
             if _threshold_applies(line, trend.field)]
    response = json_response(200, {"node": wanted, "field": trend.field, "unit": trend.unit,
                                   "bucket_s": bucket, "points": rows, "thresholds": lines})
    if len(server.trend_cache) > 64:
        server.trend_cache.clear()
    server.trend_cache[key] = (now, response)
    return response


def _threshold_applies(line: dict[str, Any], field_name: str) -> bool:
    return {"concentration": "concentration_ppm", "amplitude": "amplitude",
            "amplitude_db": "amplitude_db"}[line["kind"]] == field_name


def _time_query(request: Request, name: str, default: float) -> float:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_time(raw, name)
    except TimeRangeError as exc:
        raise HttpError(400, "bad_query", str(exc)) from None


async def get_export(server: ApiContext, request: Request) -> Response:
    now = time.time()
    until = _time_query(request, "to", now)
    since = _time_query(request, "from", now - server.trends.capacity)
    if since > until:
        raise HttpError(400, "bad_query", f"from ({since:.0f}) is after to ({until:.0f})")
    wanted = request.query_value("node")
    trends = server.trends.trends
    if wanted is not None and wanted not in trends:
        computing = server.appliance.analyzer.graph.computing_node_ids()
        if wanted not in computing:
            raise HttpError(404, "not_found", f"node {wanted!r} has no measurements "
                            f"(computing nodes: {', '.join(computing) or 'none'})")
    # copied here, on the loop that updates them; formatted on a worker thread
    series = [Series(node_id, t.field, t.unit, t.rows(since, until))
              for node_id, t in trends.items() if wanted in (None, node_id)]
    text, _rows = await asyncio.to_thread(csv_text, series)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(since))
    name = f"pafw-{server.appliance.doc.config.device.id}-{stamp}.csv"
    return Response(200, text.encode(), "text/csv; charset=utf-8",
                    {"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store"})


async def get_events(server: ApiContext, request: Request) -> Response:
    log = server.appliance.action_events
    since = _int_query(request, "since", 0, 0, 2**53)
    limit = _int_query(request, "limit", 100, 0, MAX_EVENTS)
    raw_kinds = request.query_value("kinds")
    kinds = {k.strip() for k in raw_kinds.split(",") if k.strip()} if raw_kinds else None
    action = request.query_value("action")
    entries = [e for e in log.since(since) if (kinds is None or e.kind in kinds)
               and (action is None or e.action_id == action)]
    entries = entries[-limit:] if limit > 0 else []
    return json_response(200, {"last_seq": log.last_seq, "count": len(entries),
                               "events": [e.to_dict() for e in entries]})


async def get_openapi(server: ApiContext, request: Request) -> Response:
    return Response(200, server.openapi_bytes, "application/json",
                    {"Cache-Control": "no-cache"})


async def get_stream(server: ApiContext, request: Request) -> Response:
    """Only HEAD arrives here (GET streams are served by WebServer._stream)."""
    return Response(200, b"", "text/event-stream", {"Cache-Control": "no-store"})


async def get_selftest(server: ApiContext, request: Request) -> Response:
    return json_response(200, server.appliance.selftest.get_status())


async def post_selftest(server: ApiContext, request: Request) -> Response:
    """Run a self-test now (a few seconds; one at a time) and answer its report."""
    report = await asyncio.to_thread(server.appliance.selftest.run, "api")
    return json_response(200, report.to_dict())


async def get_allan(server: ApiContext, request: Request) -> Response:
    trends = server.trends.trends
    seconds = _int_query(request, "seconds", 3600, 60, int(server.settings.trend_hours * 3600))
    wanted = request.query_value("node")
    wanted = _trend_node(server, wanted)
    trend = trends[wanted]
    # copied here, on the loop that updates the trend; computed on a worker thread
    payload = await asyncio.to_thread(allan_payload, trend, trend.closed_rows(),
                                      since=time.time() - seconds)
    return json_response(200, payload)


# ----------------------------------------------------------------------- write routes
async def post_acknowledge(server: ApiContext, request: Request) -> Response:
    action_id = request.params["id"]
    future = _operation(server, lambda: server.operations.acknowledge(action_id))
    names = await _await_write(server, future)
    handler = server.operations.handler(action_id)
    return json_response(200, {"id": action_id, "acknowledged": names,
                               "action": views.action_summary(handler)})


async def post_acknowledge_all(server: ApiContext, request: Request) -> Response:
    future = _operation(server, server.operations.acknowledge_all)
    return json_response(200, {"acknowledged": await _await_write(server, future)})


def _set_enabled(enabled: bool) -> Handler:
    async def handle(server: ApiContext, request: Request) -> Response:
        action_id = request.params["id"]
        future = _operation(server, lambda: server.operations.set_enabled(action_id, enabled))
        await _await_write(server, future)
        return json_response(200, views.action_summary(server.operations.handler(action_id)))

    return handle


async def post_reload(server: ApiContext, request: Request) -> Response:
    action_id = request.params["id"]
    future = _operation(server, lambda: server.operations.reload(action_id))
    await _await_write(server, future)
    handler = server.operations.handler(action_id)
    return json_response(200, {"id": action_id, "reloaded": True,
                               "action": views.action_summary(handler)})


async def get_cycle(server: ApiContext, request: Request) -> Response:
    return json_response(200, views.cycle(server.appliance))


async def post_pulse(server: ApiContext, request: Request) -> Response:
    name = request.params["name"]
    body = request.json()
    try:
        pulse = schemas.PulseRequest.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise HttpError(422, "invalid", f"{where}: {problem['msg']}") from None
    if not math.isfinite(pulse.seconds):  # pragma: no cover - the schema bounds it
        raise HttpError(422, "invalid", "seconds must be finite")
    future = _operation(server, lambda: server.operations.pulse_relay(name, pulse.seconds))
    state = await _await_write(server, future)
    return json_response(200, {"relay": name, "seconds": pulse.seconds, "state": state})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", get_health, "Liveness: ok unless the DSP loop stopped on a fault",
          "read", schemas.Health, (503,)),
    Route("GET", "/api/v1/status", get_status, "Appliance status and health", "read",
          schemas.ApplianceStatus),
    Route("GET", "/api/v1/results", get_results, "Latest result of every computing node",
          "read", schemas.ResultsResponse),
    Route("GET", "/api/v1/graph", get_graph, "Processing graph with per-node timing", "read",
          schemas.GraphResponse),
    Route("GET", "/api/v1/actions", get_actions, "Every action's state, counters and errors",
          "read", schemas.ActionsResponse, tag="actions"),
    Route("GET", "/api/v1/actions/{id}", get_action, "One action", "read",
          schemas.ActionSummary, (404,), tag="actions"),
    Route("GET", "/api/v1/actions/{id}/history", get_history,
          "An action's history, oldest first", "read", schemas.HistoryResponse, (400, 404),
          (Param("limit", "integer", "newest entries to return (default 100)", 0, MAX_HISTORY),
           Param("kinds", "string", "comma-separated kinds to keep, e.g. trigger,clear,outcome")),
          tag="actions"),
    Route("GET", "/api/v1/outputs", get_outputs, "Relays and LEDs as the HAL drives them",
          "read", schemas.OutputsResponse),
    Route("GET", "/api/v1/spectrum", get_spectrum,
          "Recent magnitude spectrum around the resonance, with the detected peak", "read",
          schemas.SpectrumResponse, (404, 503),
          (Param("node", "string", "a peak_finder node id (default: the first)"),)),
    Route("GET", "/api/v1/trend", get_trend,
          "Trend of a computing node's value in buckets of mean/min/max", "read",
          schemas.TrendResponse, (400, 404, 503),
          (Param("node", "string", "computing node id (default: the first concentration "
                 "node)"),
           Param("seconds", "integer", "how far back (default 600)", 10, 604800),
           Param("points", "integer", "at most this many points (default 600)", 10,
                 MAX_TREND_POINTS))),
    Route("GET", "/api/v1/events", get_events,
          "Action events (triggers, clears, outcomes, operator changes), oldest first; "
          "kept on disk across restarts", "read", schemas.EventsResponse, (400,),
          (Param("since", "integer", "only events with a larger seq (default 0)", 0),
           Param("limit", "integer", "newest events to return (default 100)", 0, MAX_EVENTS),
           Param("kinds", "string", "comma-separated kinds to keep, e.g. trigger,clear"),
           Param("action", "string", "only this action's events")),
          tag="actions"),
    Route("GET", "/api/v1/export.csv", get_export,
          "Measurements as CSV: per computing node and second, the mean, min and max",
          "read", None, (400, 404),
          (Param("from", "string", "start: epoch seconds or ISO 8601 (default: the oldest "
                 "kept, web.trend_hours)"),
           Param("to", "string", "end: epoch seconds or ISO 8601 (default: now)"),
           Param("node", "string", "one computing node id (default: all)")),
          content_type="text/csv"),
    Route("GET", "/api/v1/stream", get_stream,
          "Live Server-Sent Events: results, action and status events", "read", None, (503,),
          content_type="text/event-stream"),
    Route("GET", "/api/v1/openapi.json", get_openapi, "This description", "read", None),
    Route("GET", "/api/v1/cycle", get_cycle,
          "The measurement cycle: state, phase, inlet, time left in the phase, latest "
          "averages", "read", schemas.CycleStatus),
    Route("GET", "/api/v1/selftest", get_selftest,
          "The microphones' self-test: the newest report, counters, a test in progress",
          "read", schemas.SelftestResponse, tag="selftest"),
    Route("POST", "/api/v1/selftest", post_selftest,
          "Run the self-test now (a few seconds) and answer its report; a read: it changes "
          "nothing but the quality flags it finds", "read", schemas.SelftestReport,
          tag="selftest"),
    Route("GET", "/api/v1/allan", get_allan,
          "Allan-Werle deviation of a node's one-second trend (default: the first "
          "concentration node), with the LOD; empty until min_values seconds are kept",
          "read", schemas.AllanResponse, (400, 404, 503),
          (Param("node", "string", "computing node id (default: the first concentration "
                 "node)"),
           Param("seconds", "integer", "how far back (default 3600)", 60, 604800))),
    Route("POST", "/api/v1/actions/{id}/acknowledge", post_acknowledge,
          "Acknowledge an action's active alarm", "write", schemas.AcknowledgeResponse,
          (404, 409), tag="operator"),
    Route("POST", "/api/v1/alarms/acknowledge", post_acknowledge_all,
          "Acknowledge every active alarm of every action", "write",
          schemas.AcknowledgeAllResponse, (409,), tag="operator"),
    Route("POST", "/api/v1/actions/{id}/enable", _set_enabled(True), "Enable an action",
          "write", schemas.ActionSummary, (404, 500), tag="operator"),
    Route("POST", "/api/v1/actions/{id}/disable", _set_enabled(False),
          "Disable an action (kept across restarts)", "write", schemas.ActionSummary,
          (404, 500), tag="operator"),
    Route("POST", "/api/v1/actions/{id}/reload", post_reload,
          "Reload a Python action's script (the running version stays if it fails)",
          "write", schemas.ReloadResponse, (404, 409, 422), tag="operator"),
    Route("POST", "/api/v1/relays/{name}/pulse", post_pulse, "Pulse a relay for a test",
          "write", schemas.PulseResponse, (400, 404, 409, 415, 422), body=schemas.PulseRequest,
          tag="operator"),
    Route("GET", "/api/v1/calibration", cal.get_calibration,
          "Calibration in use: active record or YAML coefficients, due state, session",
          "read", schemas.CalibrationStatus, (404,), tag="calibration"),
    Route("GET", "/api/v1/calibration/records", cal.get_records,
          "Every calibration record (oldest first) and the activation history", "read",
          schemas.CalibrationRecordsResponse, (404,), tag="calibration"),
    Route("GET", "/api/v1/calibration/records/{id}", cal.get_record,
          "One calibration record: points, fit, signal chain", "read",
          schemas.CalibrationRecordDocument, (404,), tag="calibration"),
    Route("POST", "/api/v1/calibration/records/{id}/activate", cal.post_activate,
          "Make a record active now and across restarts (refused for another signal chain)",
          "write", schemas.CalibrationActivated, (400, 404, 409, 415, 422),
          body=schemas.CalibrationOperatorRequest, tag="calibration"),
    Route("POST", "/api/v1/calibration/rollback", cal.post_rollback,
          "Go back to the calibration active before the current one", "write",
          schemas.CalibrationActivated, (400, 404, 409, 415, 422),
          body=schemas.CalibrationOperatorRequest, tag="calibration"),
    Route("GET", "/api/v1/calibration/session", cal.get_session,
          "The calibration or zero check in progress, with the point being measured", "read",
          schemas.CalibrationSession, (404,), tag="calibration"),
    Route("POST", "/api/v1/calibration/session", cal.post_session,
          "Start a calibration (zero and spans) or a zero-drift check", "write",
          schemas.CalibrationSession, (400, 404, 409, 415, 422),
          body=schemas.CalibrationSessionRequest, tag="calibration"),
    Route("POST", "/api/v1/calibration/session/points", cal.post_point,
          "Measure a point: waits in the background until the signal is stable", "write",
          schemas.CalibrationSession, (400, 404, 415, 422), body=schemas.CalibrationPointRequest,
          tag="calibration"),
    Route("POST", "/api/v1/calibration/session/fit", cal.post_fit,
          "Fit the session's points (nothing is stored)", "write", schemas.CalibrationFit,
          (400, 404, 415, 422), body=schemas.CalibrationFitRequest, tag="calibration"),
    Route("POST", "/api/v1/calibration/session/commit", cal.post_commit,
          "Fit, store and activate the record (or record the zero check)", "write",
          schemas.CalibrationCommitResponse, (400, 404, 415, 422),
          body=schemas.CalibrationFitRequest, tag="calibration"),
    Route("POST", "/api/v1/calibration/session/abort", cal.post_abort,
          "Drop the session; nothing is stored", "write", schemas.CalibrationStatus,
          (404, 409), tag="calibration"),
    Route("POST", "/api/v1/calibration/pressure", cal.post_pressure,
          "Set the ambient pressure the concentration is compensated for", "write",
          schemas.CalibrationStatus, (400, 404, 415, 422), body=schemas.PressureRequest,
          tag="calibration"),
    Route("POST", "/api/v1/simulator/gas", cal.post_simulator_gas,
          "Fill the simulated cell with a gas (null: back to its profile)", "write",
          schemas.SimulatorGasResponse, (400, 409, 415, 422), body=schemas.SimulatorGasRequest,
          tag="calibration"),
)
