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


class CyclePhase(Shape):
    """One phase of the measurement cycle as configured."""

    name: str
    duration_s: float
    measure: bool


class CycleStatus(Shape):
    """``GET /api/v1/cycle`` (and ``cycle`` in the status): where the measurement cycle is.

    ``state``: ``off`` (no cycle configured), ``idle`` (not started), ``waiting`` (for the
    first frame), ``running``, ``finished`` (its ``repeat`` count done), ``stopped`` (by the
    appliance's stop or a config change) or ``faulted`` (an output or the analyzer failed:
    every output it drives went safe); ``reason`` says why it stopped. ``phase_ends`` is the
    epoch time the phase ends, ``time_left_s`` the seconds until then. ``averages``: the
    newest ``cycle_average`` result of each averaged node (and inlet)."""

    enabled: bool
    state: str
    reason: str | None
    cycle: int
    inlet: str | None
    phase: str | None
    measure: bool
    phase_index: int | None
    phase_duration_s: float | None
    phase_ends: float | None
    time_left_s: float | None
    cycles_completed: int
    averages_published: int
    phases: list[CyclePhase]
    inlets: list[str]
    repeat: int | None
    nodes: list[str]
    averages: dict[str, Result]


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
    #: the release it runs: version plus build identity (firmware.app.release)
    release: str
    cycle: CycleStatus


class AverageStats(Shape):
    """What a ``cycle_average`` result adds: the spread and count of the results of one
    measure phase (standard deviations null below two), its inlet, cycle and window."""

    source_kind: str
    n: int
    concentration_std: float | None
    amplitude_std: float | None
    inlet: str | None
    cycle: int
    started: float | None
    ended: float | None


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
    average: AverageStats | None


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
    CycleStatus,
)


# ------------------------------------------------------------------ calibration
class CalibrationDue(Shape):
    """When the next calibration is due: ``state`` not_scheduled, ok, due or overdue."""

    state: Literal["not_scheduled", "ok", "due", "overdue"]
    calibrated_at: str | None
    due_at: str | None
    overdue_at: str | None
    flags: list[str]


class CalibrationSummary(Shape):
    """One calibration record in a list (``active``/``applicable`` only in lists)."""

    id: str
    created: str
    operator: str
    node_id: str
    degree: int
    points: int
    coefficients: list[float]
    r_squared: float | None
    concentration_range: list[float]
    active: bool | None = None
    applicable: bool | None = None


class CalibrationPointProgress(Shape):
    """The point being measured: its window's readings and what it waits for."""

    concentration_ppm: float
    gas: str
    cylinder: str | None
    state: Literal["measuring", "stable", "failed", "cancelled"]
    started: str
    elapsed_s: float
    waiting_for: str | None
    error: str | None
    window: dict[str, Any] | None


class CalibrationSession(Shape):
    """``GET /api/v1/calibration/session``: the calibration or zero check in progress."""

    mode: Literal["calibration", "zero_check"]
    operator: str
    gas: str
    note: str
    started: str
    points: list[dict[str, Any]]
    current: CalibrationPointProgress | None
    measuring: bool
    last_failure: str | None


class CalibrationStatus(Shape):
    """``GET /api/v1/calibration``: what the calibrated node computes with, and why."""

    node: str
    active_record: CalibrationSummary | None
    coefficients: list[float]
    source: Literal["record", "yaml"]
    problem: str | None
    due: CalibrationDue
    signal_chain: str
    pressure_hpa: float | None
    session: CalibrationSession | None
    last_zero_check: dict[str, Any] | None


class CalibrationRecordsResponse(Shape):
    """``GET /api/v1/calibration/records``: every record, oldest first."""

    records: list[CalibrationSummary]
    history: list[dict[str, Any]]


class CalibrationFit(Shape):
    """A fit: coefficients c0 first, one-sigma uncertainties (null without spare points),
    residuals per point (measured - fitted, ppm), R²."""

    degree: int
    through_zero: bool
    coefficients: list[float]
    uncertainties: list[float] | None
    residuals_ppm: list[float]
    r_squared: float | None
    amplitude_range: list[float]
    concentration_range: list[float]


class CalibrationRecordDocument(Shape):
    """A calibration record as stored (``active``: whether it is the active one)."""

    schema_: int = Field(alias="schema")
    id: str
    created: str
    created_epoch: float
    operator: str
    node_id: str
    gas: str
    note: str
    points: list[dict[str, Any]]
    fit: CalibrationFit
    firmware_version: str
    signal_chain: dict[str, Any]
    active: bool


class CalibrationSessionRequest(Shape):
    """Body of ``POST /api/v1/calibration/session``."""

    mode: Literal["calibration", "zero_check"] = "calibration"
    operator: str | None = Field(None, max_length=128)
    note: str = Field("", max_length=1000)


class CalibrationPointRequest(Shape):
    """Body of ``POST /api/v1/calibration/session/points``: the cylinder's concentration
    (0 for zero gas), its gas name (default ``device.gas``) and cylinder id."""

    concentration_ppm: float = Field(allow_inf_nan=False)
    gas: str | None = Field(None, max_length=64)
    cylinder: str | None = Field(None, max_length=128)


class CalibrationFitRequest(Shape):
    """Body of the fit and commit calls (null degree: the lowest that passes)."""

    degree: int | None = Field(None, ge=1, le=4)
    through_zero: bool | None = None
    activate: bool = True


class CalibrationOperatorRequest(Shape):
    """Body of activate and rollback: who does it."""

    operator: str = Field("", max_length=128)


class CalibrationActivated(Shape):
    """What is active after an activate or a rollback (null: the YAML coefficients)."""

    active: str | None
    calibration: CalibrationStatus


class ZeroCheckResult(Shape):
    """A stored zero-drift check: the offset read with the active calibration."""

    id: str
    kind: Literal["zero_check"]
    at: str
    epoch: float
    operator: str
    node_id: str
    record_id: str | None
    offset_ppm: float | None
    offset_amplitude: float
    point: dict[str, Any]
    note: str


class CalibrationCommitResponse(Shape):
    """A committed calibration's record, or a committed zero check (the other is null)."""

    record: CalibrationRecordDocument | None
    zero_check: ZeroCheckResult | None


class PressureRequest(Shape):
    """Body of ``POST /api/v1/calibration/pressure`` (null: the configured one)."""

    hpa: float | None = Field(gt=0, le=2000)


class SimulatorGasRequest(Shape):
    """Body of ``POST /api/v1/simulator/gas`` (null: back to the configured profile)."""

    ppm: float | None = Field(ge=0, allow_inf_nan=False)


class SimulatorGasResponse(Shape):
    """The simulator's gas now (null: its concentration profile runs)."""

    ppm: float | None


DOCUMENTED += (
    CalibrationStatus, CalibrationRecordsResponse, CalibrationRecordDocument, CalibrationFit,
    CalibrationSession, CalibrationSessionRequest, CalibrationPointRequest,
    CalibrationFitRequest, CalibrationOperatorRequest, CalibrationActivated, ZeroCheckResult,
    PressureRequest, SimulatorGasRequest, SimulatorGasResponse, CalibrationCommitResponse,
    SelftestReport, SelftestResponse, AllanResponse,
)
