"""The HTTP API's documented shapes, as pydantic models.

These models are the contract: the OpenAPI description (``openapi.py``) is generated from
them, the handlers build plain dicts of the same shape (cheaper than model instances on every
request), and the tests validate live responses against the generated description. Times are
epoch seconds plus ISO 8601 UTC strings, unknown numbers are ``null`` (never NaN).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Shape(BaseModel):
    """Base of the documented shapes: every documented key present, nothing else."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Shape):
    """``status``: the HTTP status; ``code``: a stable word; ``message``: for people."""

    status: int
    code: str
    message: str


class ErrorResponse(Shape):
    """Every 4xx/5xx answer."""

    error: ErrorBody


class Percentiles(Shape):
    """Latency percentiles in milliseconds over the newest samples (null before any)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class ProcessStatus(Shape):
    """The appliance process: CPU over the last sampling interval, memory, threads."""

    cpu_percent: float | None
    rss_bytes: int | None
    threads: int
    load_average: list[float]


class WebStatus(Shape):
    """The HTTP server's own counters."""

    connections: int
    streams: int
    requests: int
    rejected_connections: int
    dropped_slow_streams: int
    timed_out_requests: int
    oversized_requests: int
    auth_failures: int


class AlarmRef(Shape):
    """One active alarm: an action's threshold trigger."""

    action: str
    trigger: str
    acknowledged: bool


class HealthStatus(Shape):
    """What the status colour shows: fault beats stale beats alarm beats acknowledged."""

    state: Literal["ok", "alarm", "acknowledged", "stale", "fault"]
    fault: str | None
    alarms: list[AlarmRef]
    result_age_s: float | None


class MqttSummary(Shape):
    """Broker link state (``enabled`` false: no broker configured)."""

    enabled: bool
    connected: bool
    outbox_pending: int
    outbox_dropped: int


class DeviceInfo(Shape):
    """Who the appliance is and what it measures (``gas``: ``device.gas``)."""

    id: str
    name: str
    gas: str


class ApplianceStatus(Shape):
    """``GET /api/v1/status`` (and every ``status`` stream event)."""

    device: DeviceInfo
    #: whether a token is configured (web.token): without one every write is refused
    writes_enabled: bool
    version: str
    timestamp: float
    time: str
    uptime_s: float
    source: str
    source_status: dict[str, Any]
    sample_rate: int
    frame_size: int
    frames: int
    frames_per_s: float | None
    realtime_factor: float | None
    overruns: int
    dsp_cpu_percent: float | None
    process: ProcessStatus
    health: HealthStatus
    mqtt: MqttSummary
    web: WebStatus


class Result(Shape):
    """A computing node's latest result (``ComputingResult.to_dict``)."""

    node_id: str
    kind: str
    timestamp: float
    time: str
    monotonic: float
    sequence: int
    detected: bool
    frequency_hz: float | None
    amplitude: float | None
    amplitude_db: float | None
    snr_db: float | None
    coherence: float | None
    phase_rad: float | None
    concentration_ppm: float | None
    source_node_id: str | None
    clamped: bool
    phase: str | None
    flags: list[str]


class ResultsResponse(Shape):
    """``GET /api/v1/results``: the newest result of every computing node."""

    timestamp: float
    time: str
    results: dict[str, Result]


class NodeTiming(Shape):
    """Processing time of one node per frame (microseconds; p50/p99 over recent frames)."""

    count: int
    mean_us: float | None
    p50_us: float | None
    p99_us: float | None
    max_us: float | None


class GraphNode(Shape):
    id: str
    type: str
    computing: bool
    action: bool
    timing: NodeTiming | None
    status: dict[str, Any]


class GraphConnection(Shape):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str


class GraphResponse(Shape):
    """``GET /api/v1/graph``: nodes as configured, with the running graph's timing."""

    frames: int
    frame_budget_us: float
    nodes: list[GraphNode]
    connections: list[GraphConnection]
    fused: list[str]


class ActionError(Shape):
    """The last error of an action; ``file``/``line`` point into a Python action's script."""

    type: str | None
    message: str
    file: str | None
    line: int | None
    time: str | None


class ActionCounters(Shape):
    updates: int
    triggers: int
    clears: int
    repeats: int
    successes: int
    failures: int
    suppressed: int
    event_drops: int


class LastTrigger(Shape):
    kind: str
    trigger: str
    node_id: str | None
    value: float | None
    timestamp: float
    time: str


class ScriptInfo(Shape):
    """A Python action's script and worker."""

    path: str
    class_name: str
    worker_state: str
    reloads: int
    reload_failures: int
    restarts: int


class ThresholdLine(Shape):
    """A threshold trigger drawn on the trend: ``above`` or ``below`` is set."""

    action: str
    trigger: str
    kind: Literal["concentration", "amplitude", "amplitude_db"]
    above: float | None
    below: float | None
    hysteresis: float


class ActionSummary(Shape):
    """``GET /api/v1/actions/{id}``: state, counters, latency, last error."""

    id: str
    type: str
    enabled: bool
    state: Literal["idle", "active", "acknowledged", "disabled", "failed"]
    monitored_nodes: list[str]
    active_triggers: list[str]
    acknowledged_triggers: list[str]
    counters: ActionCounters
    last_trigger: LastTrigger | None
    last_error: ActionError | None
    latency_ms: Percentiles
    thresholds: list[ThresholdLine]
    outputs: dict[str, str]
    script: ScriptInfo | None
    details: dict[str, Any]


class ActionsResponse(Shape):
    actions: list[ActionSummary]


class HistoryEntry(Shape):
    kind: str
    timestamp: float
    time: str
    data: dict[str, Any]


class HistoryResponse(Shape):
    """``GET /api/v1/actions/{id}/history``: oldest first, newest last."""

    id: str
    capacity: int
    count: int
    entries: list[HistoryEntry]


class OutputState(Shape):
    """A relay or LED as the HAL drives it."""

    name: str
    kind: Literal["relay", "led"]
    pin: int
    on: bool
    state: str
    details: dict[str, Any]


class OutputsResponse(Shape):
    """``GET /api/v1/outputs``."""

    backend: str | None
    simulated: bool
    outputs: list[OutputState]


class SpectrumPeak(Shape):
    detected: bool
    frequency_hz: float | None
    amplitude: float | None
    amplitude_db: float | None


class SpectrumResponse(Shape):
    """``GET /api/v1/spectrum``: the magnitude spectrum around the resonance (amplitude in
    input units per bin, as the peak finder sees it) and the detected peak."""

    node: str
    sequence: int
    timestamp: float
    time: str
    bin_hz: float
    search_hz: list[float]
    frequencies_hz: list[float]
    amplitude_db: list[float | None]
    peak: SpectrumPeak


class TrendResponse(Shape):
    """``GET /api/v1/trend``: per bucket ``[epoch_s, mean, min, max]`` of ``field``."""

    node: str
    field: str
    unit: str
    bucket_s: float
    points: list[list[float]]
    thresholds: list[ThresholdLine]


class AcknowledgeResponse(Shape):
    id: str
    acknowledged: list[str]
    action: ActionSummary


class AcknowledgeAllResponse(Shape):
    """Per action, the triggers just acknowledged."""

    acknowledged: dict[str, list[str]]


class PulseRequest(Shape):
    """Body of ``POST /api/v1/relays/{name}/pulse``."""

    seconds: float = Field(gt=0, le=60)


class PulseResponse(Shape):
    relay: str
    seconds: float
    state: str


class ReloadResponse(Shape):
    id: str
    reloaded: bool
    action: ActionSummary


class Health(Shape):
    """``GET /healthz``: liveness for probes."""

    ok: bool
    state: str


class ResultsEvent(Shape):
    """Stream event ``results``."""

    timestamp: float
    results: dict[str, Result]


class StatusEvent(ApplianceStatus):
    """Stream event ``status``: the appliance status, every action (``details`` empty) and
    the outputs."""

    actions: list[ActionSummary]
    outputs: OutputsResponse


class ActionEvent(Shape):
    """Stream event ``action``: a trigger, clear, repeat, outcome or an operator's change."""

    seq: int
    id: str
    kind: str
    timestamp: float
    time: str
    data: dict[str, Any]


class EventsResponse(Shape):
    """``GET /api/v1/events``: the newest action events after ``since``, oldest first
    (``last_seq``: the newest event's number, to ask for what follows)."""

    last_seq: int
    count: int
    events: list[ActionEvent]


class SelftestCheck(Shape):
    """One self-test check: ``value`` must lie in ``low``..``high`` (null: open);
    ``status`` ``skip`` when there was nothing to measure."""

    name: str
    status: Literal["pass", "fail", "skip"]
    value: float | None
    unit: str
    low: float | None
    high: float | None
    message: str


class SelftestReport(Shape):
    """One self-test; ``failed`` names the checks that failed, the quality flags every result
    carries until a test passes them."""

    passed: bool
    failed: list[str]
    trigger: str
    timestamp: float
    time: str
    duration_s: float
    source: str
    checks: list[SelftestCheck]


class SelftestResponse(Shape):
    """``GET /api/v1/selftest``: a test in progress (its trigger), counters, the newest."""

    running: str | None
    runs: int
    failures: int
    last: SelftestReport | None


class AllanResponse(Shape):
    """``GET /api/v1/allan``: the Allan-Werle deviation of a node's one-second trend (``sigma``
    at each ``tau_s``, in ``unit``), the white-noise line through its first point, and the
    LOD (3 sigma) at 1 s and at the optimum averaging time. Empty lists and null figures
    while the trend holds fewer than ``min_values`` seconds."""

    node: str
    field: str
    unit: str
    bucket_s: float
    values: int
    min_values: int
    span_s: float
    tau_s: list[float]
    sigma: list[float]
    white_sigma: list[float]
    sigma_1s: float | None
    lod_1s: float | None
    optimum_tau_s: float | None
    sigma_optimum: float | None
    lod_optimum: float | None


#: every model the OpenAPI document lists under components/schemas
DOCUMENTED: tuple[type[BaseModel], ...] = (
    ErrorResponse, ApplianceStatus, ResultsResponse, GraphResponse, ActionsResponse,
    ActionSummary, HistoryResponse, OutputsResponse, SpectrumResponse, TrendResponse,
    AcknowledgeResponse, AcknowledgeAllResponse, PulseRequest, PulseResponse, ReloadResponse,
    Health, ResultsEvent, StatusEvent, ActionEvent, EventsResponse,
    SelftestReport, SelftestResponse, AllanResponse,
)
