"""`pafw run` as a service: systemd notify protocol, watchdog, status snapshot, `pafw status`."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from firmware.app.analyzer import Analyzer
from firmware.service.run import Service


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1500000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def collect(sock, until, timeout=30.0):
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(messages):
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append((time.monotonic(), data))
    return messages


def test_ready_after_warm_up_then_watchdog_until_the_dsp_stalls(make_doc, notify_socket):
    def quiet(data):
        data["mqtt"]["enabled"] = False
        graph = data["processing"]["default_graph"]
        graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
        graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
        data["processing"]["status_interval_s"] = 0.5

    # With a cold kernel cache (a fresh pytest basetemp), warm_up() and the source's first
    # read compile kernels for seconds on a loaded 2-core machine. Fill the cache first; this
    # test is about the pings of a running service, not about a first start.
    scratch = Analyzer(make_doc(quiet), realtime=False)
    scratch.warm_up()
    with scratch.source:
        scratch.process_frame(scratch.source.read())
    service = Service(make_doc(quiet), realtime=True)
    warmed = threading.Event()
    real_warm_up = service.analyzer.warm_up
    service.analyzer.warm_up = lambda *a: (real_warm_up(*a), warmed.set())[0]
    stall, stalled, release = threading.Event(), threading.Event(), threading.Event()
    source = service.analyzer.source
    real_read = source.read

    def read():
        if stall.is_set():
            stalled.set()
            release.wait(3600)  # a capture driver that hangs
        return real_read()

    source.read = read
    runner = threading.Thread(target=service.run, kwargs={"duration_s": 30}, daemon=True)
    runner.start()
    # READY comes after the warm-up: a cold kernel cache on a loaded machine takes a while
    # (while it warms up, systemd's start timeout is extended: see test_start_timeout.py)
    first = collect(notify_socket, lambda m: any(d.startswith("READY=1") for _, d in m),
                    timeout=180)
    assert first[0][1].startswith("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=starting: ")
    assert first[-1][1].startswith("READY=1") and warmed.is_set()
    assert all(d.startswith("EXTEND_TIMEOUT_USEC=") for _, d in first[:-1])
    alive = collect(notify_socket, lambda m: sum("WATCHDOG=1" in d for _, d in m) >= 4,
                    timeout=30)
    pings = [t for t, d in alive if d == "WATCHDOG=1"]
    # the service pings every 0.5 s (a third of WatchdogSec); the contract with systemd is
    # a ping within WatchdogSec (1.5 s), which leaves a loaded machine room for a late tick
    assert len(pings) >= 4 and max(b - a for a, b in itertools.pairwise(pings)) < 1.5
    assert any(d.startswith("STATUS=") and "ppm" in d for _, d in alive)
    stall.set()
    assert stalled.wait(30), "the DSP thread reached the hanging read"
    # three ticks (0.5 s) for the main loop to see the last frame the DSP thread finished
    collect(notify_socket, lambda m: False, timeout=1.5)
    hung = collect(notify_socket, lambda m: False, timeout=2.5)
    assert not [d for _, d in hung if d == "WATCHDOG=1"], "no ping while the DSP hangs"
    assert any(d.startswith("STATUS=") for _, d in hung), "the main loop itself runs"
    service.request_stop()
    release.set()
    runner.join(30)
    last = collect(notify_socket, lambda m: any("STOPPING=1" in d for _, d in m), timeout=30)
    assert any("STOPPING=1" in d for _, d in last)


def pafw(*args, env):
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_pafw_status_reads_the_running_appliances_snapshot(state_env, tmp_path):
    config = tmp_path / "pafw.yaml"
    config.write_text(pafw("config", "default", env=state_env).stdout.replace(
        "status_interval_s: 5.0", "status_interval_s: 0.5"))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                             str(config)], env={**os.environ, **state_env},
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        out = pafw("status", "--config", str(config), env=state_env)
        while time.monotonic() < deadline and "ppm" not in out.stdout:
            time.sleep(0.5)
            out = pafw("status", "--config", str(config), env=state_env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "running" in out.stdout and "concentration:" in out.stdout
        assert "action alarm_relay (relay_action)" in out.stdout
        assert "dashboard http://127.0.0.1:" in out.stdout
        as_json = pafw("status", "--config", str(config), "--json", env=state_env)
        assert '"state": "running"' in as_json.stdout
        url = json.loads(as_json.stdout)["web"]["url"]  # `pafw run` serves its dashboard
        with urllib.request.urlopen(f"{url}/api/v1/status", timeout=30) as answer:
            assert json.load(answer)["device"]["id"] == "pafw-sim"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    out = pafw("status", "--config", str(config), env=state_env)
    assert out.returncode == 1 and ": stopped at " in out.stdout.splitlines()[0]
    assert "None" not in out.stdout  # every figure known, or left out
    assert any(line.startswith("  mqtt ") and ": stopped, " in line
               for line in out.stdout.splitlines())
    assert "dashboard" not in out.stdout  # not serving any more


def test_pafw_status_names_a_dead_appliance_and_a_fault():
    from firmware.tools.status import summarize

    base = {"version": "1", "pid": 2**22 + 1, "written_at": time.time() - 30,
            "uptime_s": 100.0, "frames": 5, "mqtt": {"broker": "b:1883", "outbox": {
                "pending": 2, "dropped": None, "closed": True}}}
    running, text = summarize({**base, "state": "running"})
    assert not running and "DEAD: process" in text and "None" not in text
    running, text = summarize({**base, "state": "failed", "fault": "ALSA device gone"})
    assert not running and "STOPPED ON A FAULT" in text and "FAULT: ALSA device gone" in text
    assert "2 messages kept in the outbox" in text and "None" not in text


def test_pafw_status_shows_each_actions_state_and_outputs():
    """The action lines come from each action's own status (state, outputs, worker)."""
    from firmware.tools.status import summarize

    snapshot = {"version": "1", "pid": os.getpid(), "written_at": time.time(),
                "state": "running", "uptime_s": 1.0, "frames": 5, "control": {"actions": {
                    "alarm_relay": {"type": "relay_action", "state": "active",
                                    "outputs": {"relay:alarm": "on"}, "triggers": 1,
                                    "successes": 1, "failures": 0},
                    "py": {"type": "python_action", "state": "failed", "outputs": {},
                           "enabled": False, "triggers": 3, "successes": 0, "failures": 3,
                           "worker": {"state": "failed"}}}}}
    _, text = summarize(snapshot)
    assert ("action alarm_relay (relay_action) [active]: 1 triggers, 1 ok, 0 failed; "
            "relay:alarm on") in text
    assert ("action py (python_action) [failed, worker failed] [DISABLED by an operator]: "
            "3 triggers, 0 ok, 3 failed") in text


def test_pafw_status_without_an_appliance(state_env, tmp_path):
    out = pafw("status", env=state_env)
    assert out.returncode == 1 and "no status snapshot" in out.stderr
    assert "Traceback" not in out.stderr


def test_pafw_status_reads_only_the_paths_of_the_config(state_env, tmp_path):
    """It needs the state dir only: no node type (scipy, numba) is imported, and an error
    in the paths section is located."""
    config = tmp_path / "pafw.yaml"
    config.write_text("paths:\n  state_dir: ''\n")
    out = pafw("status", "--config", str(config), env=state_env)
    assert out.returncode == 2
    assert f"{config}:2:3: paths.state_dir: expected a directory path" in out.stderr
    probe = ("import sys; from firmware import cli; cli.main(['status']); "
             "print(sorted(m for m in ('scipy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **state_env})
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_pafw_run_serves_modbus_when_enabled_and_reports_it(state_env, tmp_path):
    import yaml
    from pymodbus.client import ModbusTcpClient

    from tests.conftest import free_port
    from tests.waiting import wait_until

    port = free_port()
    config = tmp_path / "pafw.yaml"
    data = yaml.safe_load(pafw("config", "default", env=state_env).stdout)
    data["processing"]["status_interval_s"] = 0.5
    data["modbus"].update(enabled=True, port=port)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                             str(config)], env={**os.environ, **state_env},
                            stderr=subprocess.DEVNULL)
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    try:
        wait_until(lambda: proc.poll() is not None or client.connect(), timeout_s=180,
                   what="pafw run's Modbus server", poll_s=0.2)
        assert proc.poll() is None, "pafw run ended"
        reply = client.read_input_registers(0, count=16)
        assert not reply.isError() and reply.registers[2] == 1  # the layout version

        def reported():
            out = pafw("status", "--config", str(config), "--json", env=state_env)
            modbus = json.loads(out.stdout).get("modbus") if out.returncode == 0 else None
            return modbus is not None and modbus["port"] == port and modbus["requests"] >= 1

        wait_until(reported, timeout_s=60, what="the Modbus status in pafw status",
                   poll_s=0.5)
        out = pafw("status", "--config", str(config), env=state_env)
        assert f"  modbus 127.0.0.1:{port}: " in out.stdout
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _offline(data):
    """No MQTT (and no MQTT action), no web server."""
    data["mqtt"]["enabled"] = False
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
    graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
    data["web"]["enabled"] = False


def test_ready_only_once_the_first_frame_went_through_the_graph(make_doc, notify_socket):
    service = Service(make_doc(_offline), realtime=True)
    source = service.analyzer.source
    real_read, gate, waiting = source.read, threading.Event(), threading.Event()
    frames_at_ready = []

    def read():
        waiting.set()
        gate.wait(60)  # a capture device whose first period takes its time
        return real_read()

    source.read = read
    real_ready = service.notifier.ready
    service.notifier.ready = lambda *a: (frames_at_ready.append(service.analyzer.frames),
                                         real_ready(*a))[1]
    runner = threading.Thread(target=service.run, kwargs={"duration_s": 60}, daemon=True)
    runner.start()
    assert waiting.wait(300), "the DSP thread asks for its first frame"
    early = collect(notify_socket, lambda m: False, timeout=1.0)
    assert not [d for _, d in early if "READY=1" in d], "no READY before a frame"
    gate.set()
    ready = collect(notify_socket, lambda m: any("READY=1" in d for _, d in m), timeout=60)
    assert any(d.startswith("READY=1") for _, d in ready)
    assert frames_at_ready and frames_at_ready[0] >= 1
    service.request_stop()
    runner.join(30)
    assert not runner.is_alive()


def test_no_ready_when_stopped_before_the_first_frame(make_doc, notify_socket):
    service = Service(make_doc(_offline), realtime=True)
    source = service.analyzer.source
    real_read, gate, waiting = source.read, threading.Event(), threading.Event()

    def read():
        waiting.set()
        gate.wait(60)
        return real_read()

    source.read = read
    runner = threading.Thread(target=service.run, kwargs={"duration_s": 60}, daemon=True)
    runner.start()
    assert waiting.wait(300)
    service.request_stop()
    messages = collect(notify_socket, lambda m: any("STOPPING=1" in d for _, d in m),
                       timeout=30)
    gate.set()
    runner.join(30)
    assert any("STOPPING=1" in d for _, d in messages)
    assert not [d for _, d in messages if "READY=1" in d]
