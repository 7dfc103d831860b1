"""The API's payloads, built from a running appliance (shapes: ``schemas.py``).

Everything here reads: results from ComputingState (lock-free), action state the handlers
publish as plain attributes, HAL state through its locks. Nothing waits for the DSP thread or
the control loop.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from firmware.actions.base import ActionHandler
from firmware.actions.triggers import DataTimeoutTrigger, ThresholdTrigger
from firmware.app.release import release_id
from firmware.state import iso_utc
from firmware.stats import latency_summary

if TYPE_CHECKING:
    from firmware.app.appliance import Appliance
    from firmware.app.rates import RateSampler


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_utc(epoch)


def _finite(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


# ----------------------------------------------------------------------------- actions
#: the counters of an action's status that ``ActionSummary`` carries
COUNTERS = ("updates", "triggers", "clears", "repeats", "successes", "failures",
            "suppressed", "event_drops")


def thresholds(handler: ActionHandler) -> list[dict[str, Any]]:
    """The action's threshold triggers, as lines a trend chart can draw."""
    lines = []
    for trigger in handler.params.all_triggers():
        if isinstance(trigger, ThresholdTrigger):
            lines.append({"action": handler.node_id, "trigger": trigger.name or "",
                          "kind": trigger.kind, "above": trigger.above,
                          "below": trigger.below, "hysteresis": trigger.hysteresis})
    return lines


def _alarm_triggers(handler: ActionHandler) -> set[str]:
    """Triggers that mean an alarm (not data timeouts, which mean stale data)."""
    return {t.name or "" for t in handler.params.all_triggers()
            if not isinstance(t, DataTimeoutTrigger)}


def _last_trigger(handler: ActionHandler) -> dict[str, Any] | None:
    event = handler.last_event
    if event is None:
        return None
    return {"kind": event.get("kind", ""), "trigger": event.get("trigger_name") or "",
            "node_id": event.get("source_node_id"), "value": _finite(event.get("value")),
            "timestamp": event["timestamp"], "time": event.get("time") or
            iso_utc(event["timestamp"])}


def _error(handler: ActionHandler) -> dict[str, Any] | None:
    info = handler.error_info()
    if info is None:
        return None
    return {"type": info.get("type"), "message": info.get("message") or "",
            "file": info.get("file"), "line": info.get("line"), "time": _iso(info.get("time"))}


def _script(status: dict[str, Any]) -> dict[str, Any] | None:
    """The script part of a python_action's status (None for other actions)."""
    worker = status.get("worker")
    if not isinstance(worker, dict):
        return None
    return {"path": worker["script"], "class_name": worker["class_name"],
            "worker_state": worker["state"], "reloads": worker["reloads"],
            "reload_failures": worker["reload_failures"], "restarts": worker["restarts"]}


def action_summary(handler: ActionHandler, *, details: bool = True) -> dict[str, Any]:
    """``ActionSummary``, built from the action's own ``get_status()`` (``details``: all of
    it under ``details``)."""
    status = handler.get_status()
    return {
        "id": handler.node_id, "type": status["type"], "enabled": status["enabled"],
        "state": status["state"], "monitored_nodes": list(status["monitored_nodes"]),
        "active_triggers": status["active_triggers"],
        "acknowledged_triggers": status["acknowledged"],
        "counters": {key: status[key] for key in COUNTERS},
        "last_trigger": _last_trigger(handler), "last_error": _error(handler),
        "latency_ms": latency_summary(handler.latency_s), "thresholds": thresholds(handler),
        "outputs": status["outputs"], "script": _script(status),
        "details": status if details else {},
    }


def history(handler: ActionHandler, limit: int, kinds: set[str] | None) -> dict[str, Any]:
    """``HistoryResponse``: the newest ``limit`` entries (of ``kinds`` when given)."""
    entries = handler.history.recent()
    if kinds:
        entries = [e for e in entries if e.kind in kinds]
    entries = entries[-limit:] if limit > 0 else []
    return {"id": handler.node_id, "capacity": handler.history.capacity,
            "count": len(entries),
            "entries": [{"kind": e.kind, "timestamp": e.timestamp, "time": iso_utc(e.timestamp),
                         "data": e.data} for e in entries]}


# ------------------------------------------------------------------------- appliance
def results(appliance: Appliance) -> dict[str, Any]:
    """``ResultsResponse``."""
    now = time.time()
    return {"timestamp": now, "time": iso_utc(now),
            "results": {r.node_id: r.to_dict() for r in appliance.analyzer.latest_results()}}


def health(appliance: Appliance) -> dict[str, Any]:
    """``HealthStatus``: fault, stale data, alarms (acknowledged or not)."""
    analyzer = appliance.analyzer
    alarms = []
    for handler in appliance.handlers:
        if not handler.enabled:
            continue
        alarm_names = _alarm_triggers(handler)
        for name in handler.engine.active:
            if name in alarm_names:
                alarms.append({"action": handler.node_id, "trigger": name,
                               "acknowledged": name in handler.acknowledged})
    latest = analyzer.latest_results()
    age = min((r.age_s() for r in latest), default=None)
    frame_s = analyzer.frame_size / analyzer.sample_rate
    if analyzer.fault:
        state = "fault"
    elif age is None or age > max(5 * frame_s, 2.0):
        state = "stale"
    elif any(not a["acknowledged"] for a in alarms):
        state = "alarm"
    elif alarms:
        state = "acknowledged"
    else:
        state = "ok"
    return {"state": state, "fault": analyzer.fault, "alarms": alarms,
            "result_age_s": None if age is None else round(age, 3)}


def _mqtt(appliance: Appliance) -> dict[str, Any]:
    if appliance.mqtt is None:
        return {"enabled": False, "connected": False, "outbox_pending": 0,
                "outbox_dropped": 0}
    status = appliance.mqtt.get_status()
    outbox = status.get("outbox") or {}
    return {"enabled": True, "connected": bool(status.get("connected")),
            "outbox_pending": int(outbox.get("pending") or 0),
            "outbox_dropped": int(outbox.get("dropped") or 0)}


def status(appliance: Appliance, rates: RateSampler, process: dict[str, Any],
           web: dict[str, Any]) -> dict[str, Any]:
    """``ApplianceStatus``."""
    analyzer = appliance.analyzer
    cfg = appliance.doc.config
    now = time.time()
    return {
        "device": {"id": cfg.device.id, "name": cfg.device.name, "gas": cfg.device.gas},
        "writes_enabled": bool(cfg.web.token),
        "version": analyzer.get_status()["version"],
        "timestamp": now, "time": iso_utc(now),
        "uptime_s": round(time.monotonic() - appliance.started_monotonic, 3),
        "source": cfg.acquisition.source, "source_status": analyzer.source.get_status(),
        "sample_rate": analyzer.sample_rate, "frame_size": analyzer.frame_size,
        "frames": analyzer.frames, "frames_per_s": rates.frames_per_s,
        "realtime_factor": rates.realtime_factor, "overruns": analyzer.overruns,
        "dsp_cpu_percent": rates.dsp_cpu_percent, "process": process,
        "health": health(appliance), "mqtt": _mqtt(appliance), "web": web,
        "release": release_id(),
        "cycle": cycle(appliance),
    }


def cycle(appliance: Appliance) -> dict[str, Any]:
    """``CycleStatus``: the measurement cycle's state (``off`` without one)."""
    if appliance.cycle is None:
        return {"enabled": False, "state": "off", "reason": None, "cycle": 0, "inlet": None,
                "phase": None, "measure": False, "phase_index": None,
                "phase_duration_s": None, "phase_ends": None, "time_left_s": None,
                "cycles_completed": 0, "averages_published": 0, "phases": [], "inlets": [],
                "repeat": None, "nodes": [], "averages": {}}
    status = appliance.cycle.get_status()
    status.pop("tap_dropped", None)
    return {"enabled": True, **status}


def graph(appliance: Appliance) -> dict[str, Any]:
    """``GraphResponse``: the configured nodes, timed by the running (maybe fused) graph."""
    analyzer = appliance.analyzer
    running = analyzer.graph.get_status()["nodes"]
    by_type = {n.node_id: n for n in analyzer.graph.nodes}
    graph_cfg = appliance.doc.config.processing.default_graph
    nodes = []
    for node in graph_cfg.nodes:
        live = dict(running.get(node.id) or {})
        live.pop("type", None)
        timing = live.pop("timing", None)
        built = by_type.get(node.id)
        nodes.append({"id": node.id, "type": node.type,
                      "computing": bool(built is not None and built.computing),
                      "action": node.type.endswith("_action"), "timing": timing,
                      "status": live})
    return {"frames": analyzer.graph.frames,
            "frame_budget_us": round(1e6 * analyzer.frame_size / analyzer.sample_rate, 1),
            "nodes": nodes,
            "connections": [{"from": c.from_, "to": c.to} for c in graph_cfg.connections],
            "fused": list(analyzer.fusions)}


def outputs(appliance: Appliance) -> dict[str, Any]:
    """``OutputsResponse``."""
    hal = appliance.hal
    if hal is None:
        return {"backend": None, "simulated": True, "outputs": []}
    status = hal.get_status()
    items = []
    for name, relay in status["relays"].items():
        items.append({"name": name, "kind": "relay", "pin": relay["pin"],
                      "on": relay["state"] == "on", "state": relay["state"], "details": relay})
    for name, led in status["leds"].items():
        value = led.get("value") or 0.0
        pattern = led.get("pattern") or ("on" if value > 0 else "off")
        items.append({"name": name, "kind": "led", "pin": led["pin"],
                      "on": pattern not in ("off", "closed"), "state": str(pattern),
                      "details": led})
    return {"backend": status["backend"], "simulated": bool(status["simulated"]),
            "outputs": items}


def spectrum_nodes(appliance: Appliance) -> dict[str, Any]:
    """Nodes that offer a spectrum (a ``spectrum_tap``), by id, in graph order."""
    return {n.node_id: n for n in appliance.analyzer.graph.nodes
            if getattr(n, "spectrum_tap", None) is not None}


def spectrum(node: Any, appliance: Appliance) -> dict[str, Any] | None:
    """``SpectrumResponse`` of a node with a spectrum tap (None before its first copy)."""
    snap = node.spectrum_tap.read()
    if snap is None:
        return None
    result = appliance.analyzer.state.get(node.node_id)
    with_db = [None if a <= 0 else round(20.0 * math.log10(a), 3)
               for a in snap.amplitudes.tolist()]
    peak: dict[str, bool | float | None] = {"detected": False, "frequency_hz": None,
                                            "amplitude": None, "amplitude_db": None}
    if result is not None:
        peak = {"detected": result.detected, "frequency_hz": _finite(result.frequency_hz),
                "amplitude": _finite(result.amplitude, 9),
                "amplitude_db": _finite(result.amplitude_db, 3)}
    return {"node": node.node_id, "sequence": snap.sequence, "timestamp": snap.timestamp,
            "time": iso_utc(snap.timestamp), "bin_hz": round(snap.bin_hz, 6),
            "search_hz": list(snap.search_hz),
            "frequencies_hz": [round(f, 3) for f in snap.frequencies_hz.tolist()],
            "amplitude_db": with_db, "peak": peak}
