"""Trigger settings and the trigger engine: when a stream of results becomes an event.

The engine runs on the DSP thread for every result (~12 per second per node), so it does no
I/O, builds no dict or string per frame (only when an event is emitted) and holds its lock for
microseconds; the control loop calls :meth:`TriggerEngine.tick` for the time-driven checks.

Semantics, for every value trigger (threshold, frequency deviation) and every node it watches:

- **Crossing only.** An inactive trigger fires once when a value reaches its threshold
  (``above``: value >= above; ``below``: value <= below; frequency: |f - expected| >
  max_deviation_hz) and becomes *active*; further values beyond the threshold emit nothing.
- **Clear once.** An active trigger emits exactly one ``clear`` when a value passes back beyond
  the hysteresis band (``above``: value < above - hysteresis; ``below``: value > below +
  hysteresis; frequency: deviation <= max_deviation_hz - hysteresis_hz). Values inside the band
  keep it active; the next crossing after a clear fires again.
- **No value, no change.** Undetected results and NaN/infinite values neither fire nor clear.
- **Cooldown.** ``cooldown_s`` counts from the last ``trigger`` event of that trigger and node
  (repeats and clears do not restart it). A crossing inside the cooldown is *suppressed*: no
  event, the trigger stays inactive (so no ``clear`` follows either) and ``suppressed`` counts
  it once per excursion. If the value is still beyond the threshold when the cooldown ends, the
  first result after it fires (``data["after_cooldown"] = True``): a persisting alarm condition
  is delayed, never lost. If the value went back before the cooldown ended, nothing is emitted.
- **Repeat.** While active, ``repeat_s`` emits a ``repeat`` event every repeat_s after the
  trigger (at most one per check; after a stall the schedule restarts from now, no burst).
  Repeats stop at the clear.
- **Per node.** A trigger without ``node`` watches every monitored node that produces its value
  (concentration: ``concentration`` results; amplitude, amplitude_db: ``peak`` and ``lockin``;
  frequency: ``peak``), with separate state, cooldown and repeats per node. An explicit ``node``
  is watched whatever its kind, even if it is not in ``monitored_nodes``. An empty
  ``monitored_nodes`` means every node.
- **Evaluate.** ``evaluate: all`` (the default) evaluates every frame's result;
  ``measure_phase`` only results stamped with a measure phase of the measurement cycle (others
  neither fire nor clear); ``cycle_average`` only the cycle's ``cycle_average`` results, routed
  by the node they average (per inlet, each its own state). Event data carry the result's
  ``phase``, and for an average its ``inlet``, ``cycle``, ``n`` and standard deviations.
- **Data timeout.** Fires when a node's last fresh result (a new sequence or monotonic time,
  detected or not) is older than ``timeout_s`` by its own monotonic timestamp; before the first
  result the clock starts at the engine's first update or tick (or ``start_monotonic``). The
  first fresh result afterwards emits the clear.

``update`` also runs the time-driven checks, so a caller that only feeds results still gets
repeats and timeouts of other nodes; ``tick`` covers the time when no result arrives at all.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from firmware.errors import ActionError
from firmware.state import ComputingResult, iso_utc
from firmware.strict_model import StrictModel

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
EventKind = Literal["trigger", "clear", "repeat"]
#: which results a value trigger evaluates: every frame's, only those captured in a measure
#: phase of the measurement cycle, or only the cycle's averages over each measure phase
Evaluate = Literal["all", "measure_phase", "cycle_average"]

_RESULT_KINDS: dict[str, frozenset[str]] = {
    "concentration": frozenset({"concentration"}),
    "amplitude": frozenset({"peak", "lockin"}),
    "amplitude_db": frozenset({"peak", "lockin"}),
    "frequency_deviation": frozenset({"peak"}),
}
_FIELDS = {"concentration": "concentration_ppm", "amplitude": "amplitude",
           "amplitude_db": "amplitude_db", "frequency_deviation": "frequency_hz"}


class _ValueTrigger(StrictModel):
    """Options shared by the value triggers: which node, cooldown and repeat period."""

    name: Name | None = None
    node: str | None = None
    cooldown_s: NonNegative = 0.0
    repeat_s: Positive | None = None
    evaluate: Evaluate = "all"


class ThresholdTrigger(_ValueTrigger):
    """Fires when a concentration or amplitude crosses ``above`` or ``below`` (exactly one)."""

    type: Literal["threshold"] = "threshold"
    kind: Literal["concentration", "amplitude", "amplitude_db"]
    above: Finite | None = None
    below: Finite | None = None
    hysteresis: NonNegative = 0.0

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdTrigger:
        if (self.above is None) == (self.below is None):
            got = f"both (above={self.above}, below={self.below})" if self.above is not None \
                else "neither"
            raise ValueError(f"a threshold trigger needs exactly one of 'above' or 'below', "
                             f"got {got}")
        if self.name is None:  # default: "concentration", "amplitude_below", ...
            self.__dict__["name"] = self.kind if self.above is not None else f"{self.kind}_below"
        return self

    @property
    def threshold(self) -> float:
        """The configured threshold, whichever direction it has."""
        if self.above is not None:
            return self.above
        assert self.below is not None  # guaranteed by the validator
        return self.below


class FrequencyDeviationTrigger(_ValueTrigger):
    """Fires when the peak frequency leaves ``expected_hz ± max_deviation_hz`` (either side)."""

    type: Literal["frequency_deviation"] = "frequency_deviation"
    expected_hz: Positive
    max_deviation_hz: Positive
    hysteresis_hz: NonNegative = 0.0

    @model_validator(mode="after")
    def _band(self) -> FrequencyDeviationTrigger:
        if self.hysteresis_hz >= self.max_deviation_hz:
            raise ValueError(f"hysteresis_hz ({self.hysteresis_hz}) must be smaller than "
                             f"max_deviation_hz ({self.max_deviation_hz}), or it never clears")
        if self.name is None:
            self.__dict__["name"] = "frequency_deviation"
        return self


class DataTimeoutTrigger(StrictModel):
    """Fires when ``node`` has produced no fresh result for ``timeout_s``; clears on fresh data."""

    type: Literal["data_timeout"] = "data_timeout"
    name: Name | None = None
    node: str
    timeout_s: Positive

    @model_validator(mode="after")
    def _default_name(self) -> DataTimeoutTrigger:
        if self.name is None:
            self.__dict__["name"] = f"data_timeout_{self.node}"
        return self


class CustomTrigger(StrictModel):
    """A named event fired by code (``TriggerEngine.fire_custom``); never active, no clear."""

    type: Literal["custom"] = "custom"
    name: Name


class CalibrationDueTrigger(StrictModel):
    """Fires when the calibration falls due (``level: due``, which includes overdue) or
    overdue; clears once a new calibration is active. It reads the ``calibration_due`` /
    ``calibration_overdue`` flag every result carries (docs/calibration.md)."""

    type: Literal["calibration_due"] = "calibration_due"
    name: Name | None = None
    level: Literal["due", "overdue"] = "due"

    @model_validator(mode="after")
    def _default_name(self) -> CalibrationDueTrigger:
        if self.name is None:
            self.__dict__["name"] = f"calibration_{self.level}"
        return self


TriggerSettings = Annotated[
    ThresholdTrigger | FrequencyDeviationTrigger | DataTimeoutTrigger | CustomTrigger
    | CalibrationDueTrigger,
    Field(discriminator="type"),
]


def triggers_from_shorthand(concentration_threshold: float | None,
                            amplitude_threshold: float | None) -> list[TriggerSettings]:
    """The design study's ``concentration_threshold``/``amplitude_threshold``: both mean above."""
    out: list[TriggerSettings] = []
    if concentration_threshold is not None:
        out.append(ThresholdTrigger(kind="concentration", above=concentration_threshold))
    if amplitude_threshold is not None:
        out.append(ThresholdTrigger(kind="amplitude", above=amplitude_threshold))
    return out


def _json_float(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """One trigger, clear or repeat. ``timestamp`` is the epoch time of the data that caused
    it (results) or of the wall clock (time-driven and custom events)."""

    kind: EventKind
    trigger_name: str
    trigger_type: str
    value: float | None
    threshold: float | None
    source_node_id: str | None
    monotonic: float
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: non-finite floats become None, time as ISO 8601 UTC."""
        return {
            "kind": self.kind, "trigger_name": self.trigger_name,
            "trigger_type": self.trigger_type, "value": _json_float(self.value),
            "threshold": _json_float(self.threshold), "source_node_id": self.source_node_id,
            "monotonic": self.monotonic, "timestamp": self.timestamp,
            "time": iso_utc(self.timestamp),
            "data": {k: _json_float(v) for k, v in self.data.items()},
        }


class _Rule:
    """Constants of one trigger plus its counters (shared by the per-node states)."""

    __slots__ = ("clear_level", "cleared", "cooldown_s", "deviation", "evaluate", "expected",
                 "field", "fire_level", "fired", "hysteresis", "name", "node", "repeat_s",
                 "repeats", "result_kinds", "settings", "sign", "strict", "suppressed", "threshold",
                 "trigger_type")

    def __init__(self, s: ThresholdTrigger | FrequencyDeviationTrigger) -> None:
        self.settings, self.name, self.node = s, s.name or "", s.node
        self.cooldown_s, self.repeat_s = s.cooldown_s, s.repeat_s
        self.evaluate = s.evaluate
        self.fired = self.cleared = self.repeats = self.suppressed = 0
        self.trigger_type: str  # a threshold's kind, or "frequency_deviation"
        if isinstance(s, ThresholdTrigger):
            self.trigger_type, self.threshold, self.hysteresis = s.kind, s.threshold, s.hysteresis
            self.deviation, self.expected, self.strict = False, 0.0, False
            # Values are compared as sign * value so "below" reuses the "above" comparisons.
            self.sign = 1.0 if s.above is not None else -1.0
            self.fire_level = self.sign * self.threshold
            self.clear_level = self.fire_level - s.hysteresis
        else:
            self.trigger_type, self.threshold = "frequency_deviation", s.max_deviation_hz
            self.hysteresis, self.deviation, self.expected = s.hysteresis_hz, True, s.expected_hz
            self.sign, self.strict = 1.0, True
            self.fire_level, self.clear_level = s.max_deviation_hz, s.max_deviation_hz - \
                s.hysteresis_hz
        self.field = _FIELDS[self.trigger_type]
        self.result_kinds = _RESULT_KINDS[self.trigger_type]

    def data(self, value: float) -> dict[str, Any]:
        """Event details (built only when an event is emitted)."""
        if self.deviation:
            return {"expected_hz": self.expected, "deviation_hz": abs(value - self.expected),
                    "hysteresis_hz": self.hysteresis}
        return {"direction": "above" if self.sign > 0 else "below",
                "hysteresis": self.hysteresis}


class _State:
    """Mutable state of one value trigger for one node."""

    __slots__ = ("active", "fired_at", "last_value", "next_repeat", "node_id", "pending", "rule")

    def __init__(self, rule: _Rule, node_id: str) -> None:
        self.rule, self.node_id, self.active, self.pending = rule, node_id, False, False
        self.fired_at, self.next_repeat, self.last_value = -math.inf, math.inf, math.nan


class _Timeout:
    """State of one data-timeout trigger."""

    __slots__ = ("active", "cleared", "fired", "last_monotonic", "name", "node", "timeout_s")

    def __init__(self, s: DataTimeoutTrigger) -> None:
        self.name, self.node, self.timeout_s = s.name or "", s.node, s.timeout_s
        self.active, self.fired, self.cleared = False, 0, 0
        self.last_monotonic: float | None = None


class _FlagWatch:
    """State of one calibration-due trigger: active while results carry one of ``flags``."""

    __slots__ = ("active", "cleared", "fired", "flags", "name")

    def __init__(self, s: CalibrationDueTrigger) -> None:
        self.name = s.name or ""
        self.flags = (("calibration_due", "calibration_overdue") if s.level == "due"
                      else ("calibration_overdue",))
        self.active, self.fired, self.cleared = False, 0, 0


class _Route:
    """Everything that applies to one node id, resolved at its first result."""

    __slots__ = ("last_monotonic", "last_sequence", "states", "timeouts")

    def __init__(self, states: tuple[_State, ...], timeouts: tuple[_Timeout, ...]) -> None:
        self.states, self.timeouts = states, timeouts
        self.last_sequence, self.last_monotonic = -1, -math.inf


class TriggerEngine:
    """Evaluates triggers on results and on time; thread-safe, cheap enough for every frame.

    >>> engine = TriggerEngine([ThresholdTrigger(kind="concentration", above=1000)],
    ...                        monitored_nodes=["co2"])
    >>> r = ComputingResult("co2", "concentration", 0.0, 1.0, 1, True, concentration_ppm=1200)
    >>> [e.kind for e in engine.update(r, 1.0)]
    ['trigger']
    """

    def __init__(self, triggers: list[TriggerSettings], *, monitored_nodes: list[str],
                 start_monotonic: float | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        names = [t.name or "" for t in triggers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ActionError(f"trigger names must be unique, {dupes} appear more than once: "
                              f"give each trigger its own 'name'")
        self._monitored = frozenset(monitored_nodes)
        self._rules = [_Rule(t) for t in triggers
                       if isinstance(t, ThresholdTrigger | FrequencyDeviationTrigger)]
        self._timeouts = [_Timeout(t) for t in triggers if isinstance(t, DataTimeoutTrigger)]
        self._custom = {t.name: 0 for t in triggers if isinstance(t, CustomTrigger)}
        self._flag_watches = [_FlagWatch(t) for t in triggers
                              if isinstance(t, CalibrationDueTrigger)]
        self._order = names
        self._routes: dict[str, _Route] = {}
        self._repeating: list[_State] = []
        self._states: list[_State] = []
        self._start = start_monotonic
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._updates = self._events = 0
        self._measure_phases: frozenset[str] = frozenset()

    def set_measure_phases(self, names: frozenset[str]) -> None:
        """The measurement cycle's measure phases (``evaluate: measure_phase`` triggers
        evaluate only results stamped with one of them)."""
        self._measure_phases = frozenset(names)

    def update(self, result: ComputingResult, now_monotonic: float) -> list[TriggerEvent]:
        """Evaluate a new result (a repeated delivery of the same result is ignored)."""
        events: list[TriggerEvent] = []
        with self._lock:
            if self._start is None:
                self._start = now_monotonic
            self._updates += 1
            route = self._routes.get(result.node_id) or self._route(result)
            if result.sequence != route.last_sequence or result.monotonic != \
                    route.last_monotonic:
                route.last_sequence, route.last_monotonic = result.sequence, result.monotonic
                for timeout in route.timeouts:
                    self._fresh(timeout, result, now_monotonic, events)
                for watch in self._flag_watches:
                    self._watch_flags(watch, result, now_monotonic, events)
                if result.detected:
                    measure = result.phase in self._measure_phases
                    for state in route.states:
                        if state.rule.evaluate != "measure_phase" or measure:
                            self._evaluate(state, result, now_monotonic, events)
            self._time_checks(now_monotonic, events)
            self._events += len(events)
        return events

    def tick(self, now_monotonic: float) -> list[TriggerEvent]:
        """Time-driven checks: data timeouts and repeats. Call it a few times per second."""
        events: list[TriggerEvent] = []
        with self._lock:
            if self._start is None:
                self._start = now_monotonic
            self._time_checks(now_monotonic, events)
            self._events += len(events)
        return events

    def fire_custom(self, name: str, data: Mapping[str, Any] | None = None,
                    now_monotonic: float | None = None) -> TriggerEvent:
        """Emit the declared custom trigger ``name`` (a momentary event: never active)."""
        if name not in self._custom:
            raise ActionError(f"custom trigger {name!r} is not declared; declared custom "
                              f"triggers: {sorted(self._custom) or 'none'}")
        now = time.monotonic() if now_monotonic is None else now_monotonic
        event = TriggerEvent("trigger", name, name, None, None, None, now, self._wall(),
                             dict(data or {}))
        with self._lock:
            self._custom[name] += 1
            self._events += 1
        return event

    @property
    def time_driven(self) -> bool:
        """Whether ``tick`` can fire anything: a data timeout or a repeating trigger."""
        return bool(self._timeouts) or any(r.repeat_s is not None for r in self._rules)

    @property
    def active(self) -> list[str]:
        """Names of the triggers active on at least one node, in configuration order."""
        with self._lock:
            on = {s.rule.name for s in self._states if s.active}
            on.update(t.name for t in self._timeouts if t.active)
            on.update(w.name for w in self._flag_watches if w.active)
        return [n for n in self._order if n in on]

    def get_status(self) -> dict[str, Any]:
        """Counters and state of every trigger (a new dict each call, JSON-safe)."""
        with self._lock:
            triggers: dict[str, dict[str, Any]] = {}
            for rule in self._rules:
                nodes = sorted(s.node_id for s in self._states if s.rule is rule and s.active)
                triggers[rule.name] = {
                    "type": rule.trigger_type, "active": bool(nodes), "active_nodes": nodes,
                    "fired": rule.fired, "cleared": rule.cleared, "repeats": rule.repeats,
                    "suppressed": rule.suppressed}
            for t in self._timeouts:
                triggers[t.name] = {"type": "data_timeout", "active": t.active,
                                    "active_nodes": [t.node] if t.active else [],
                                    "fired": t.fired, "cleared": t.cleared}
            for w in self._flag_watches:
                triggers[w.name] = {"type": "calibration_due", "active": w.active,
                                    "active_nodes": [], "fired": w.fired,
                                    "cleared": w.cleared}
            for name, count in self._custom.items():
                triggers[name] = {"type": "custom", "active": False, "active_nodes": [],
                                  "fired": count}
            return {"updates": self._updates, "events": self._events,
                    "active": [n for n in self._order if triggers[n]["active"]],
                    "triggers": triggers}

    # -- internals (called with the lock held) ------------------------------------------

    def _route(self, result: ComputingResult) -> _Route:
        node, kind = result.node_id, result.kind
        if result.average is not None:  # a cycle average: routed by the node it averages
            source = result.source_node_id
            watched = not self._monitored or source in self._monitored
            kind = result.average.source_kind
            states = tuple(_State(r, node) for r in self._rules if r.evaluate == "cycle_average"
                           and (r.node in (node, source) or (r.node is None and watched
                                                             and kind in r.result_kinds)))
        else:
            watched = not self._monitored or node in self._monitored
            states = tuple(_State(r, node) for r in self._rules
                           if r.evaluate != "cycle_average" and (
                               r.node == node or (r.node is None and watched
                                                  and kind in r.result_kinds)))
        self._states.extend(states)
        self._repeating.extend(s for s in states if s.rule.repeat_s is not None)
        route = _Route(states, tuple(t for t in self._timeouts if t.node == node))
        self._routes[node] = route
        return route

    def _evaluate(self, st: _State, result: ComputingResult, now: float,
                  events: list[TriggerEvent]) -> None:
        rule = st.rule
        value = getattr(result, rule.field)
        if not math.isfinite(value):
            return
        st.last_value = value
        x = abs(value - rule.expected) if rule.deviation else rule.sign * value
        if st.active:
            if (x <= rule.clear_level) if rule.strict else (x < rule.clear_level):
                st.active, st.next_repeat = False, math.inf
                rule.cleared += 1
                data = rule.data(value)
                data["active_for_s"] = now - st.fired_at
                _describe_result(result, data)
                events.append(TriggerEvent("clear", rule.name, rule.trigger_type, value,
                                           rule.threshold, st.node_id, now, result.timestamp,
                                           data))
            return
        if not ((x > rule.fire_level) if rule.strict else (x >= rule.fire_level)):
            st.pending = False
            return
        if now - st.fired_at < rule.cooldown_s:
            if not st.pending:
                st.pending = True
                rule.suppressed += 1
            return
        data = rule.data(value)
        _describe_result(result, data)
        if st.pending:
            data["after_cooldown"] = True
        st.active, st.pending, st.fired_at = True, False, now
        st.next_repeat = now + rule.repeat_s if rule.repeat_s is not None else math.inf
        rule.fired += 1
        events.append(TriggerEvent("trigger", rule.name, rule.trigger_type, value,
                                   rule.threshold, st.node_id, now, result.timestamp, data))

    def _fresh(self, t: _Timeout, result: ComputingResult, now: float,
               events: list[TriggerEvent]) -> None:
        if t.active:
            silent = result.monotonic - self._baseline(t)
            t.active = False
            t.cleared += 1
            events.append(TriggerEvent("clear", t.name, "data_timeout", silent, t.timeout_s,
                                       t.node, now, result.timestamp, {"silent_for_s": silent}))
        t.last_monotonic = result.monotonic

    def _watch_flags(self, w: _FlagWatch, result: ComputingResult, now: float,
                     events: list[TriggerEvent]) -> None:
        flags = result.flags
        raised = bool(flags) and any(f in flags for f in w.flags)
        if raised == w.active:
            return
        w.active = raised
        if raised:
            w.fired += 1
        else:
            w.cleared += 1
        events.append(TriggerEvent("trigger" if raised else "clear", w.name, "calibration_due",
                                   None, None, result.node_id, now, result.timestamp,
                                   {"flags": [f for f in flags if f.startswith("calibration")]}))

    def _baseline(self, t: _Timeout) -> float:
        if t.last_monotonic is not None:
            return t.last_monotonic
        return self._start if self._start is not None else 0.0

    def _time_checks(self, now: float, events: list[TriggerEvent]) -> None:
        for t in self._timeouts:
            if not t.active:
                elapsed = now - self._baseline(t)
                if elapsed >= t.timeout_s:
                    t.active = True
                    t.fired += 1
                    events.append(TriggerEvent(
                        "trigger", t.name, "data_timeout", elapsed, t.timeout_s, t.node, now,
                        self._wall(), {"elapsed_s": elapsed, "never_seen": t.last_monotonic
                                       is None}))
        for st in self._repeating:
            if st.active and now >= st.next_repeat:
                rule = st.rule
                rule.repeats += 1
                period = rule.repeat_s or math.inf
                st.next_repeat += period
                if st.next_repeat <= now:
                    st.next_repeat = now + period
                data = rule.data(st.last_value)
                data["active_for_s"] = now - st.fired_at
                events.append(TriggerEvent("repeat", rule.name, rule.trigger_type, st.last_value,
                                           rule.threshold, st.node_id, now, self._wall(), data))


def _describe_result(result: ComputingResult, data: dict[str, Any]) -> None:
    """Add the cycle phase (and, for a cycle average, its inlet, n and spread) to an event's
    data: actions and scripts see which part of the cycle fired."""
    if result.phase is not None:
        data["phase"] = result.phase
    if result.average is not None:
        data["inlet"] = result.average.inlet
        data["cycle"] = result.average.cycle
        data["n"] = result.average.n
        data["concentration_std"] = result.average.concentration_std
        data["amplitude_std"] = result.average.amplitude_std
