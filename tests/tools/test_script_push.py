"""`pafw script push` against a real sshd on loopback (key authentication) and a live
appliance: a good script is swapped in, a broken one is rejected and the old one keeps
running, and a plain scp in slow chunks is never loaded half-written."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from firmware.config.loader import default_config_text
from tests.waiting import wait_until

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PAFW = [sys.executable, "-m", "firmware.cli"]
SCRIPT = '''
class Versioned(CustomPythonAction):
    VERSION = {version}

    def __init__(self, api):
        super().__init__(api)
        api.store.set("version", self.VERSION)

    def on_trigger(self, trigger_type, data):
        return True
{padding}'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sshd(tmp_path):
    """A private sshd on 127.0.0.1 accepting one generated key for the current user."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is not installed (./dev test installs openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("a private sshd needs root to switch users")
    d = tmp_path / "ssh"
    d.mkdir()
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "PermitRootLogin prohibit-password", f"PidFile {d / 'sshd.pid'}",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "sshd did not start"
            time.sleep(0.05)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(d / 'host.pub').read_text()}")
    yield {"port": port, "key": d / "client", "known_hosts": known}
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def appliance(tmp_path):
    """A live `pafw run` with a python_action running versioned.py (version 1)."""
    scripts, state = tmp_path / "scripts", tmp_path / "state"
    scripts.mkdir()
    (scripts / "versioned.py").write_text(SCRIPT.format(version=1, padding=""))
    data = yaml.safe_load(default_config_text())
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
    graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
    graph["nodes"].append({"id": "py", "type": "python_action", "parameters": {
        "python_script_path": "versioned.py", "python_class_name": "Versioned",
        "monitored_nodes": ["concentration"]}})
    graph["connections"].append({"from": "concentration", "to": "py"})
    data["mqtt"]["enabled"] = False
    data["processing"]["status_interval_s"] = 1.0
    data["paths"] = {"state_dir": str(state), "scripts_dir": str(scripts),
                     "cache_dir": str(tmp_path.parent / "numba-cache")}
    data["scripts"]["worker_user"] = None  # the test interpreter is not readable by nobody
    config = tmp_path / "pafw.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = subprocess.Popen([*PAFW, "run", "--config", str(config)],
                            stderr=subprocess.DEVNULL)
    store = state / "python_actions" / "py" / "store.json"
    deadline = time.monotonic() + 180
    while not (store.exists() and (state / "status.json").exists()):
        assert time.monotonic() < deadline and proc.poll() is None, "appliance did not start"
        time.sleep(0.2)
    yield {"config": config, "scripts": scripts, "store": store, "state": state}
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def running_version(appliance) -> int:
    return json.loads(appliance["store"].read_text())["version"]


def worker_status(appliance) -> dict:
    snapshot = json.loads((appliance["state"] / "status.json").read_text())
    return snapshot["control"]["actions"]["py"]["worker"]


def push(sshd, appliance, script: Path, *extra):
    return subprocess.run(
        [*PAFW, "script", "push", "root@127.0.0.1", str(script), "--port", str(sshd["port"]),
         "-i", str(sshd["key"]), "-o", f"UserKnownHostsFile={sshd['known_hosts']}",
         "--remote-pafw", shlex.join(PAFW), "--remote-config", str(appliance["config"]),
         # the wait for the new version is not what these tests time: a generous bound
         "--timeout", "120", *extra], capture_output=True, text=True, timeout=300)


def test_push_good_then_broken_script(sshd, appliance, tmp_path):
    good = tmp_path / "versioned.py"
    good.write_text(SCRIPT.format(version=2, padding=""))
    out = push(sshd, appliance, good)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "new version running in action 'py'" in out.stdout
    assert running_version(appliance) == 2

    broken = tmp_path / "broken.py"
    broken.write_text(SCRIPT.format(version=3, padding="").replace(
        "super().__init__(api)", "super().__init__(api); raise ValueError('bad config')"))
    out = push(sshd, appliance, broken, "--name", "versioned.py")
    assert out.returncode == 1
    assert "bad config" in out.stdout and "unchanged" in out.stdout
    assert running_version(appliance) == 2
    assert worker_status(appliance)["reload_failures"] == 0, "never even tried to swap it"
    leftovers = [p.name for p in appliance["scripts"].iterdir() if p.name.startswith(".")]
    assert leftovers == []

    syntax = tmp_path / "syntax.py"
    syntax.write_text("class Versioned(CustomPythonAction:\n")
    out = push(sshd, appliance, syntax, "--name", "versioned.py")
    assert out.returncode == 1 and "syntax error" in out.stdout and "not uploaded" in out.stdout
    assert running_version(appliance) == 2


def test_slow_scp_is_loaded_only_once_complete(sshd, appliance, tmp_path):
    big = tmp_path / "versioned.py"
    padding = "\n".join(f"# padding line {i:05d} " + "x" * 60 for i in range(600))
    big.write_text(SCRIPT.format(version=5, padding=padding))  # ~45 kB
    reloads = worker_status(appliance)["reloads"]
    start = time.monotonic()
    subprocess.run(
        # -O: the scp protocol, which writes the file in place and honours -l (Kbit/s)
        ["scp", "-q", "-O", "-l", "64", "-P", str(sshd["port"]), "-i", str(sshd["key"]),
         "-o", f"UserKnownHostsFile={sshd['known_hosts']}", "-o", "BatchMode=yes",
         str(big), f"root@127.0.0.1:{appliance['scripts'] / 'versioned.py'}"],
        check=True, timeout=120)
    assert time.monotonic() - start > 3, "the copy was slow enough to matter"
    wait_until(lambda: running_version(appliance) == 5, 60, "version 5 running")
    # the snapshot is rewritten every second: wait for it to show the reload, then watch
    # one more interval for a second (or failed) one
    wait_until(lambda: worker_status(appliance)["reloads"] > reloads, 60,
               "the reload in the status snapshot", poll_s=0.2)
    time.sleep(1.5)
    status = worker_status(appliance)
    assert status["reload_failures"] == 0, "no half-written version was ever tried"
    assert status["reloads"] == reloads + 1
