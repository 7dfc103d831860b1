"""`pafw script check FILE`: everything that can be known about a script before deploying it.

1. static checks (syntax, imports against the node's allow-list, dynamic code);
2. load it in a real sandboxed worker and instantiate its class with the node's config;
3. call ``on_update`` and ``on_trigger`` (and ``on_clear`` if defined) on synthetic data and
   ``get_status``, checking return types and timing. Side effects are dry runs: a granted
   relay, LED or MQTT call is reported as "would ...", an ungranted one as denied; nothing
   touches hardware or a broker.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.actions.base import ActionContext
from firmware.actions.history import HistoryBuffer
from firmware.actions.python.action_node import PythonActionParams, worker_spec
from firmware.actions.python.api_host import ScriptApiHost
from firmware.actions.python.confinement import Confinement
from firmware.actions.python.grants import Grants
from firmware.actions.python.host import PythonWorker
from firmware.actions.python.imports import check_script
from firmware.actions.python.sandbox import can_switch_user
from firmware.actions.python.spec import WorkerSpec
from firmware.actions.python.store import ScriptStore
from firmware.actions.triggers import TriggerEvent
from firmware.config.loader import ConfigDocument
from firmware.config.models import ScriptsSettings
from firmware.dsp.registry import get_node_type
from firmware.errors import PafwError
from firmware.state import ComputingResult, ComputingState

SYNTHETIC_PPM = 1500.0


@dataclass
class CheckReport:
    """Findings, in order; ``ok`` is False if any step failed."""

    script: Path
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def good(self, text: str) -> None:
        self.lines.append(f"  ok    {text}")

    def bad(self, text: str) -> None:
        self.lines.append(f"  FAIL  {text}")
        self.ok = False

    def note(self, text: str) -> None:
        self.lines.append(f"        {text}")

    def render(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        return "\n".join([f"{self.script}:", *self.lines, f"check {verdict}"])


#: API calls with an effect outside the worker
EFFECTS = frozenset({"publish_mqtt", "relay_on", "relay_off", "relay_pulse", "led_on",
                     "led_off", "led_blink"})


class DryRunApiHost(ScriptApiHost):
    """The real request checks, with side effects recorded instead of performed."""

    def __init__(self, *args: Any, report: CheckReport, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        #: relay, LED and MQTT calls the script made (granted or not)
        self.effects = 0

    async def handle(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if method in EFFECTS:
            self.effects += 1
        return await super().handle(method, args, kwargs)

    async def _publish_mqtt(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        self.grants.check_publish(topic)
        self.report.note(f"would publish to {topic!r}: {str(payload)[:80]}")

    async def _relay_on(self, name: str) -> None:
        self.grants.check_relay(name)
        self.report.note(f"would switch relay {name!r} on")

    async def _relay_off(self, name: str) -> None:
        self.grants.check_relay(name)
        self.report.note(f"would switch relay {name!r} off")

    async def _relay_pulse(self, name: str, seconds: float) -> None:
        self.grants.check_relay(name)
        self.report.note(f"would pulse relay {name!r} for {seconds} s")

    async def _led_on(self, name: str) -> None:
        self.grants.check_led(name)
        self.report.note(f"would switch LED {name!r} on")

    async def _led_off(self, name: str) -> None:
        self.grants.check_led(name)
        self.report.note(f"would switch LED {name!r} off")

    async def _led_blink(self, name: str, on_s: float = 0.5, off_s: float = 0.5) -> None:
        self.grants.check_led(name)
        self.report.note(f"would blink LED {name!r}")


def find_node(doc: ConfigDocument | None, script: Path, node_id: str | None,
              name: str | None = None) -> tuple[str, PythonActionParams | None, dict[str, Any]]:
    """The python_action node configured for ``script`` (by ``node_id``, else by its file
    name, or ``name`` when the file is an upload waiting under a temporary name)."""
    if doc is None:
        return node_id or "check", None, {}
    nodes = [n for n in doc.config.processing.default_graph.nodes if n.type == "python_action"]
    for node in nodes:
        if node_id is not None and node.id != node_id:
            continue
        if node_id is not None or Path(node.params.python_script_path).name == (
                name or script.name):
            return node.id, node.params, dict(node.parameters)
    wanted = (f"node {node_id!r}" if node_id
              else f"a python_action running {name or script.name}")
    raise PafwError(f"{doc.name}: no {wanted}; python_action nodes: "
                    f"{', '.join(n.id for n in nodes) or 'none'}")


def action_class(source: str, requested: str | None) -> str | None:
    """The class to instantiate: ``requested``, else the one subclassing CustomPythonAction."""
    if requested:
        return requested
    tree = ast.parse(source)
    candidates = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and any(
        (isinstance(b, ast.Name) and b.id == "CustomPythonAction")
        or (isinstance(b, ast.Attribute) and b.attr == "CustomPythonAction") for b in n.bases)]
    return candidates[-1] if candidates else None


def result_kinds(doc: ConfigDocument) -> dict[str, str]:
    """Node id -> the kind of result it publishes, for the graph's computing nodes."""
    kinds = {}
    for node in doc.config.processing.default_graph.nodes:
        node_cls = get_node_type(node.type)
        if node_cls is not None and node_cls.result_kind is not None:
            kinds[node.id] = node_cls.result_kind
    return kinds


def synthetic_results(nodes: list[str], kinds: dict[str, str]) -> ComputingState:
    """A state where every node reports a plausible, high reading (``kinds``: node id ->
    result kind, from the graph when a config is given)."""
    state = ComputingState()
    now, mono = time.time(), time.monotonic()
    for i, node in enumerate(nodes or ["peak_finder", "concentration"]):
        kind = kinds.get(node, "peak" if "peak" in node else "concentration")
        state.publish(ComputingResult(node, kind, now, mono, i, True,
                                      frequency_hz=2000.0, amplitude=0.03,
                                      amplitude_db=-30.5, snr_db=35.0, coherence=1.0,
                                      concentration_ppm=(SYNTHETIC_PPM if kind ==
                                                         "concentration" else math.nan)))
    return state


async def _exercise(report: CheckReport, spec: WorkerSpec, api: DryRunApiHost,
                    state: ComputingState, threshold: float) -> None:
    worker = PythonWorker(spec, handle_request=api.handle,
                          logger=logging.getLogger(f"pafw.script.{spec.node_id}"))
    try:
        await worker.start(timeout_s=10)
    except Exception as exc:
        report.bad(f"load and instantiate {spec.class_name}: {exc}")
        return
    report.good(f"loaded {spec.class_name} in a sandboxed worker in "
                f"{worker.start_ms or 0:.0f} ms (network: "
                f"{worker.ready_info.get('network', '?')})")
    report.note(f"confined as `pafw run` confines it: {worker.protections()}")
    for warning in (worker.ready_info.get("sandbox") or {}).get("warnings", []):
        report.note(f"WARNING: {warning}")
    event = TriggerEvent("trigger", "concentration", "concentration", SYNTHETIC_PPM, threshold,
                         "concentration", time.monotonic(), time.time(), {})
    steps: list[tuple[str, tuple[Any, ...], type | None]] = [
        ("on_update", ({k: r.to_dict() for k, r in state.snapshot().items()},), None),
        ("on_trigger", ("concentration", event.to_dict()), bool),
    ]
    if "on_clear" in worker.ready_info.get("methods", []):
        clear = TriggerEvent("clear", "concentration", "concentration", 800.0, threshold,
                             "concentration", time.monotonic(), time.time(), {})
        steps.append(("on_clear", ("concentration", clear.to_dict()), None))
    steps.append(("get_status", (), dict))
    try:
        for method, args, expected in steps:
            start = time.perf_counter()
            try:
                value = await worker.call(method, *args)
            except Exception as exc:
                report.bad(f"{method}: {exc}")
                continue
            took = (time.perf_counter() - start) * 1e3
            if expected is not None and not isinstance(value, expected):
                report.bad(f"{method} returned {type(value).__name__}, expected "
                           f"{expected.__name__}")
            elif method == "on_trigger" and value is False:
                report.bad(f"on_trigger returned False ({took:.1f} ms): the action reports "
                           f"that its work failed (see the log lines above)")
            else:
                report.good(f"{method} -> {str(value)[:100]} ({took:.1f} ms)")
            if method == "on_trigger":
                _judge_effects(report, api)
    finally:
        await worker.stop()
    if api.grants.denied:
        report.bad(f"{api.grants.denied} call(s) outside the grant: {api.grants.last_denied}")


def _judge_effects(report: CheckReport, api: DryRunApiHost) -> None:
    """A trigger that drives none of the granted outputs is a failure (a script checked
    without its node's python_config, e.g. no relay named); without grants, say so."""
    caps = api.grants.capabilities
    granted = [*caps.relays, *caps.leds]
    if api.effects:
        return
    if granted:
        report.bad(f"on_trigger drove none of the granted outputs ({', '.join(granted)}): "
                   f"check the node's python_config (which relay or LED it names)")
    else:
        report.note("on_trigger made no relay, LED or MQTT call (no output is granted: pass "
                    "--config and --node to check with the node's grants and python_config)")


def check_script_file(script: Path, *, doc: ConfigDocument | None = None,
                      node_id: str | None = None, class_name: str | None = None,
                      name: str | None = None) -> CheckReport:
    """Run every check on ``script`` with the node's config from ``doc`` (or defaults)."""
    report = CheckReport(script)
    if not script.is_file():
        raise PafwError(f"{script}: no such file")
    source = script.read_text(encoding="utf-8", errors="replace")
    action_id, params, raw = find_node(doc, script, node_id, name)
    params = params or PythonActionParams(python_script_path=script.name,
                                          python_class_name=class_name or "Action")
    problems = check_script(source, filename=str(script), allowed_imports=params.allowed_imports,
                            unsafe_allow_refused_imports=params.unsafe_allow_refused_imports)
    for problem in problems:
        report.bad(str(problem))
    if problems:
        return report
    report.good(f"static checks (imports allowed: {params.allowed_imports or 'defaults'})")
    name = action_class(source, class_name or (params.python_class_name if doc else None))
    if name is None:
        report.bad("no class deriving from CustomPythonAction; pass --class NAME")
        return report
    with tempfile.TemporaryDirectory(prefix="pafw-check-") as tmp:
        kinds = {} if doc is None else result_kinds(doc)
        state = synthetic_results(params.monitored_nodes, kinds)
        ctx = ActionContext(state=state, device_id="check", state_dir=Path(tmp),
                            node_statistics=lambda node: {"node_id": node})
        history = HistoryBuffer(params.buffer_size)
        api = DryRunApiHost(action_id, ctx, grants=Grants(action_id, params.capabilities),
                            history=history,
                            store=ScriptStore(Path(tmp) / "store.json",
                                              max_bytes=params.store_max_kb * 1024),
                            report=report)
        scripts = doc.config.scripts if doc is not None else ScriptsSettings()
        switching = can_switch_user()
        Confinement.configure(uid_base=scripts.worker_uid_base,
                              data_root=Path(tmp) / "data")  # a dry run keeps no data
        os.chmod(tmp, 0o711)  # the worker's uid reaches its data directory below it
        spec = worker_spec(action_id, params.model_copy(update={"python_class_name": name}),
                           scripts_dir=script.resolve().parent, raw_parameters=raw,
                           monitored_nodes=list(params.monitored_nodes),
                           run_as_user=scripts.worker_user if switching and
                           scripts.worker_uid_base is None else None,
                           script_path=script.resolve())
        threshold = params.concentration_threshold or 1000.0
        asyncio.run(_exercise(report, spec, api, state, threshold))
    return report
