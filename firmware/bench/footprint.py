"""`pafw bench footprint`: the memory and start-up time of a real `pafw run`.

The appliance runs as a child process with the default config (or ``--config``) on the
simulator, in a private state/scripts/cache directory, its web server on a free loopback port
and its MQTT broker address on a loopback port nobody listens on (the outbox buffers, as on an
appliance whose broker is down). ``NOTIFY_SOCKET`` points at a datagram socket of the bench's,
so READY=1 is seen exactly as systemd would see it. Measured:

- time from launching the process to READY=1 and to the first concentration result on the
  web API (cold: empty caches; warm: the best of the later starts);
- after ``settle`` seconds of running: RSS, USS, PSS and anonymous memory of the appliance
  and of each of its child processes (the Python-action workers), from
  ``/proc/PID/smaps_rollup``, and the appliance's peak RSS (``VmHWM``);
- per top-level dependency, in a fresh interpreter each: import time and the RSS/USS it adds.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

#: what `pafw run` may import, each measured alone; the last line is the whole run path
DEPENDENCIES = (
    "numpy", "numba", "llvmlite.binding", "scipy", "scipy.signal", "scipy.fft", "pydantic",
    "yaml", "paho.mqtt.client", "gpiozero", "msgpack", "alsaaudio", "firmware.service.run",
)
MIB = 2**20
_IMPORT_PROBE = r"""
import importlib, json, sys, time
def mem():
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]
rss0, uss0 = mem()
start = time.perf_counter()
try:
    importlib.import_module(sys.argv[1])
except ImportError:
    print(json.dumps({"missing": True}))
    raise SystemExit(0)
seconds = time.perf_counter() - start
rss1, uss1 = mem()
print(json.dumps({"missing": False, "seconds": seconds, "rss": rss1 - rss0,
                  "uss": uss1 - uss0, "rss_total": rss1}))
"""
BENCH_SCRIPT = '''
class FootprintAction(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True
'''


def memory_of(pid: int) -> dict[str, float]:
    """RSS, USS (private pages), PSS and anonymous memory of ``pid`` in MiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"rss_mb": round(fields["Rss"] / MIB, 1), "uss_mb": round(uss / MIB, 1),
            "pss_mb": round(fields["Pss"] / MIB, 1),
            "anon_mb": round(fields["Anonymous"] / MIB, 1)}


def peak_rss_mb(pid: int) -> float:
    """The process's peak RSS so far (``VmHWM``) in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of each of its threads, recursively)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def measure_imports(modules: tuple[str, ...] = DEPENDENCIES, *, runs: int = 2,
                    cwd: Path | None = None) -> list[dict[str, Any]]:
    """Import time (best of ``runs``) and the memory each module adds to a bare interpreter."""
    figures: list[dict[str, Any]] = []
    for module in modules:
        best: dict[str, Any] | None = None
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, module], cwd=cwd,
                                 capture_output=True, text=True, check=True, timeout=120)
            probe = json.loads(out.stdout)
            if probe["missing"]:
                break
            if best is None or probe["seconds"] < best["seconds"]:
                best = probe
        if best is None:
            figures.append({"module": module, "installed": False})
            continue
        figures.append({"module": module, "installed": True,
                        "import_ms": round(best["seconds"] * 1e3, 1),
                        "rss_mb": round(best["rss"] / MIB, 1),
                        "uss_mb": round(best["uss"] / MIB, 1),
                        "process_rss_mb": round(best["rss_total"] / MIB, 1)})
    return figures


def _config_file(workdir: Path, base: Path | None, python_actions: int) -> Path | None:
    """The config to run: ``base`` (or the default) with ``python_actions`` script actions."""
    if python_actions == 0:
        return base
    # the packaged file itself: the bench process imports nothing the appliance maps (numba's
    # LLVM above all), so the appliance's pages are its own and USS/page-out mean what they say
    text = (base.read_text(encoding="utf-8") if base is not None else
            importlib.resources.files("firmware").joinpath("default_config.yaml")
            .read_text(encoding="utf-8"))
    data = yaml.safe_load(text)
    data.pop("values", None)  # anchors are resolved already
    graph = data["processing"]["default_graph"]
    source = next(n["id"] for n in graph["nodes"] if n["type"] == "concentration")
    for i in range(python_actions):
        graph["nodes"].append({"id": f"footprint_py{i}", "type": "python_action",
                               "parameters": {"python_script_path": "footprint_action.py",
                                              "python_class_name": "FootprintAction",
                                              "monitored_nodes": [source]}})
        graph["connections"].append({"from": source, "to": f"footprint_py{i}"})
    data.setdefault("scripts", {})["worker_user"] = None
    path = workdir / "footprint.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _first_result(port: int) -> bool:
    """True once the web API reports a concentration result."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/results",
                                    timeout=1.0) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    results = body.get("results", body) if isinstance(body, dict) else body
    items = results.values() if isinstance(results, dict) else results
    return any(isinstance(r, dict) and r.get("kind") == "concentration" for r in items)


class _Launch:
    """One `pafw run` child with its private directories, ports and notify socket."""

    def __init__(self, workdir: Path, config: Path | None, *, cwd: Path | None,
                 cache_dir: Path) -> None:
        self.port = free_port()
        self.notify_path = workdir / "notify.sock"
        self.notify_path.unlink(missing_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        env = dict(os.environ)
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID", "PAFW_WEB_TOKEN"):
            env.pop(name, None)
        env.update(PAFW_STATE_DIR=str(workdir / "state"),
                   PAFW_SCRIPTS_DIR=str(workdir / "scripts"),
                   PAFW_CACHE_DIR=str(cache_dir), PAFW_WEB_BIND="127.0.0.1",
                   PAFW_WEB_PORT=str(self.port), PAFW_MQTT_HOST="127.0.0.1",
                   PAFW_MQTT_PORT=str(free_port()), NOTIFY_SOCKET=str(self.notify_path))
        cmd = [sys.executable, "-m", "firmware.cli", "run"]
        if config is not None:
            cmd += ["--config", str(config)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.ready_s: float | None = None

    def _poll_notify(self) -> None:
        self.notify.setblocking(False)
        while True:
            try:
                message = self.notify.recv(4096).decode()
            except BlockingIOError:
                return
            if self.ready_s is None and "READY=1" in message.split("\n"):
                self.ready_s = time.perf_counter() - self.started

    def wait_first_result(self, timeout_s: float) -> float:
        """Seconds from launch to the first concentration result (READY is noted on the way)."""
        deadline = self.started + timeout_s
        while time.perf_counter() < deadline:
            self._poll_notify()
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"pafw run exited with {self.proc.returncode}: "
                                   f"{stderr[-2000:]}")
            if _first_result(self.port):
                seconds = time.perf_counter() - self.started
                self._poll_notify()
                return seconds
            time.sleep(0.01)
        raise RuntimeError(f"pafw run gave no concentration result within {timeout_s:g} s")

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from launch to READY=1."""
        deadline = self.started + timeout_s
        while self.ready_s is None and time.perf_counter() < deadline:
            self._poll_notify()
            time.sleep(0.01)
        if self.ready_s is None:
            raise RuntimeError(f"pafw run sent no READY=1 within {timeout_s:g} s")
        return self.ready_s

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.notify.close()


def run_footprint_bench(*, config: Path | None = None, settle_s: float = 5.0,
                        warm_runs: int = 2, python_actions: int = 0, imports: bool = True,
                        cwd: Path | None = None, cache_dir: Path | None = None,
                        timeout_s: float = 300.0) -> dict[str, Any]:
    """Start `pafw run` ``1 + warm_runs`` times (cold, then warm caches); measure memory on
    the last start after ``settle_s``; JSON-safe figures. ``cache_dir``: the kernel and
    design cache to use (default: a new, empty one, so the first start is cold)."""
    with tempfile.TemporaryDirectory(prefix="pafw-footprint-") as tmp:
        workdir = Path(tmp)
        (workdir / "scripts").mkdir()
        (workdir / "scripts" / "footprint_action.py").write_text(BENCH_SCRIPT)
        config_path = _config_file(workdir, config, python_actions)
        starts: list[dict[str, float]] = []
        memory: dict[str, Any] = {}
        for run in range(1 + warm_runs):
            launch = _Launch(workdir, config_path, cwd=cwd,
                             cache_dir=cache_dir or workdir / "cache")
            try:
                first = launch.wait_first_result(timeout_s)
                ready = launch.wait_ready(timeout_s)
                starts.append({"ready_s": round(ready, 3), "first_result_s": round(first, 3)})
                if run == warm_runs:
                    time.sleep(settle_s)
                    workers = [{"pid": pid, **memory_of(pid)}
                               for pid in descendants(launch.proc.pid)]
                    memory = {"appliance": {**memory_of(launch.proc.pid),
                                            "peak_rss_mb": peak_rss_mb(launch.proc.pid)},
                              "workers": workers}
            finally:
                launch.close()
    warm = starts[1:] or starts
    total = memory["appliance"]["rss_mb"] + sum(w["rss_mb"] for w in memory["workers"])
    return {
        "config": str(config) if config is not None else "default",
        "python_actions": python_actions,
        "settle_s": settle_s,
        "start": {"cold": starts[0],
                  "warm": {"ready_s": min(s["ready_s"] for s in warm),
                           "first_result_s": min(s["first_result_s"] for s in warm),
                           "runs": len(warm)}},
        **memory,
        "total_rss_mb": round(total, 1),
        "imports": measure_imports(cwd=cwd) if imports else [],
    }


def format_footprint_report(figures: dict[str, Any]) -> str:
    """Human-readable report."""
    cold, warm = figures["start"]["cold"], figures["start"]["warm"]
    app = figures["appliance"]
    lines = [
        f"pafw run ({figures['config']} config, {figures['python_actions']} python actions), "
        f"memory after {figures['settle_s']:g} s:",
        f"  appliance: RSS {app['rss_mb']:.1f} MB, USS {app['uss_mb']:.1f} MB, "
        f"PSS {app['pss_mb']:.1f} MB, anonymous {app['anon_mb']:.1f} MB, "
        f"peak RSS {app['peak_rss_mb']:.1f} MB",
    ]
    lines += [f"  worker {w['pid']}: RSS {w['rss_mb']:.1f} MB, USS {w['uss_mb']:.1f} MB"
              for w in figures["workers"]]
    lines += [
        f"  total RSS {figures['total_rss_mb']:.1f} MB",
        f"start, warm caches (best of {warm['runs']}): READY {warm['ready_s']:.2f} s, "
        f"first result {warm['first_result_s']:.2f} s",
        f"start, cold caches: READY {cold['ready_s']:.2f} s, "
        f"first result {cold['first_result_s']:.2f} s",
    ]
    if figures["imports"]:
        lines.append("imports, each in a fresh interpreter (time, RSS added, USS added):")
    for row in figures["imports"]:
        if not row["installed"]:
            lines.append(f"  {row['module']:<22} not installed")
            continue
        lines.append(f"  {row['module']:<22} {row['import_ms']:7.0f} ms "
                     f"{row['rss_mb']:7.1f} MB {row['uss_mb']:7.1f} MB")
    return "\n".join(lines)
