"""`pafw bench modbus`: what Modbus polling costs the DSP loop, and how fast reads answer.

On the simulator unpaced (the DSP thread runs as fast as it can, so its throughput is the
measure), with the Modbus server on a free loopback port, in alternating rounds:

- idle: no Modbus client but the latency probe;
- loaded: ``clients`` clients in a separate process (their own GIL, as on other machines),
  each reading the global block and every node block (one request each) 10 times a second.

In every window the probe, a client in this process, reads the first node block ``polls``
times and the DSP real-time factor is taken; the report gives the probe's p50/p95 and the
real-time factors side by side, and the loaded/idle ratio of their medians. Only 127.0.0.1 is
contacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.errors import PafwError
from firmware.stats import latency_summary

if TYPE_CHECKING:
    from firmware.config.loader import ConfigDocument

HOST = "127.0.0.1"
#: each loaded client polls this often (a PLC's usual scan is 100 ms to 1 s)
POLL_INTERVAL_S = 0.1
#: the DSP loop runs this long before the first window
SETTLE_S = 1.0
MIN_WINDOW_S = 1.0
READY_TIMEOUT_S = 60.0


def _config(workdir: Path, clients: int) -> ConfigDocument:
    """The default config: no MQTT, no web (the Modbus cost alone), paths in ``workdir``, a
    constant concentration, the Modbus server on a free loopback port."""
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
    data["web"]["enabled"] = False
    data["modbus"] = {"enabled": True, "bind": HOST, "port": 0,
                      "max_connections": clients + 10}
    path = workdir / "pafw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path, env=os.environ)


# ------------------------------------------------------------------ the load process
async def _poll(port: int, blocks: list[tuple[int, int]], stop: asyncio.Event,
                counts: dict[str, int]) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(HOST, port=port, timeout=10)
    await client.connect()
    counts["connected"] += 1
    try:
        while not stop.is_set():
            for address, count in blocks:
                reply = await client.read_input_registers(address, count=count)
                counts["errors" if reply.isError() else "reads"] += 1
            await asyncio.sleep(POLL_INTERVAL_S)
    except Exception:  # a failed client is counted; the others go on
        counts["failed"] += 1
    finally:
        client.close()


async def _load_main(port: int, clients: int, blocks: list[tuple[int, int]]) -> None:
    """Commands on stdin: ``start`` connects every client and answers ``ready`` once all
    are connected; ``stop`` ends them and answers the counts; EOF exits."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    counts = {"connected": 0, "reads": 0, "errors": 0, "failed": 0}
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip() == "start":
            stop = asyncio.Event()
            counts = {"connected": 0, "reads": 0, "errors": 0, "failed": 0}
            tasks = [asyncio.create_task(_poll(port, blocks, stop, counts))
                     for _ in range(clients)]
            while counts["connected"] + counts["failed"] < clients:
                await asyncio.sleep(0.01)
            print(json.dumps({"ready": True}), flush=True)
        elif line.strip() == "stop":
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            print(json.dumps(counts), flush=True)


class _LoadProcess:
    """The bench's handle on the load process (``python -m firmware.bench.modbus``)."""

    def __init__(self, port: int, clients: int, blocks: list[tuple[int, int]]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.bench.modbus", str(port), str(clients),
             json.dumps(blocks)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def command(self, word: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise PafwError(f"the Modbus load process ended (exit {self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------ the bench
def _probe(port: int, address: int, count: int, polls: int, done: threading.Event,
           into: list[float], errors: list[int]) -> None:
    """Time ``polls`` reads, one after the other (a thread of the bench process)."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(HOST, port=port, timeout=10)
    client.connect()  # type: ignore[no-untyped-call]  # unannotated in pymodbus
    try:
        for _ in range(polls):
            start = time.perf_counter()
            reply = client.read_input_registers(address, count=count)
            into.append(time.perf_counter() - start)
            if reply.isError():
                errors.append(1)
            time.sleep(0.005)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        done.set()


def _window(appliance: Any, port: int, address: int, polls: int,
            min_s: float) -> dict[str, Any]:
    """One window: the probe's reads, the DSP real-time factor while they ran."""
    analyzer = appliance.analyzer
    latencies: list[float] = []
    errors: list[int] = []
    done = threading.Event()
    frames0, start = analyzer.frames, time.perf_counter()
    thread = threading.Thread(target=_probe, args=(port, address, 32, polls, done, latencies,
                                                   errors), daemon=True)
    thread.start()
    while not done.wait(0.05) or time.perf_counter() - start < min_s:
        pass
    thread.join()
    wall = time.perf_counter() - start
    if analyzer.fault:
        raise PafwError(f"the DSP loop stopped: {analyzer.fault}")
    audio_s = (analyzer.frames - frames0) * analyzer.frame_size / analyzer.sample_rate
    return {"seconds": wall, "realtime_factor": audio_s / wall, "latencies": latencies,
            "probe_errors": len(errors)}


def run_modbus_bench(*, seconds: float, rounds: int, clients: int,
                     polls: int) -> dict[str, Any]:
    """``rounds`` idle and loaded windows, alternating; returns JSON-safe figures."""
    from firmware.app.appliance import Appliance
    from firmware.modbus.registers import GLOBAL_SIZE, NODE_BLOCK
    from firmware.modbus.server import ModbusServer

    min_s = max(MIN_WINDOW_S, seconds / max(1, 2 * rounds))
    idle: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pafw-bench-modbus-") as tmp:
        doc = _config(Path(tmp), clients)
        appliance = Appliance(doc, realtime=False)
        server: ModbusServer | None = None
        load: _LoadProcess | None = None
        try:
            appliance.start()
            server = ModbusServer(appliance, doc.config.modbus, appliance.operations)
            server.start()
            if server.port is None:
                raise PafwError(f"the Modbus server did not start: {server.bind_error}")
            blocks = [(0, GLOBAL_SIZE)] + [(server.map.node_address(i), NODE_BLOCK)
                                           for i in range(len(server.map.nodes))]
            load = _LoadProcess(server.port, clients, blocks)
            time.sleep(SETTLE_S)
            first = server.map.node_address(0)
            for _ in range(rounds):
                idle.append(_window(appliance, server.port, first, polls, min_s))
                load.command("start")
                loaded.append(_window(appliance, server.port, first, polls, min_s))
                loads.append(load.command("stop"))
            status = server.get_status()
        finally:
            if load is not None:
                load.stop()
            if server is not None:
                server.stop()
            appliance.stop()
    return _figures(idle, loaded, loads, status, clients=clients, polls=polls)


def _figures(idle: list[dict[str, Any]], loaded: list[dict[str, Any]],
             loads: list[dict[str, Any]], status: dict[str, Any], *, clients: int,
             polls: int) -> dict[str, Any]:
    def kind(windows: list[dict[str, Any]]) -> dict[str, Any]:
        factors = [w["realtime_factor"] for w in windows]
        latencies = [s for w in windows for s in w["latencies"]]
        return {"realtime_factor": [round(f, 2) for f in factors],
                "realtime_factor_median": round(statistics.median(factors), 2),
                "read_latency_ms": latency_summary(latencies),
                "probe_errors": sum(w["probe_errors"] for w in windows)}

    quiet, busy = kind(idle), kind(loaded)
    seconds = sum(w["seconds"] for w in loaded)
    reads = sum(x.get("reads", 0) for x in loads)
    return {
        "clients": clients, "polls_per_window": polls, "rounds": len(idle),
        "idle": quiet, "loaded": busy,
        "dsp_ratio": round(busy["realtime_factor_median"] / quiet["realtime_factor_median"],
                           3),
        "load": {"reads": reads, "reads_per_s": round(reads / seconds, 1) if seconds else None,
                 "errors": sum(x.get("errors", 0) for x in loads),
                 "failed_clients": sum(x.get("failed", 0) for x in loads)},
        "server": {k: status[k] for k in ("requests", "errors", "connections_total",
                                          "rejected_connections", "image_builds")},
    }


def format_modbus_report(figures: dict[str, Any]) -> str:
    """The figures as a short text table."""
    quiet, busy = figures["idle"], figures["loaded"]
    lines = [
        f"Modbus bench: {figures['clients']} polling clients (every "
        f"{POLL_INTERVAL_S * 1000:.0f} ms, global + node blocks) vs none, "
        f"{figures['rounds']} alternating rounds, {figures['polls_per_window']} timed reads "
        "per window",
        f"{'':<28}{'idle':>12}{'loaded':>12}",
        f"{'DSP real-time factor (med)':<28}{quiet['realtime_factor_median']:>12}"
        f"{busy['realtime_factor_median']:>12}",
        f"{'read latency p50 (ms)':<28}{quiet['read_latency_ms']['p50']!s:>12}"
        f"{busy['read_latency_ms']['p50']!s:>12}",
        f"{'read latency p95 (ms)':<28}{quiet['read_latency_ms']['p95']!s:>12}"
        f"{busy['read_latency_ms']['p95']!s:>12}",
        f"DSP ratio loaded/idle: {figures['dsp_ratio']:.3f}",
        f"load: {figures['load']['reads']} reads ({figures['load']['reads_per_s']}/s), "
        f"{figures['load']['errors']} errors, {figures['load']['failed_clients']} failed "
        f"clients; server: {figures['server']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # the load process
    asyncio.run(_load_main(int(sys.argv[1]), int(sys.argv[2]),
                           [tuple(b) for b in json.loads(sys.argv[3])]))
