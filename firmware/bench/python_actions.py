"""`pafw bench python-actions`: what customer Python actions cost and how fast they react.

In one run, on the simulator:
- trigger latency: from a computing result (its frame's capture time) to ``on_trigger``'s
  entry in the worker and to its return on the host (p50/p95/p99), the appliance paced in
  real time with a concentration that crosses the threshold on every other frame;
- the DSP real-time factor of the default graph with four python actions attached (workers
  running, control loop feeding them) against none (the control loop parked) and against
  idle actions (no results flowing), on one graph in rotating rounds; the idle actions'
  control thread and workers' CPU;
- worker start time (spawn to instantiated), RSS and USS;
- reload latency: from an atomic rename of a new version to the new code answering.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from firmware.actions.python.action_node import PythonAction
from firmware.app.appliance import Appliance
from firmware.bench.graph import realtime_factors, simulated_frames
from firmware.bench.schedstat import process_cpu_s, schedstat, thread_schedstat_path
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
#: after the control loop is released, its catch-up runs before the next round starts
UNPARK_SETTLE_S = 0.1
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


def _worker_pids(appliance: Appliance) -> list[int]:
    return [h.supervisor.worker.pid for h in _handlers(appliance)
            if h.supervisor.worker is not None and h.supervisor.worker.pid is not None]


@contextmanager
def _parked(appliance: Appliance) -> Iterator[None]:
    """Hold the control loop's thread in a blocking wait (the GIL released) for the block:
    no tick, watchdog or batch runs, the actions are as good as absent for the DSP thread
    (their workers sleep in other processes). A call in flight waits in its socket; its
    deadline (``python_timeout_ms``, 5 s) is far beyond a round."""
    parked, release = threading.Event(), threading.Event()

    def hold() -> None:
        parked.set()
        release.wait()

    appliance.control.loop.call_soon_threadsafe(hold)
    if not parked.wait(10):
        raise RuntimeError("the control loop did not park within 10 s")
    try:
        yield
    finally:
        release.set()
        time.sleep(UNPARK_SETTLE_S)  # its catch-up (a tick, the watchdogs) outside any round


def measure_dsp(workdir: Path, frames: int, rounds: int,
                round_s: float = 1.0) -> dict[str, Any]:
    """The DSP throughput of the default graph with four python actions against none.

    One appliance with four python actions, one graph, three kinds of rounds in rotating
    order: *none* (the control loop parked, no flush: nothing of the actions runs in the
    process), *idle* (the control loop running, no flush: it ticks, its watchdogs read the
    workers' cgroups) and *with* (the feed's flush after each frame: the control loop takes
    batches, the workers get updates and triggers). The ratios are medians of each round
    set's none/with and none/idle times. On one graph the layout of its buffers in memory is
    the same for all kinds: two appliances' graphs, identical but for where numpy put their
    buffers, run up to 4 % apart, more than the cost to measure. Each round runs the
    ``frames`` as many times over as take about ``round_s`` (timed on a warm-up pass): the
    control loop takes a batch every 43 ms at most, every second once it finds the DSP far
    ahead of real time, so a round of a few milliseconds would hold one batch or none and
    tell chance; one of 1 s holds one, and many such rounds follow the machine's drifting
    pace (a few % from one second to the next) better than a few long ones. Also reported:
    the control thread's and the workers' CPU in the idle rounds.
    """
    appliance = Appliance(_config(workdir / "with", actions=4, levels=[500.0, 3000.0],
                                  step_s=1.0), realtime=False)
    data = simulated_frames(appliance.doc, frames)
    analyzer = appliance.analyzer
    graph = analyzer.graph
    times: dict[str, list[float]] = {"none": [], "idle": [], "with": []}
    cpu = {"control": 0.0, "workers": 0.0, "idle_wall": 0.0}

    def one_round(flowing: bool, passes: int) -> float:
        """The analyzer's frame loop: the graph, then (results flowing) the one-shot slot
        through which the feed asks for its flush."""
        start = time.perf_counter()
        for _ in range(passes):
            for frame in data:
                frame.timestamp = time.monotonic()
                graph.process(frame)
                if flowing:
                    once = analyzer.after_next_frame
                    if once is not None:
                        analyzer.after_next_frame = None
                        once()
        return (time.perf_counter() - start) / passes

    def idle_round(passes: int) -> float:
        control_path = thread_schedstat_path("control")
        pids = _worker_pids(appliance)
        control0, workers0 = schedstat(control_path), sum(map(process_cpu_s, pids))
        seconds = one_round(False, passes)
        cpu["idle_wall"] += seconds * passes
        control1 = schedstat(control_path)
        if control0 is not None and control1 is not None:
            cpu["control"] += control1[0] - control0[0]
        cpu["workers"] += sum(map(process_cpu_s, pids)) - workers0
        return seconds

    def none_round(passes: int) -> float:
        with _parked(appliance):
            return one_round(False, passes)

    def with_round(passes: int) -> float:
        return one_round(True, passes)

    run: dict[str, Callable[[int], float]] = {"none": none_round, "idle": idle_round,
                                              "with": with_round}
    kinds = list(run)
    try:
        appliance.control.start()
        appliance.analyzer.warm_up()
        passes = max(1, round(round_s / max(one_round(False, 1), 1e-6)))
        batches0, ahead0 = appliance.control.batches, appliance.control.ahead_batches
        for index in range(rounds):
            for kind in kinds[index % 3:] + kinds[:index % 3]:
                times[kind].append(run[kind](passes))
        batches = appliance.control.batches - batches0
        ahead = appliance.control.ahead_batches - ahead0
        running = sum(h.supervisor.state == "running" for h in _handlers(appliance))
    finally:
        appliance.stop()
    factors = realtime_factors(data, times)
    ratios = [none / along for none, along in zip(times["none"], times["with"], strict=True)]
    idle_ratios = [none / idle for none, idle in zip(times["none"], times["idle"],
                                                     strict=True)]
    with_s = sum(times["with"]) * passes
    idle_wall = max(cpu["idle_wall"], 1e-9)
    return {"frames": len(data), "passes_per_round": passes, "rounds": rounds,
            "python_actions": 4, "workers_running": running,
            "realtime_factor_with": round(factors["with"], 1),
            "realtime_factor_idle": round(factors["idle"], 1),
            "realtime_factor_without": round(factors["none"], 1),
            "throughput_ratio": round(float(np.median(ratios)), 4),
            "throughput_ratio_range": [round(min(ratios), 4), round(max(ratios), 4)],
            "idle_throughput_ratio": round(float(np.median(idle_ratios)), 4),
            "batches_per_s": round(batches / max(with_s, 1e-9), 2),
            "ahead_batches": ahead,
            "idle_control_cpu_percent": round(100 * cpu["control"] / idle_wall, 3),
            "idle_workers_cpu_percent": round(100 * cpu["workers"] / idle_wall, 3)}


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


def run_python_bench(*, seconds: float = 20.0, frames: int = 600, rounds: int = 20,
                     reloads: int = 5, round_s: float = 1.0) -> dict[str, Any]:
    """All measurements in one run; JSON-safe figures."""
    with tempfile.TemporaryDirectory(prefix="pafw-pybench-") as tmp:
        workdir = Path(tmp)
        for sub in (workdir, workdir / "with"):
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
        f"median of {dsp['rounds']} rotating rounds of {dsp['passes_per_round']} x "
        f"{dsp['frames']} frames on one graph; rounds {dsp['throughput_ratio_range'][0]:.1%} "
        f"to {dsp['throughput_ratio_range'][1]:.1%}; {dsp['batches_per_s']:.1f} batches/s); "
        f"idle actions: {dsp['idle_throughput_ratio']:.1%}, control thread "
        f"{dsp['idle_control_cpu_percent']:.2f} % of a core, workers "
        f"{dsp['idle_workers_cpu_percent']:.2f} %",
        f"reload (rename -> new code answering, {rel['count']}): p50 {rel['p50_ms']:.0f} ms, "
        f"p95 {rel['p95_ms']:.0f} ms",
    ])

