"""Action nodes: the graph node (a pass-through declaring the action and its parameters)
and the control-side half (trigger evaluation, history, the action itself).

On the DSP thread an ``ActionNode`` does nothing: the control loop takes the results from
ComputingState through the ResultFeed (firmware/actions/feed.py), so the DSP cost of the
actions does not grow with their number. On the control loop (firmware/actions/control.py)
the ``ActionHandler`` feeds its monitored nodes' results to its ``TriggerEngine``, records the
history, and hands trigger/clear/repeat events to ``on_event`` one at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from firmware.actions.event_log import ActionEventLog
from firmware.actions.history import HistoryBuffer
from firmware.actions.log_limit import LogLimiter
from firmware.actions.triggers import (
    TriggerEngine,
    TriggerEvent,
    TriggerSettings,
    triggers_from_shorthand,
)
from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import get_node_type
from firmware.errors import ConfigError
from firmware.state import ComputingResult, ComputingState
from firmware.strict_model import StrictModel

if TYPE_CHECKING:
    from firmware.actions.mqtt.link import MqttLink
    from firmware.hal.hal import Hal

log = logging.getLogger("pafw.actions")
#: failure lines one action may log per second (a script decides how often it fails)
FAILURE_LINES_PER_S = 5


class ActionParams(StrictModel):
    """Parameters every action node has (the design study's ActionNode contract)."""

    monitored_nodes: list[str] = Field(
        default_factory=list, description="computing node ids to watch; empty = all of them"
    )
    triggers: list[TriggerSettings] = Field(default_factory=list)
    concentration_threshold: float | None = Field(
        None, description="shorthand for a threshold trigger on concentration (above)"
    )
    amplitude_threshold: float | None = Field(
        None, description="shorthand for a threshold trigger on amplitude (above)"
    )
    buffer_size: int = Field(100, ge=1, le=100_000, description="history entries kept")

    def all_triggers(self) -> list[TriggerSettings]:
        """Explicit triggers plus the shorthand thresholds."""
        return [*self.triggers,
                *triggers_from_shorthand(self.concentration_threshold, self.amplitude_threshold)]


class ActionNode(Node):
    """Pass-through graph node of an action; checks its monitored nodes at build time."""

    Params: ClassVar[type[ActionParams]] = ActionParams
    Handler: ClassVar[type[ActionHandler]]
    passive = True

    def __init__(self, node_id: str, params: ActionParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        computing = sorted(i for i, t in ctx.node_types_by_id.items() if _is_computing(t))
        for monitored in params.monitored_nodes:
            if monitored not in ctx.node_types_by_id:
                raise ConfigError(f"node {node_id!r} ({self.type_name}): monitored node "
                                  f"{monitored!r} is not in the graph; computing nodes: "
                                  f"{', '.join(computing) or 'none'}")
            if monitored not in computing:
                raise ConfigError(f"node {node_id!r} ({self.type_name}): monitored node "
                                  f"{monitored!r} is a {ctx.node_types_by_id[monitored]} node, "
                                  f"which produces no results; computing nodes: "
                                  f"{', '.join(computing)}")
        self.monitored_nodes = list(params.monitored_nodes) or computing

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        return signal

    def get_status(self) -> dict[str, Any]:
        return {"monitored_nodes": self.monitored_nodes}


def _is_computing(type_name: str) -> bool:
    node_cls = get_node_type(type_name)
    return bool(node_cls is not None and node_cls.computing)


def _no_fault() -> str | None:
    return None


def _no_statistics(node_id: str) -> dict[str, Any]:
    raise ValueError(f"no statistics of node {node_id!r} here")


def _nobody_listens() -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class ScriptsContext:
    """What python_action handlers need beyond the common context."""

    #: the directory scripts are loaded from (a script outside it is refused)
    scripts_dir: Path
    #: the user workers run as when they do not get a uid of their own, else None
    run_as_user: str | None = None


@dataclass(frozen=True, kw_only=True)
class ActionContext:
    """What handlers may use: hardware and MQTT through their owners, data read-only, and
    the appliance's services as plain callables (no handler holds the appliance)."""

    state: ComputingState
    device_id: str
    #: where actions keep what survives a restart (stores, histories)
    state_dir: Path
    hal: Hal | None = None
    mqtt: MqttLink | None = None
    #: where triggers, outcomes and operator changes are logged for the live stream
    events: ActionEventLog = field(default_factory=ActionEventLog)
    #: a description of the appliance's fault (DSP loop stopped, ...) or None
    health: Callable[[], str | None] = _no_fault
    #: a graph node's type, timing and status by id (ValueError for an unknown id)
    node_statistics: Callable[[str], dict[str, Any]] = _no_statistics
    #: each node's parameters as written in the config (before validation), by node id
    raw_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: tells the appliance that something a status reader waits for changed (a reload)
    status_changed: Callable[[], None] = _nobody_listens
    #: for python_action handlers; None where no script may run
    scripts: ScriptsContext | None = None

    def fault(self) -> str | None:
        """The appliance's current fault, if any."""
        return self.health()


LATENCY_SAMPLES = 256


class ActionHandler:
    """Control-loop half of an action. Subclasses implement ``on_event`` (and optionally
    ``on_update``, ``on_tick``, ``start``, ``stop``, ``apply_operator_state``); exceptions are
    caught, counted and kept as ``last_error`` so one faulty action never stops the others.

    An operator can *disable* an action (its events are still evaluated and counted but not
    acted on: ``suppressed``) and *acknowledge* its active triggers (their repeats are
    suppressed until they clear; outputs show the acknowledged state). Both take effect
    through ``apply_operator_state``, which subclasses driving outputs override.
    """

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        self.node_id = node.node_id
        self.type_name = node.type_name
        self.params = node.params
        self.ctx = ctx
        self.monitored_nodes = node.monitored_nodes
        self.failure_log = LogLimiter(log, f"action {node.node_id}", FAILURE_LINES_PER_S)
        self.monitored = frozenset(node.monitored_nodes)
        self.engine = TriggerEngine(node.params.all_triggers(),
                                    monitored_nodes=node.monitored_nodes)
        self.history = HistoryBuffer(node.params.buffer_size)
        self.updates = self.triggers = self.clears = self.repeats = 0
        self.successes = self.failures = self.event_drops = self.coalesced = 0
        self._last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_event: dict[str, Any] | None = None
        self.latest: dict[str, ComputingResult] = {}
        self.enabled = True
        self.suppressed = 0
        #: active triggers an operator acknowledged (forgotten when they clear)
        self.acknowledged: set[str] = set()
        #: seconds from an event's data (its frame's wall time) to the action being done
        self.latency_s: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.events = ctx.events

    @property
    def last_error(self) -> str | None:
        """The newest error as ``Type: message`` (None before any)."""
        return self._last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self._last_error = value
        self.last_error_at = None if value is None else time.time()

    def error_info(self) -> dict[str, Any] | None:
        """The last error as type, message, file, line and time (file/line: None unless the
        error comes from a script)."""
        if self._last_error is None:
            return None
        type_name, sep, message = self._last_error.partition(": ")
        if not sep or not type_name.isidentifier():
            type_name, message = "", self._last_error
        return {"type": type_name or None, "message": message, "file": None, "line": None,
                "time": self.last_error_at}

    # ----------------------------------------------------------------- called by the loop
    def evaluate(self, results: list[ComputingResult], now: float) -> list[TriggerEvent]:
        """Feed new results of monitored nodes (the newest per node) to the trigger engine and
        the history (fast, synchronous)."""
        events: list[TriggerEvent] = []
        for result in results:
            self.updates += 1
            self.latest[result.node_id] = result
            if result.average is not None:  # a measurement cycle's average: all of it
                self.history.record("cycle_average", result.to_dict(),
                                    timestamp=result.timestamp)
            else:
                self.history.record("update", _result_summary(result),
                                    timestamp=result.timestamp)
            events.extend(self.engine.update(result, now))
        return events

    def tick_events(self, now: float) -> list[TriggerEvent]:
        """Time-driven events (data timeouts, repeats)."""
        return self.engine.tick(now)

    async def run_event(self, event: TriggerEvent) -> None:
        """Count, record and act on one event (unless disabled, or a repeat of an
        acknowledged trigger); never raises."""
        if event.kind == "trigger":
            self.triggers += 1
        elif event.kind == "clear":
            self.clears += 1
            self.acknowledged.discard(event.trigger_name)
        else:
            self.repeats += 1
        record = self.last_event = event.to_dict()
        if not self.enabled or (event.kind == "repeat"
                                and event.trigger_name in self.acknowledged):
            self._record_event(event, record)
            self.suppressed += 1
            return
        # act first: the log line and the two records (a journal write, a file append) run
        # as soon as on_event waits for its first I/O (a Python action's worker, a webhook),
        # not before it starts; an action that finishes without waiting gets them here.
        # Either way the event is recorded before its outcome.
        recorded = False

        def record_once() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record_event(event, record)

        pending = asyncio.get_running_loop().call_soon(record_once)
        start = time.perf_counter()
        try:
            ok = await self.on_event(event)
        except Exception as exc:  # a failing action is reported, never propagated
            ok = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failure_log.log(logging.WARNING, None, f"failed on {event.kind} "
                                 f"{event.trigger_name}: {self.last_error}")
        finally:
            pending.cancel()
            record_once()
        if ok:
            self.successes += 1
        else:
            self.failures += 1
        self.latency_s.append(max(0.0, time.time() - event.timestamp))
        outcome = {"event": event.kind, "trigger": event.trigger_name, "success": ok,
                   "error": None if ok else self.last_error,
                   "duration_ms": round((time.perf_counter() - start) * 1e3, 3)}
        self.history.record("outcome", outcome)
        self.events.record(self.node_id, "outcome", outcome)

    def _record_event(self, event: TriggerEvent, record: dict[str, Any]) -> None:
        """Log and record one event (the journal line, the history, the event log)."""
        log_event(self.node_id, event)
        self.history.record(event.kind, record, timestamp=event.timestamp)
        self.events.record(self.node_id, event.kind, record, event.timestamp)

    # ------------------------------------------------------------- operator changes
    async def set_enabled(self, enabled: bool) -> None:
        """Enable or disable the action (a disabled action puts its outputs in their
        resting state and suppresses its events)."""
        if enabled == self.enabled:
            return
        self.enabled = enabled
        self.history.record("enabled" if enabled else "disabled")
        self.events.record(self.node_id, "enabled" if enabled else "disabled", {})
        await self.apply_operator_state()

    async def acknowledge(self) -> list[str]:
        """Acknowledge every active trigger; returns their names (empty: nothing active)."""
        active = self.engine.active
        if not active:
            return []
        self.acknowledged.update(active)
        self.history.record("acknowledged", {"triggers": active})
        self.events.record(self.node_id, "acknowledged", {"triggers": active})
        await self.apply_operator_state()
        return active

    @property
    def unacknowledged_active(self) -> list[str]:
        """Active triggers nobody acknowledged (what outputs should still signal)."""
        return [n for n in self.engine.active if n not in self.acknowledged]

    async def run_update(self) -> None:
        """Give the latest results to ``on_update`` (not while disabled); never raises."""
        if not self.enabled:
            return
        try:
            await self.on_update(dict(self.latest))
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failure_log.log(logging.WARNING, None, f"failed on update: {self.last_error}")

    # ------------------------------------------------------------------- to implement
    async def start(self) -> None:
        """Called once on the control loop before any event."""

    async def stop(self) -> None:
        """Called once at shutdown; leave hardware in its safe state."""

    async def on_event(self, event: TriggerEvent) -> bool:
        """Act on a trigger, clear or repeat; return True on success."""
        raise NotImplementedError

    async def on_update(self, latest: dict[str, ComputingResult]) -> None:
        """Called after each batch of new results with the latest one per monitored node."""

    async def on_tick(self, now: float) -> None:
        """Called every control-loop tick (~10 Hz while ``needs_fast_ticks``)."""

    def needs_fast_ticks(self) -> bool:
        """Whether this action needs the control loop's ticks at ``tick_s`` (10 Hz): data
        timeouts and repeats are checked on ticks, and built-in outputs (LED patterns,
        relay holds, periodic publishing) run on them. Actions that need neither say so, and
        while every action says so the loop ticks once a second: each tick wakes the control
        thread, which costs the DSP thread a hand-over of the GIL."""
        return True

    async def apply_operator_state(self) -> None:
        """Bring outputs in line with ``enabled`` and ``acknowledged`` (after a change)."""

    @property
    def failed(self) -> bool:
        """True when the action cannot act any more until someone fixes it (a script that
        kept dying); built-in actions never are."""
        return False

    def condition(self) -> str:
        """One word for dashboards: failed, disabled, idle, active or acknowledged (every
        active trigger acknowledged)."""
        if self.failed:
            return "failed"
        if not self.enabled:
            return "disabled"
        active = self.engine.active
        if not active:
            return "idle"
        if all(name in self.acknowledged for name in active):
            return "acknowledged"
        return "active"

    def outputs(self) -> dict[str, str]:
        """The outputs this action drives and their state, as ``"relay:pump": "on"``."""
        return {}

    def get_status(self) -> dict[str, Any]:
        """Counters, trigger states, outputs and last error; JSON-safe. Subclasses add their
        own keys (``super().get_status()`` first); docs/status.md lists them."""
        return {
            "type": self.type_name,
            "state": self.condition(),
            "outputs": self.outputs(),
            "monitored_nodes": self.monitored_nodes,
            "updates": self.updates,
            "triggers": self.triggers,
            "clears": self.clears,
            "repeats": self.repeats,
            "successes": self.successes,
            "failures": self.failures,
            "coalesced": self.coalesced,
            "event_drops": self.event_drops,
            "enabled": self.enabled,
            "suppressed": self.suppressed,
            "acknowledged": sorted(self.acknowledged),
            "active_triggers": self.engine.active,
            "last_event": self.last_event,
            "last_error": self.last_error,
            "history": {"count": len(self.history), "capacity": self.history.capacity},
            "engine": self.engine.get_status(),
        }


_UNITS = {"concentration": " ppm", "frequency_deviation": " Hz", "data_timeout": " s"}


def _number(value: float | None, unit: str) -> str:
    return "--" if value is None or not math.isfinite(value) else f"{value:.6g}{unit}"


def describe_event(action_id: str, event: TriggerEvent) -> str:
    """One readable line for an event: action, trigger, value and threshold.

    >>> from firmware.actions.triggers import TriggerEvent
    >>> describe_event("relay", TriggerEvent("trigger", "high_gas", "concentration",
    ...     2153.25, 2000.0, "conc", 0.0, 0.0, {"direction": "above"}))
    'action relay: trigger high_gas fired: concentration 2153.25 ppm above 2000 ppm (node conc)'
    """
    unit = _UNITS.get(event.trigger_type, "")
    verb = {"trigger": "fired", "clear": "cleared", "repeat": "still active"}.get(
        event.kind, event.kind)
    if event.trigger_type == "data_timeout":
        what = (f"no result for {_number(event.value, unit)} (timeout "
                f"{_number(event.threshold, unit)})")
    elif event.trigger_type == "frequency_deviation":
        what = (f"frequency {_number(event.value, unit)}, "
                f"{_number(event.data.get('deviation_hz'), unit)} from the expected "
                f"{_number(event.data.get('expected_hz'), unit)} (max "
                f"{_number(event.threshold, unit)})")
    elif event.value is None and event.threshold is None:
        what = "custom trigger"
    elif event.kind == "clear":
        what = (f"{event.trigger_type} {_number(event.value, unit)}, back past "
                f"{_number(event.threshold, unit)} with hysteresis "
                f"{_number(event.data.get('hysteresis'), unit)}")
    else:
        what = (f"{event.trigger_type} {_number(event.value, unit)} "
                f"{event.data.get('direction', 'vs')} {_number(event.threshold, unit)}")
    node = f" (node {event.source_node_id})" if event.source_node_id else ""
    return f"action {action_id}: trigger {event.trigger_name} {verb}: {what}{node}"


def log_event(action_id: str, event: TriggerEvent) -> None:
    """Log a trigger crossing (WARNING) or a clear or repeat (INFO): an operator reading the
    journal sees why a relay switched without the dashboard."""
    level = logging.WARNING if event.kind == "trigger" else logging.INFO
    log.log(level, "%s", describe_event(action_id, event))


def _result_summary(result: ComputingResult) -> dict[str, Any]:
    """The history entry of a result: its identity and values, NaN as None."""
    def clean(v: float) -> float | None:
        return v if math.isfinite(v) else None

    summary = {"node_id": result.node_id, "sequence": result.sequence,
               "detected": result.detected, "frequency_hz": clean(result.frequency_hz),
               "amplitude": clean(result.amplitude),
               "concentration_ppm": clean(result.concentration_ppm)}
    if result.phase is not None:  # captured during a measurement cycle's phase
        summary["phase"] = result.phase
    return summary
