"""`pafw bench python-actions`: what customer Python actions cost and how fast they react.

In one run, on the simulator:
- trigger latency: from a computing result (its frame's capture time) to ``on_trigger``'s
  entry in the worker and to its return on the host (p50/p95/p99), the appliance paced in
  real time with a concentration that crosses the threshold on every other frame;
- the DSP real-time factor of the default graph with four python actions attached (workers
  running, control loop feeding them) against none, on the same frames in alternating rounds;
- worker start time (spawn to instantiated), RSS and USS;
- reload latency: from an atomic rename of a new version to the new code answering.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from firmware.actions.python.action_node import PythonAction
from firmware.app.appliance import Appliance
from firmware.bench.graph import realtime_factors, simulated_frames
from firmware.config.loader import ConfigDocument, default_config_text, load_config
from firmware.stats import percentiles

BENCH_SCRIPT = '''
import time


class BenchAction(CustomPythonAction):
    VERSION = {version}

    def __init__(self, api):
        super().__init__(api)
        self.entries = []

    def on_trigger(self, trigger_type, data):
        self.entries.append(time.time() - data["timestamp"])
        return True

    def on_update(self, computing_data):
        self.last = computing_data

    def get_status(self):
        entries, self.entries = self.entries, []
        return {{"version": self.VERSION, "entry_latency_s": entries}}
'''
KEPT = {"input", "bandpass", "gain", "differential", "peak_finder", "concentration"}


def _config(workdir: Path, *, actions: int, levels: list[float], step_s: float) -> ConfigDocument:
    data = yaml.safe_load(default_config_text())
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] in KEPT]
    graph["connections"] = [c for c in graph["connections"] if c["to"] in KEPT]
    for i in range(actions):
        graph["nodes"].append({"id": f"py{i}", "type": "python_action", "parameters": {
            "python_script_path": "bench_action.py", "python_class_name": "BenchAction",
            "monitored_nodes": ["concentration"], "concentration_threshold": 2000.0}})
        graph["connections"].append({"from": "concentration", "to": f"py{i}"})
    data["acquisition"]["simulator"]["concentration"] = {
        "profile": "steps", "levels_ppm": levels, "step_s": step_s, "repeat": True}
    data["mqtt"]["enabled"] = False
    data["hal"]["relays"], data["hal"]["leds"] = {}, {}
    data["paths"].update(state_dir=str(workdir / "state"), scripts_dir=str(workdir))
    data["scripts"]["worker_user"] = None
    return load_config(text=yaml.safe_dump(data, sort_keys=False), env=os.environ)


def _pcts(values_s: list[float]) -> dict[str, Any]:
    ms = np.asarray(values_s) * 1e3
    p50, p95, p99 = percentiles(ms, (50, 95, 99))
    return {"count": int(ms.size), "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3)}


def _handlers(appliance: Appliance) -> list[PythonAction]:
    return appliance.python_handlers


def measure_latency(workdir: Path, seconds: float) -> dict[str, Any]:
    """Entry and return latency with the appliance paced in real time."""
    frame_s = 4096 / 48000
    appliance = Appliance(_config(workdir, actions=1, levels=[500.0, 3000.0], step_s=frame_s),
                          realtime=True)
    entries: list[float] = []
    try:
        appliance.start()
        (py,) = _handlers(appliance)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1.0)
            status = appliance.control.call(py.supervisor.call("get_status")).result(5)
            entries += status["entry_latency_s"]
        returns = list(py.trigger_latency_s)
        worker = py.supervisor.get_status()
    finally:
        appliance.stop()
    skip = 2  # the first calls warm the worker's code paths
    return {"entry": _pcts(entries[skip:]), "return": _pcts(returns[skip:]),
            "worker_start_ms": worker["worker"]["start_ms"] if worker["worker"] else None,
            "worker_rss_mb": round((worker["rss_bytes"] or 0) / 2**20, 1),
            "worker_uss_mb": round((worker["uss_bytes"] or 0) / 2**20, 1)}


def measure_dsp(workdir: Path, frames: int, rounds: int,
                round_s: float = 1.0) -> dict[str, Any]:
    """Real-time factor with four python actions attached vs none, alternating rounds.

    Each round runs the ``frames`` as many times over as take about ``round_s`` (timed on a
    warm-up pass): the control loop wakes once per ``min_gap_s`` (half a frame's duration,
    43 ms), so a round of a few milliseconds holds one of its batches or none, and its ratio
    tells chance, not cost. The ratio is the median of each round's with/without ratio (the
    two measured back to back, so a drift of the machine's pace cancels out).
    """
    with_py = Appliance(_config(workdir / "with", actions=4, levels=[500.0, 3000.0],
                                step_s=1.0), realtime=False)
    without = Appliance(_config(workdir / "without", actions=0, levels=[500.0, 3000.0],
                                step_s=1.0), realtime=False)
    data = simulated_frames(without.doc, frames)
    times: dict[str, list[float]] = {"with": [], "without": []}

    def one_round(appliance: Appliance, passes: int) -> float:
        graph, hooks = appliance.analyzer.graph, appliance.analyzer.frame_hooks
        start = time.perf_counter()
        for _ in range(passes):
            for frame in data:
                frame.timestamp = time.monotonic()
                graph.process(frame)
                for hook in hooks:
                    hook()
        return (time.perf_counter() - start) / passes

    try:
        with_py.control.start()
        for appliance in (with_py, without):
            appliance.analyzer.warm_up()
        passes = max(1, round(round_s / max(one_round(without, 1), 1e-6)))
        for _ in range(rounds):
            for name, appliance in (("without", without), ("with", with_py)):
                times[name].append(one_round(appliance, passes))
        running = sum(h.supervisor.state == "running" for h in _handlers(with_py))
    finally:
        with_py.stop()
        without.stop()
    factors = realtime_factors(data, times)
    ratios = [alone / along for alone, along in zip(times["without"], times["with"],
                                                   strict=True)]
    return {"frames": len(data), "passes_per_round": passes, "rounds": rounds,
            "python_actions": 4, "workers_running": running,
            "realtime_factor_with": round(factors["with"], 1),
            "realtime_factor_without": round(factors["without"], 1),
            "throughput_ratio": round(float(np.median(ratios)), 4),
            "throughput_ratio_range": [round(min(ratios), 4), round(max(ratios), 4)]}


def measure_reload(workdir: Path, reloads: int) -> dict[str, Any]:
    """Rename a new version onto the script; time until the new code answers."""
    appliance = Appliance(_config(workdir, actions=1, levels=[500.0], step_s=10.0),
                          realtime=True)
    script = workdir / "bench_action.py"
    latencies: list[float] = []
    try:
        appliance.start()
        (py,) = _handlers(appliance)
        for version in range(2, reloads + 2):
            staging = workdir / ".bench_action.tmp"
            staging.write_text(BENCH_SCRIPT.format(version=version))
            start = time.monotonic()
            staging.rename(script)
            while True:
                status = appliance.control.call(py.supervisor.call("get_status")).result(5)
                if status["version"] == version:
                    latencies.append(time.monotonic() - start)
                    break
                if time.monotonic() - start > 10:
                    raise RuntimeError("a reload took more than 10 s")
                time.sleep(0.005)
    finally:
        appliance.stop()
    return _pcts(latencies)


def run_python_bench(*, seconds: float = 20.0, frames: int = 600, rounds: int = 7,
                     reloads: int = 5, round_s: float = 1.0) -> dict[str, Any]:
    """All measurements in one run; JSON-safe figures."""
    with tempfile.TemporaryDirectory(prefix="pafw-pybench-") as tmp:
        workdir = Path(tmp)
        for sub in (workdir, workdir / "with", workdir / "without"):
            sub.mkdir(exist_ok=True)
            (sub / "bench_action.py").write_text(BENCH_SCRIPT.format(version=1))
        latency = measure_latency(workdir, seconds)
        dsp = measure_dsp(workdir, frames, rounds, round_s)
        reload = measure_reload(workdir, reloads)
    return {"latency": latency, "dsp": dsp, "reload": reload}


def format_python_report(figures: dict[str, Any]) -> str:
    """Human-readable report."""
    lat, dsp, rel = figures["latency"], figures["dsp"], figures["reload"]
    entry, ret = lat["entry"], lat["return"]
    return "\n".join([
        f"trigger -> on_trigger entry ({entry['count']}): p50 {entry['p50_ms']:.2f} ms, "
        f"p95 {entry['p95_ms']:.2f} ms, p99 {entry['p99_ms']:.2f} ms",
        f"trigger -> on_trigger return ({ret['count']}): p50 {ret['p50_ms']:.2f} ms, "
        f"p95 {ret['p95_ms']:.2f} ms, p99 {ret['p99_ms']:.2f} ms",
        f"worker: ready in {lat['worker_start_ms']:.0f} ms, RSS {lat['worker_rss_mb']:.1f} MB, "
        f"USS {lat['worker_uss_mb']:.1f} MB",
        f"DSP real-time factor: {dsp['realtime_factor_with']:.0f}x with 4 python actions, "
        f"{dsp['realtime_factor_without']:.0f}x without (ratio {dsp['throughput_ratio']:.1%}, "
        f"median of {dsp['rounds']} alternating rounds of {dsp['passes_per_round']} x "
        f"{dsp['frames']} frames; rounds {dsp['throughput_ratio_range'][0]:.1%} to "
        f"{dsp['throughput_ratio_range'][1]:.1%})",
        f"reload (rename -> new code answering, {rel['count']}): p50 {rel['p50_ms']:.0f} ms, "
        f"p95 {rel['p95_ms']:.0f} ms",
    ])

