"""`pafw bench actions`: what the actions cost and how fast MQTT delivers.

In one run, against a private Mosquitto on a free loopback port:

- latency from a computing result (its frame's capture time) to the MQTT message received by
  an independent subscriber, with the appliance paced in real time (p50/p95/p99);
- sustained outbox throughput: QoS 1 messages written to the outbox, sent and acknowledged;
- the DSP real-time factor of the default graph with every built-in action attached and their
  control loop running, against the same graph without actions, on the same frames in
  alternating rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from firmware import __version__
from firmware.actions.mqtt.link import MqttLink
from firmware.app.appliance import Appliance
from firmware.bench.graph import realtime_factors, simulated_frames
from firmware.config.loader import ConfigDocument, default_config_text, load_config
from firmware.errors import PafwError
from firmware.stats import percentiles

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_mosquitto(workdir: Path) -> Iterator[int]:
    """A Mosquitto of our own on 127.0.0.1 (never the system broker); yields its port."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise PafwError("the actions benchmark needs Mosquitto (apt-get install mosquitto)")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
                    f"user {pwd.getpwuid(os.getuid()).pw_name}\nmax_queued_messages 100000\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise PafwError(f"mosquitto did not start on {HOST}:{port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _config(port: int, state_dir: Path, hook_url: str, *, actions: bool,
            interval_s: float | None) -> ConfigDocument:
    data = yaml.safe_load(default_config_text())
    data["mqtt"].update(host=HOST, port=port)
    data["mqtt"]["discovery"]["enabled"] = False
    data["paths"]["state_dir"] = str(state_dir)
    graph = data["processing"]["default_graph"]
    if actions:
        graph["nodes"].append({"id": "webhook", "type": "http_action", "parameters": {
            "monitored_nodes": ["concentration"], "concentration_threshold": 2000.0,
            "webhook": {"url": hook_url, "retries": 0}}})
        graph["connections"].append({"from": "concentration", "to": "webhook"})
        for node in graph["nodes"]:
            if node["id"] == "mqtt":
                node["parameters"]["interval_s"] = interval_s
    else:
        kept = {"input", "bandpass", "gain", "differential", "peak_finder", "concentration"}
        graph["nodes"] = [n for n in graph["nodes"] if n["id"] in kept]
        graph["connections"] = [c for c in graph["connections"] if c["to"] in kept]
    return load_config(text=yaml.safe_dump(data, sort_keys=False), env=os.environ)


def _subscriber(port: int, topic: str, on_message: Any) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    connected = threading.Event()

    def on_connect(c: paho.Client, _userdata: Any, _flags: Any, _reason: Any,
                   _properties: Any) -> None:
        c.subscribe(topic, qos=1)
        connected.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(HOST, port)
    client.loop_start()
    if not connected.wait(10):
        raise PafwError("the benchmark subscriber could not connect")
    time.sleep(0.2)  # let the subscription settle
    return client


def measure_latency(port: int, workdir: Path, hook_url: str, seconds: float) -> dict[str, Any]:
    """Result -> subscriber latency with the appliance paced in real time."""
    doc = _config(port, workdir / "latency", hook_url, actions=True, interval_s=0.0)
    latencies: list[float] = []

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        received = time.time()
        results = json.loads(msg.payload)["results"]
        newest = max(r["timestamp"] for r in results.values())
        latencies.append(received - newest)

    sub = _subscriber(port, f"pafw/{doc.config.device.id}/measurements", on_message)
    appliance = Appliance(doc, realtime=True)
    try:
        appliance.start()
        time.sleep(seconds)
    finally:
        appliance.stop()
        sub.loop_stop()
        sub.disconnect()
    ms = np.asarray(latencies[3:]) * 1e3  # the first ones include start-up
    if ms.size == 0:
        raise PafwError("no measurement reached the subscriber")
    p50, p95, p99 = percentiles(ms, (50, 95, 99))
    return {"messages": int(ms.size), "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(ms.max()), 3)}


def measure_outbox_throughput(port: int, workdir: Path, count: int) -> dict[str, Any]:
    """QoS 1 messages per second through outbox -> broker -> PUBACK -> removal."""
    doc = _config(port, workdir / "throughput", "", actions=False, interval_s=None)
    link = MqttLink(doc.config.mqtt, device_id="bench-outbox", state_dir=workdir / "outbox",
                    software_version=__version__)
    link.start()
    try:
        if not link.wait_connected(10):
            raise PafwError("the outbox benchmark could not connect")
        payload = {"results": {"concentration": {"concentration_ppm": 1234.5}}}
        start = time.perf_counter()
        for _ in range(count):
            link.publish_measurement(payload)
        while link.get_status()["outbox"]["pending"] > 0:
            if time.perf_counter() - start > 120:
                raise PafwError("the outbox did not drain within 120 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
    finally:
        link.stop()
    return {"messages": count, "seconds": round(elapsed, 3),
            "messages_per_s": round(count / elapsed, 1)}


def measure_dsp_overhead(port: int, workdir: Path, hook_url: str, frames: int,
                         rounds: int) -> dict[str, Any]:
    """Real-time factor of the graph with all built-in actions attached vs none."""
    with_actions = Appliance(_config(port, workdir / "with", hook_url, actions=True,
                                     interval_s=None), realtime=False)
    without = Appliance(_config(port, workdir / "without", hook_url, actions=False,
                                interval_s=None), realtime=False)
    data = simulated_frames(without.doc, frames)
    times: dict[str, list[float]] = {"with": [], "without": []}
    try:
        if with_actions.mqtt is not None:
            with_actions.mqtt.start()
        with_actions.control.start()
        for appliance in (with_actions, without):
            appliance.analyzer.warm_up()
        for _ in range(rounds):
            for name, appliance in (("without", without), ("with", with_actions)):
                graph = appliance.analyzer.graph
                start = time.perf_counter()
                for frame in data:
                    frame.timestamp = time.monotonic()
                    graph.process(frame)
                times[name].append(time.perf_counter() - start)
    finally:
        with_actions.stop()
        without.stop()
    factors = realtime_factors(data, times)
    rt_with, rt_without = factors["with"], factors["without"]
    return {"frames": len(data), "rounds": rounds,
            "realtime_factor_with_actions": round(rt_with, 1),
            "realtime_factor_without_actions": round(rt_without, 1),
            "throughput_ratio": round(rt_with / rt_without, 4)}


def run_actions_bench(*, seconds: float = 20.0, messages: int = 5000, frames: int = 600,
                      rounds: int = 7) -> dict[str, Any]:
    """All three measurements in one run; returns JSON-safe figures."""
    with tempfile.TemporaryDirectory(prefix="pafw-bench-") as tmp:
        workdir = Path(tmp)
        server = ThreadingHTTPServer((HOST, 0), _Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hook_url = f"http://{HOST}:{server.server_address[1]}/hook"
        try:
            with private_mosquitto(workdir) as port:
                return {
                    "latency": measure_latency(port, workdir, hook_url, seconds),
                    "outbox": measure_outbox_throughput(port, workdir, messages),
                    "dsp": measure_dsp_overhead(port, workdir, hook_url, frames, rounds),
                }
        finally:
            server.shutdown()


def format_actions_report(figures: dict[str, Any]) -> str:
    """Human-readable report of run_actions_bench's figures."""
    lat, box, dsp = figures["latency"], figures["outbox"], figures["dsp"]
    return "\n".join([
        f"result -> MQTT subscriber latency ({lat['messages']} messages, real time): "
        f"p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, "
        f"max {lat['max_ms']:.2f} ms",
        f"outbox throughput (QoS 1, acknowledged): {box['messages_per_s']:.0f} msg/s "
        f"({box['messages']} in {box['seconds']:.2f} s)",
        f"DSP real-time factor: {dsp['realtime_factor_with_actions']:.0f}x with all built-in "
        f"actions, {dsp['realtime_factor_without_actions']:.0f}x without "
        f"(ratio {dsp['throughput_ratio']:.1%}, {dsp['rounds']} alternating rounds of "
        f"{dsp['frames']} frames)",
    ])
