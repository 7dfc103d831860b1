"""`pafw bench web`: what the web server costs the DSP loop under many stream clients.

In one run, on the simulator unpaced (the DSP thread runs as fast as it can, so its
throughput is the measure) with the web server on a free loopback port:

- the DSP real-time factor in alternating rounds, idle (no client connected) and loaded
  (``clients`` Server-Sent Events readers on ``/api/v1/stream``, slowloris connections that
  trickle a request head one byte at a time, and one stream reader that never reads); the
  headline figure is the median loaded over the median idle (target: at least 95 %). On a
  shared machine other processes take the DSP thread's CPU now and then: the kernel counts
  that time (schedstat), so the same ratio is also given without it, and the DSP thread's
  time is split into running, waiting for a CPU and blocked (the GIL, mostly);
- the CPU of the web thread and of the whole appliance process in both kinds of round, and
  of the load process;
- what the clients received (events and bytes per client per second), how long the slowloris
  connections lasted before the server cut them (``web.request_timeout_s``), and how long
  the stalled reader lasted before the server dropped it (``web.stream_buffer_bytes``, after
  the kernel's socket buffers: longer than a round, so a last loaded window waits for it);
- the appliance process's resident memory at the start and at the end of every round:
  bounded means it does not keep growing round after round (the allocator's high-water mark
  rises for the first ~15 loaded rounds, by ~0.2 MB each, then stays put: see it with
  ``--seconds 150 --rounds 30``).

The clients run in a separate process (so they do not share the appliance's GIL), as they
would on other machines; it connects everyone at the start of a loaded round, reports once
every client has its first event (the ramp is not measured), and disconnects at its end.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.bench.schedstat import schedstat, thread_schedstat_path
from firmware.bench.web_load import (
    HOST,
    QUIESCE_TIMEOUT_S,
    READY_TIMEOUT_S,
    SLOWLORIS_CONNECTIONS,
    STALLED_READERS,
    TRICKLE_S,
    raise_nofile_limit,
)
from firmware.errors import PafwError
from firmware.web.process_stats import rss_bytes

if TYPE_CHECKING:  # imported when the bench runs, not at `pafw` start
    from firmware.app.appliance import Appliance
    from firmware.config.loader import ConfigDocument
    from firmware.web.server import WebServer

TARGET_RATIO = 0.95
#: an idle and a loaded window last at least this long: long enough for a slowloris
#: connection to be cut within a loaded window; fewer rounds are run when --seconds is short
MIN_WINDOW_S = 2.5
#: the DSP loop runs this long before the first window (caches, allocator, first results)
SETTLE_S = 1.0
REQUEST_TIMEOUT_S = 2.0  # web.request_timeout_s of the bench: the slowloris cut-off
#: web.stream_buffer_bytes of the bench, its minimum: a reader that keeps up leaves nothing
#: in its transport's buffer (the kernel takes every write), the stalled one fills it
STREAM_BUFFER_BYTES = 4096
#: the last loaded window lasts until the server drops the stalled reader, at most this long
SUSTAIN_MAX_S = 60.0


class _LoadProcess:
    """The parent's handle on the load process: a fresh interpreter that imports only this
    module (and the standard library), talking JSON lines over its stdin and stdout."""

    def __init__(self, port: int, clients: int, cpus: set[int]) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from firmware.bench.web_load import load_main; load_main()",
             str(port), str(clients), ",".join(map(str, sorted(cpus)))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.expect("hello", 60.0)

    def expect(self, kind: str, timeout: float) -> Any:
        """The next message, which must be ``kind``."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            state = "exited" if self.process.poll() is not None else "sent nothing"
            raise PafwError(f"the load process {state} (waiting {timeout:.0f} s for "
                               f"{kind!r})")
        got, payload = json.loads(line)
        if got != kind:
            raise PafwError(f"the load process sent {got!r}, expected {kind!r}")
        return payload

    def command(self, command: str, reply: str, timeout: float) -> Any:
        """Send ``command``, wait for ``reply``."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self.expect(reply, timeout)

    def stop(self) -> None:
        """Ask it to quit, then make sure it is gone."""
        stdin = self.process.stdin
        with contextlib.suppress(OSError, ValueError):
            if stdin is not None:
                stdin.write("quit\n")
                stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


# ===================================================================== appliance process
def _config(workdir: Path, clients: int) -> ConfigDocument:
    """The packaged default config: no MQTT (the web cost alone), paths in ``workdir``, a
    constant concentration (unpaced, the demo's steps would fire alarms ~150 times faster
    than real time), the web server on a free loopback port with room for every client."""
    import yaml

    from firmware.config.loader import default_config_text, load_config

    data = yaml.safe_load(default_config_text())
    data["mqtt"]["enabled"] = False
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
    graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
    data["acquisition"]["simulator"]["concentration"] = {"profile": "constant",
                                                        "value_ppm": 1000.0}
    data["paths"].update(state_dir=str(workdir / "state"),
                         scripts_dir=str(workdir / "state" / "user_scripts"))
    data["web"].update(enabled=True, bind=HOST, port=0, read_access="loopback",
                       token=secrets.token_hex(16), max_streams=clients + 10,
                       max_connections=clients + SLOWLORIS_CONNECTIONS + STALLED_READERS + 40,
                       request_timeout_s=REQUEST_TIMEOUT_S,
                       stream_buffer_bytes=STREAM_BUFFER_BYTES)
    path = workdir / "pafw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path, env=os.environ)


def _rss_mb() -> float:
    return (rss_bytes() or 0) / 2**20


def _load_cpus() -> list[int]:
    """The last CPU, for the load process, so that it never shares the core where the DSP
    thread runs unless the scheduler has nothing better (clients are other machines); the
    appliance stays unpinned, as in service. Nothing pinned on a single CPU."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
    return cpus[-1:] if len(cpus) >= 2 else []


def _split(seconds: float, rounds: int) -> tuple[int, float]:
    """Rounds of each kind and window length: ``seconds`` shared by 2 x ``rounds`` windows,
    with fewer rounds when a window would be shorter than MIN_WINDOW_S."""
    rounds = max(1, min(rounds, int(seconds // (2 * MIN_WINDOW_S))))
    return rounds, max(seconds / (2 * rounds), MIN_WINDOW_S)


class _Windows:
    """Measures one window at a time: DSP throughput, CPU per thread, memory."""

    def __init__(self, appliance: Appliance, server: WebServer) -> None:
        self.analyzer = appliance.analyzer
        self.server = server
        self.web_sched = thread_schedstat_path("web")
        self.dsp_sched = thread_schedstat_path("dsp")
        self.rss_max = _rss_mb()

    def measure(self, seconds: float, *, stop: Callable[[], bool] | None = None,
                ) -> dict[str, Any]:
        """Sleep ``seconds`` or until ``stop()`` (sampling RSS); the window's figures."""
        analyzer = self.analyzer
        frames0, dsp0, proc0 = analyzer.frames, analyzer.dsp_cpu_s, time.process_time()
        web0, dspq0 = schedstat(self.web_sched), schedstat(self.dsp_sched)
        sent0 = self.server.hub.events_sent
        start = time.perf_counter()
        deadline = start + seconds
        tick = 0.25 if stop is None else 0.05
        while (now := time.perf_counter()) < deadline:
            time.sleep(min(tick, deadline - now))
            self.rss_max = max(self.rss_max, _rss_mb())
            if stop is not None and stop():
                break
        wall = time.perf_counter() - start
        frames = analyzer.frames - frames0
        web1, dspq1 = schedstat(self.web_sched), schedstat(self.dsp_sched)
        if analyzer.fault:
            raise PafwError(f"the DSP loop stopped: {analyzer.fault}")
        audio_s = frames * analyzer.frame_size / analyzer.sample_rate
        dsp_cpu = 100.0 * (analyzer.dsp_cpu_s - dsp0) / wall
        # the time the DSP thread was runnable but had no CPU (other processes on a shared
        # machine); without it, what is left is running or blocked (the GIL, mostly)
        wait_s = None if dspq0 is None or dspq1 is None else dspq1[1] - dspq0[1]
        return {
            "seconds": wall,
            "frames": frames,
            "realtime_factor": audio_s / wall,
            "realtime_factor_uncontended": None if wait_s is None
            else audio_s / max(wall - wait_s, 1e-9),
            "dsp_cpu_percent": dsp_cpu,
            "dsp_cpu_wait_percent": None if wait_s is None else 100.0 * wait_s / wall,
            "dsp_blocked_percent": None if wait_s is None
            else max(0.0, 100.0 - dsp_cpu - 100.0 * wait_s / wall),
            "web_cpu_percent": None if web0 is None or web1 is None
            else 100.0 * (web1[0] - web0[0]) / wall,
            "process_cpu_percent": 100.0 * (time.process_time() - proc0) / wall,
            "events_broadcast_per_s": (self.server.hub.events_sent - sent0) / wall,
        }

    def quiesce(self) -> float:
        """Wait until the server holds no connection; returns how long that took."""
        start = time.monotonic()
        while time.monotonic() - start < QUIESCE_TIMEOUT_S:
            status = self.server.web_status()
            if status["connections"] == 0 and status["streams"] == 0:
                break
            time.sleep(0.02)
        return time.monotonic() - start


@dataclass
class _Run:
    """What one run collected, round by round."""

    rounds: int
    window: float
    clients: int
    idle: list[dict[str, Any]] = field(default_factory=list)
    loaded: list[dict[str, Any]] = field(default_factory=list)
    ramps: list[dict[str, Any]] = field(default_factory=list)
    load_rounds: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    stalled_dropped: list[int] = field(default_factory=list)
    rss_loaded: list[float] = field(default_factory=list)
    rss_idle: list[float] = field(default_factory=list)
    quiesce_s: list[float] = field(default_factory=list)
    rss_start: float = 0.0
    rss_end: float = 0.0
    rss_max: float = 0.0
    sustained: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    action_events: int = 0
    load_cpus: list[int] = field(default_factory=list)


def _loaded(run: _Run, load: _LoadProcess, windows: _Windows, seconds: float, *,
            until_dropped: bool) -> dict[str, Any]:
    """One loaded window: connect everyone, measure (``until_dropped``: until the server
    dropped the stalled readers, at most ``seconds``), disconnect, wait for the server to
    have let go of every connection."""
    hub = windows.server.hub
    dropped0 = hub.dropped_slow
    connect_sent = time.monotonic()
    run.ramps.append(load.command("connect", "ready", READY_TIMEOUT_S + 30))
    result = windows.measure(seconds, stop=(lambda: hub.dropped_slow - dropped0
                                            >= STALLED_READERS) if until_dropped else None)
    if until_dropped:
        result["dropped_after_s"] = (time.monotonic() - connect_sent
                                     if hub.dropped_slow - dropped0 >= STALLED_READERS
                                     else None)
    run.servers.append(windows.server.web_status())
    result["rss_mb"] = _rss_mb()
    run.load_rounds.append(load.command("disconnect", "round", 30))
    run.stalled_dropped.append(hub.dropped_slow - dropped0)
    run.quiesce_s.append(windows.quiesce())
    return result


def run_web_bench(*, seconds: float, rounds: int, clients: int) -> dict[str, Any]:
    """Idle and loaded rounds side by side in one run, then one loaded window that lasts
    until the server drops the stalled reader; returns JSON-safe figures."""
    from firmware.app.appliance import Appliance
    from firmware.web.server import WebServer

    raise_nofile_limit()
    rounds, window = _split(seconds, rounds)
    run = _Run(rounds=rounds, window=window, clients=clients)
    with tempfile.TemporaryDirectory(prefix="pafw-bench-web-") as tmp:
        doc = _config(Path(tmp), clients)
        appliance = Appliance(doc, realtime=False)
        server: WebServer | None = None
        load: _LoadProcess | None = None
        try:
            appliance.start()
            server = WebServer(appliance, doc.config.web, appliance.operations)
            server.start()
            if server.port is None:
                raise PafwError(f"the web server did not start: {server.bind_error}")
            run.load_cpus = _load_cpus()
            load = _LoadProcess(server.port, clients, set(run.load_cpus))
            time.sleep(SETTLE_S)
            windows = _Windows(appliance, server)
            run.rss_start = _rss_mb()
            for _ in range(rounds):
                run.idle.append(windows.measure(window))
                run.rss_idle.append(_rss_mb())
                run.loaded.append(_loaded(run, load, windows, window, until_dropped=False))
                run.rss_loaded.append(run.loaded[-1]["rss_mb"])
            run.sustained = _loaded(run, load, windows, SUSTAIN_MAX_S, until_dropped=True)
            run.rss_end, run.rss_max = _rss_mb(), windows.rss_max
            run.final = server.web_status()
            run.action_events = appliance.action_events.last_seq
        finally:
            if load is not None:
                load.stop()
            if server is not None:
                server.stop()
            appliance.stop()
    return _figures(run)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    for key, count in counts.items():
        into[key] = into.get(key, 0) + count
    return into


def _figures(run: _Run) -> dict[str, Any]:
    """The JSON-safe figures of one run."""

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        return _median([row[key] for row in rows if row.get(key) is not None])

    idle, loaded, load_rounds, ramps = run.idle, run.loaded, run.load_rounds, run.ramps
    rt_idle, rt_loaded = med(idle, "realtime_factor"), med(loaded, "realtime_factor")
    un_idle = med(idle, "realtime_factor_uncontended")
    un_loaded = med(loaded, "realtime_factor_uncontended")
    ratio = rt_loaded / rt_idle if rt_idle and rt_loaded is not None else None
    idle_rt = [w["realtime_factor"] for w in idle]
    # each loaded window against the idle windows either side of it: slow drift cancels
    pairs = [w["realtime_factor"] / statistics.fmean(idle_rt[i:i + 2])
             for i, w in enumerate(loaded) if i < len(idle_rt)]
    spread = ((max(idle_rt) - min(idle_rt)) / rt_idle) if idle_rt and rt_idle else None
    half = run.rss_loaded[len(run.rss_loaded) // 2:]
    reader_seconds = sum(r["readers"] * r["window_s"] for r in load_rounds)
    slow_cuts = [s for r in load_rounds for s in r["slowloris"]["cut_after_s"]]
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    http_statuses: dict[str, int] = {}
    for r in load_rounds:
        _add_counts(statuses, r["slowloris"]["statuses"])
    for ramp in ramps:
        _add_counts(errors, ramp["connect_errors"])
        _add_counts(http_statuses, ramp["statuses"])
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    sustained = run.sustained
    return {
        "machine": {"cpu_count": os.cpu_count() or 0, "usable_cpus": usable},
        "setup": {
            "clients": run.clients, "slowloris_connections": SLOWLORIS_CONNECTIONS,
            "stalled_readers": STALLED_READERS, "rounds": run.rounds,
            "window_s": round(run.window, 3), "request_timeout_s": REQUEST_TIMEOUT_S,
            "trickle_s": TRICKLE_S, "stream_buffer_bytes": STREAM_BUFFER_BYTES,
            "load_process_cpus": run.load_cpus,
        },
        "dsp": {
            "realtime_factor_idle": _r(rt_idle), "realtime_factor_loaded": _r(rt_loaded),
            "ratio": _r(ratio, 4), "target_ratio": TARGET_RATIO,
            "pair_ratio_median": _r(_median(pairs), 4),
            "realtime_factor_uncontended_idle": _r(un_idle),
            "realtime_factor_uncontended_loaded": _r(un_loaded),
            "ratio_uncontended": _r(un_loaded / un_idle if un_idle and un_loaded else None, 4),
            "idle_spread": _r(spread, 3),
            "meets_target": ratio is not None and ratio >= TARGET_RATIO,
            "idle_rounds": [_r(w["realtime_factor"]) for w in idle],
            "loaded_rounds": [_r(w["realtime_factor"]) for w in loaded],
        },
        "cpu": {
            "dsp_thread_percent_idle": _r(med(idle, "dsp_cpu_percent")),
            "dsp_thread_percent_loaded": _r(med(loaded, "dsp_cpu_percent")),
            "dsp_cpu_wait_percent_idle": _r(med(idle, "dsp_cpu_wait_percent")),
            "dsp_cpu_wait_percent_loaded": _r(med(loaded, "dsp_cpu_wait_percent")),
            "dsp_blocked_percent_idle": _r(med(idle, "dsp_blocked_percent")),
            "dsp_blocked_percent_loaded": _r(med(loaded, "dsp_blocked_percent")),
            "web_thread_percent_idle": _r(med(idle, "web_cpu_percent"), 2),
            "web_thread_percent_loaded": _r(med(loaded, "web_cpu_percent"), 2),
            "process_percent_idle": _r(med(idle, "process_cpu_percent")),
            "process_percent_loaded": _r(med(loaded, "process_cpu_percent")),
            "load_process_percent": _r(med(load_rounds, "cpu_percent")),
        },
        "clients": {
            "connected_min": min((r["connected"] for r in ramps), default=0),
            "ready_min": min((r["ready"] for r in ramps), default=0),
            "connect_errors": errors,
            "http_statuses": http_statuses,
            "ramp_s": _r(med(ramps, "ramp_s"), 3),
            "events_per_client_per_s": _r(sum(r["events"] for r in load_rounds)
                                          / reader_seconds if reader_seconds else 0.0, 2),
            "bytes_per_client_per_s": _r(sum(r["bytes"] for r in load_rounds)
                                         / reader_seconds if reader_seconds else 0.0, 0),
            "events_broadcast_per_s": _r(med(loaded, "events_broadcast_per_s"), 2),
            "cut_by_server": sum(r["cut_by_server"] for r in load_rounds),
            "quiesce_s": _r(_median(run.quiesce_s), 3),
        },
        "slowloris": {
            "connections": sum(r["slowloris"]["opened"] for r in load_rounds),
            "cut": len(slow_cuts), "cut_after_s": _r(_median(slow_cuts), 2),
            "statuses": statuses,
        },
        "stalled": {
            "connections": sum(r["stalled_opened"] for r in load_rounds),
            "dropped_in_rounds": sum(run.stalled_dropped[:-1]),
            "dropped": sum(run.stalled_dropped),
            "dropped_after_s": _r(sustained.get("dropped_after_s"), 2),
            "sustained_window_s": _r(sustained.get("seconds"), 2),
            "sustained_realtime_factor": _r(sustained.get("realtime_factor")),
        },
        "memory": {
            "rss_start_mb": _r(run.rss_start),
            "rss_idle_mb": [_r(v) for v in run.rss_idle],
            "rss_loaded_mb": [_r(v) for v in run.rss_loaded],
            "rss_sustained_mb": _r(sustained.get("rss_mb")),
            "rss_end_mb": _r(run.rss_end),
            "rss_max_mb": _r(run.rss_max),
            "growth_over_loaded_rounds_mb": _r(run.rss_loaded[-1] - run.rss_loaded[0]
                                               if run.rss_loaded else 0.0, 2),
            "growth_per_round_last_half_mb": _r((half[-1] - half[0]) / (len(half) - 1)
                                                if len(half) > 1 else 0.0, 3),
            "growth_from_start_mb": _r(run.rss_max - run.rss_start, 2),
        },
        "server": {
            "streams_loaded": min((s["streams"] for s in run.servers), default=0),
            "connections_loaded_max": max((s["connections"] for s in run.servers), default=0),
            "dropped_slow_streams": run.final["dropped_slow_streams"],
            "timed_out_requests": run.final["timed_out_requests"],
            "rejected_connections": run.final["rejected_connections"],
            "requests": run.final["requests"],
            "action_events": run.action_events,
        },
    }


def format_web_report(figures: dict[str, Any]) -> str:
    """Human-readable report of run_web_bench's figures."""
    mach, setup, dsp, cpu = figures["machine"], figures["setup"], figures["dsp"], figures["cpu"]
    cli, slow, stall = figures["clients"], figures["slowloris"], figures["stalled"]
    mem, srv = figures["memory"], figures["server"]

    def pct(value: float | None) -> str:
        return "?" if value is None else f"{value:.1f} %"

    def num(value: float | None, spec: str = ".2f") -> str:
        return "?" if value is None else format(value, spec)

    verdict = "met" if dsp["meets_target"] else "NOT met"
    dropped = (f"dropped after {num(stall['dropped_after_s'])} s of load"
               if stall["dropped_after_s"] is not None
               else f"NOT dropped within {num(stall['sustained_window_s'], '.0f')} s")
    return "\n".join([
        f"machine: {mach['cpu_count']} CPUs ({mach['usable_cpus']} usable); load in a "
        f"separate process (CPUs {setup['load_process_cpus'] or 'any'}): "
        f"{setup['clients']} stream clients, "
        f"{setup['slowloris_connections']} slowloris, {setup['stalled_readers']} stalled "
        f"reader; {setup['rounds']} alternating rounds of {setup['window_s']:.2f} s "
        "(idle, loaded)",
        f"DSP real-time factor (unpaced): {num(dsp['realtime_factor_idle'], '.0f')}x idle, "
        f"{num(dsp['realtime_factor_loaded'], '.0f')}x loaded -> ratio "
        f"{num(dsp['ratio'], '.1%')} (target >= {dsp['target_ratio']:.0%}: "
        f"{verdict}); loaded vs the idle rounds either side: "
        f"{num(dsp['pair_ratio_median'], '.1%')} median; idle rounds {dsp['idle_rounds']} (spread "
        f"{num(dsp['idle_spread'], '.0%')}: machine noise), loaded {dsp['loaded_rounds']}",
        f"without the time the DSP thread waited for a CPU (other processes): "
        f"{num(dsp['realtime_factor_uncontended_idle'], '.0f')}x idle, "
        f"{num(dsp['realtime_factor_uncontended_loaded'], '.0f')}x loaded -> ratio "
        f"{num(dsp['ratio_uncontended'], '.1%')}",
        f"DSP thread idle / loaded: running {pct(cpu['dsp_thread_percent_idle'])} / "
        f"{pct(cpu['dsp_thread_percent_loaded'])}, waiting for a CPU "
        f"{pct(cpu['dsp_cpu_wait_percent_idle'])} / {pct(cpu['dsp_cpu_wait_percent_loaded'])}"
        f", blocked (GIL, ...) {pct(cpu['dsp_blocked_percent_idle'])} / "
        f"{pct(cpu['dsp_blocked_percent_loaded'])}",
        f"CPU idle / loaded: web thread "
        f"{num(cpu['web_thread_percent_idle'])} % / {num(cpu['web_thread_percent_loaded'])} "
        f"%, appliance process {pct(cpu['process_percent_idle'])} / "
        f"{pct(cpu['process_percent_loaded'])}; load process "
        f"{pct(cpu['load_process_percent'])}",
        f"stream clients: {cli['ready_min']} of {setup['clients']} connected and receiving "
        f"(ramp {num(cli['ramp_s'])} s, not measured), {num(cli['events_per_client_per_s'])} "
        f"events/s and {(cli['bytes_per_client_per_s'] or 0) / 1000:.1f} kB/s each "
        f"({num(cli['events_broadcast_per_s'])} broadcasts/s), {cli['cut_by_server']} cut by "
        f"the server, connect errors: {cli['connect_errors'] or 'none'}",
        f"slowloris: cut by the server {slow['cut']} times after {num(slow['cut_after_s'])} "
        f"s median (request_timeout_s {setup['request_timeout_s']:g}, one byte per "
        f"{setup['trickle_s']:g} s; {slow['connections']} connections, the others closed "
        f"by us at the end of a round; answers: {slow['statuses'] or 'none'})",
        f"stalled reader: {dropped} (stream_buffer_bytes {setup['stream_buffer_bytes']} + "
        f"the kernel's socket buffers; a last loaded window waits for it, RT factor "
        f"{num(stall['sustained_realtime_factor'], '.0f')}x); dropped within the "
        f"{setup['window_s']:.1f} s rounds: {stall['dropped_in_rounds']}",
        f"memory (RSS): {num(mem['rss_start_mb'], '.1f')} MB at start, "
        f"{', '.join(num(v, '.1f') for v in mem['rss_loaded_mb'])} MB at the end of each "
        f"loaded round (growth {num(mem['growth_over_loaded_rounds_mb'], '+.2f')} MB across "
        f"them, {num(mem['growth_per_round_last_half_mb'], '+.3f')} MB/round over the last "
        f"half), {num(mem['rss_sustained_mb'], '.1f')} MB after the stalled-reader window, "
        f"{num(mem['rss_end_mb'], '.1f')} MB at the end, max {num(mem['rss_max_mb'], '.1f')} MB",
        f"server: {srv['streams_loaded']} streams while loaded (min over rounds), "
        f"dropped_slow_streams {srv['dropped_slow_streams']}, timed_out_requests "
        f"{srv['timed_out_requests']}, rejected_connections {srv['rejected_connections']}",
    ])
