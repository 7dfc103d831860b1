"""The arm64 proof: the real site.yml applied over SSH to an emulated 64-bit Debian 12 host.

The host is the image of tests/arm64/image.py (Debian's arm64 packages, Debian's kernel)
booted by tests/arm64/vm.py under qemu-system-aarch64, reached as a Raspberry Pi on the LAN
is: ansible-playbook over SSH with a key, an admin with sudo. The role installs the
firmware's aarch64 wheels from PyPI and builds pyalsaaudio there; the service comes up under
systemd, reports READY, publishes to a private Mosquitto on this machine's loopback (the
guest reaches it as 10.0.2.2), serves the dashboard through the web port's forward, and
``pafw script push`` swaps a script in over the SSH forward. A second run changes nothing.

Slow (an hour and more under emulation on a shared machine): the ``arm64`` marker keeps it
out of the default run; ``./dev test-arm64`` runs it. The figures (boot, playbook, time to
READY, first compile, memory) are printed and written to ``<run dir>/figures.json``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware.config.loader import default_config_text
from tests.arm64.image import ADMIN_USER, Image, build_image
from tests.arm64.vm import HOST_FROM_GUEST, ArmVM
from tests.deploy.playbooks import PlaybookRun, run_playbook, tool
from tests.deploy.test_ansible import build_wheel
from tests.mqtt_broker import Broker, Subscriber
from tests.tools.test_script_push import SCRIPT

pytestmark = [pytest.mark.arm64, pytest.mark.timeout(4 * 3600)]

WEB_TOKEN = "arm64-test-token-0123456789"
STORE = "/var/lib/pafw/python_actions/py/store.json"


def processing_with_a_script() -> dict[str, Any]:
    """The shipped processing section plus a python_action ``py`` running versioned.py
    (not on the host yet: the test pushes it)."""
    processing: dict[str, Any] = yaml.safe_load(default_config_text())["processing"]
    graph = processing["default_graph"]
    graph["nodes"].append({"id": "py", "type": "python_action", "parameters": {
        "python_script_path": "versioned.py", "python_class_name": "Versioned",
        "monitored_nodes": ["concentration"]}})
    graph["connections"].append({"from": "concentration", "to": "py"})
    processing["status_interval_s"] = 2.0
    return processing


def write_inventory(path: Path, vm: ArmVM, wheel: Path, broker: Broker) -> None:
    """One analyzer reached over SSH through the forward, as a Pi on the LAN."""
    host = {
        "ansible_host": "127.0.0.1",
        "ansible_port": vm.ssh_port,
        "ansible_user": ADMIN_USER,
        "ansible_ssh_private_key_file": str(vm.image.key),
        "ansible_ssh_common_args": shlex.join(vm.ssh_options),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_timeout": 120,  # an emulated CPU is slow to answer the SSH handshake
        "pafw_wheel": str(wheel),
        "pafw_upload_users": [ADMIN_USER],
        "pafw_mqtt_host": HOST_FROM_GUEST,
        "pafw_mqtt_port": broker.port,
        "pafw_web_token": WEB_TOKEN,
        "pafw_processing": processing_with_a_script(),
        # the shipped graph's relay and LED nodes need the shipped hal section beside it
        "pafw_hal": yaml.safe_load(default_config_text())["hal"],
    }
    inventory = {"all": {"children": {"analyzers": {"hosts": {"pafw-arm64": host}}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


@dataclass
class Arm64Run:
    """The booted guest with the role applied, and what was measured on the way."""

    vm: ArmVM
    broker: Broker
    subscriber: Subscriber
    inventory: Path
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def show(self, *properties: str) -> dict[str, str]:
        """``systemctl show pafw.service`` properties as a dict."""
        argv = ["systemctl", "show", "pafw.service", *(f"--property={p}" for p in properties)]
        out = self.vm.ssh(argv, check=True).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    def journal(self) -> str:
        return self.vm.ssh("sudo journalctl -u pafw.service -o cat --no-pager",
                           check=True).stdout

    def push(self, script: Path) -> subprocess.CompletedProcess[str]:
        """``pafw script push`` from this machine over the SSH forward."""
        return subprocess.run(
            [sys.executable, "-m", "firmware.cli", "script", "push", self.vm.login,
             str(script), "--name", "versioned.py", "--port", str(self.vm.ssh_port),
             "-i", str(self.vm.image.key),
             *self.vm.ssh_options,
             "--timeout", "900"], capture_output=True, text=True, timeout=1800)

    def stored_version(self) -> int | None:
        done = self.vm.ssh(["sudo", "cat", STORE])
        return json.loads(done.stdout).get("version") if done.returncode == 0 else None


def _measure_service(run: Arm64Run, prefix: str = "") -> None:
    """Time to READY, kernel warm-up and memory of the running service, from systemd (the
    newest start; ``prefix`` names the start in the figures)."""
    shown = run.show("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic",
                     "MainPID", "MemoryCurrent", "NRestarts")
    run.figures[f"{prefix}ready_s"] = round((int(shown["ActiveEnterTimestampMonotonic"])
                                             - int(shown["ExecMainStartTimestampMonotonic"]))
                                            / 1e6, 1)
    run.figures[f"{prefix}restarts_before_ready"] = int(shown["NRestarts"])
    warm = re.findall(r"kernels ready in (\d+\.\d+) s", run.journal())
    run.figures[f"{prefix}kernels_s"] = float(warm[-1]) if warm else None
    status = run.vm.ssh(["cat", f"/proc/{shown['MainPID']}/status"], check=True).stdout
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    run.figures[f"{prefix}service_rss_mib"] = round(int(rss.group(1)) / 1024, 1) if rss else None
    if shown["MemoryCurrent"].isdigit():
        run.figures[f"{prefix}unit_memory_mib"] = round(int(shown["MemoryCurrent"]) / 2**20, 1)


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arm64Run]:
    """Build (or reuse) the image, boot it, apply site.yml, measure, apply it again."""
    if os.geteuid() != 0:
        pytest.skip("the arm64 test needs root (mmdebstrap, binfmt_misc)")
    tool("ansible-playbook")
    work = tmp_path_factory.mktemp("arm64")
    started = time.monotonic()
    image: Image = build_image()
    figures: dict[str, Any] = {"image_build_s": image.build_seconds,
                               "image_reused": time.monotonic() - started < 60}
    wheel = build_wheel(work / "dist")
    with Broker(work / "broker") as broker, ArmVM(image, work / "vm") as vm:
        figures["boot_s"] = round(vm.boot_seconds, 1)
        vm.trust_local_cas()
        subscriber = Subscriber(broker, ["pafw/#"], client_id="pafw-arm64-test")
        inventory = work / "hosts.yml"
        write_inventory(inventory, vm, wheel, broker)
        run = Arm64Run(vm=vm, broker=broker, subscriber=subscriber, inventory=inventory,
                       figures=figures)
        run.runs["apply"] = run_playbook(inventory, timeout=3 * 3600)
        figures["playbook_s"] = round(run.runs["apply"].seconds, 1)
        if run.runs["apply"].returncode == 0:
            _measure_service(run)
            run.runs["reapply"] = run_playbook(inventory, timeout=3600)
            figures["reapply_s"] = round(run.runs["reapply"].seconds, 1)
            # a later start (every boot of a Pi): the kernels come from the cache
            vm.ssh(["sudo", "systemctl", "restart", "pafw.service"], check=True, timeout=1800)
            time.sleep(20)  # start-up memory is given back after READY
            _measure_service(run, prefix="warm_")
        try:
            yield run
        finally:
            subscriber.close()
            (work / "figures.json").write_text(json.dumps(figures, indent=2))
            journal = vm.ssh("sudo journalctl -b --no-pager -o short-monotonic", timeout=600)
            (work / "journal.txt").write_text(journal.stdout)
            print(f"\narm64 figures ({work / 'figures.json'}): {json.dumps(figures)}")


def test_site_yml_applies_on_arm64(arm64: Arm64Run) -> None:
    apply = arm64.runs["apply"]
    assert apply.returncode == 0 and apply.total("failures") == 0, (
        apply.describe() + "\n" + apply.output[-4000:])
    facts = arm64.vm.ssh(["uname", "-m"], check=True).stdout.strip()
    assert facts == "aarch64"
    # the aarch64 branch: the pi extra's lgpio is in the venv, pyalsaaudio was built here
    venv = arm64.vm.ssh(["/opt/pafw/current/venv/bin/python", "-c",
                         "import alsaaudio, lgpio, numba, llvmlite, platform; "
                         "print(platform.machine(), numba.__version__)"], check=True)
    assert venv.stdout.startswith("aarch64 "), venv.stdout + venv.stderr


def test_service_is_active_and_ready_under_systemd(arm64: Arm64Run) -> None:
    shown = arm64.show("ActiveState", "SubState", "UnitFileState", "StatusText", "NRestarts")
    assert shown["ActiveState"] == "active" and shown["SubState"] == "running", shown
    assert shown["UnitFileState"] == "enabled", shown
    assert shown["NRestarts"] == "0", "the first start must not time out or crash"
    assert shown["StatusText"].startswith("running: simulator") or " ppm" in shown["StatusText"]
    journal = arm64.journal()
    assert "kernels ready in" in journal, journal[-3000:]
    status = arm64.vm.ssh(["/opt/pafw/current/venv/bin/pafw", "status", "--config",
                           "/etc/pafw/config.yaml", "--json"], check=True)
    assert json.loads(status.stdout)["state"] == "running"


def test_measurements_reach_the_broker_on_the_host(arm64: Arm64Run) -> None:
    topic = "pafw/pafw-arm64/measurements"
    arrived = arm64.subscriber.wait_for(lambda msgs: any(m.topic == topic for m in msgs),
                                        timeout=300)
    topics = sorted({m.topic for m in arm64.subscriber.messages})
    assert arrived, f"no message on {topic} at the host's broker; topics seen: {topics}"
    assert isinstance(arm64.subscriber.on(topic)[0].json(), dict)
    online = arm64.subscriber.on("pafw/pafw-arm64/availability")
    assert online and online[-1].payload == b"online", online


def test_dashboard_is_served_through_the_forward(arm64: Arm64Run) -> None:
    base = f"http://127.0.0.1:{arm64.vm.web_port}"
    with urllib.request.urlopen(f"{base}/", timeout=120) as page:
        assert page.status == 200 and "<html" in page.read().decode().lower()
    with urllib.request.urlopen(f"{base}/api/v1/status", timeout=120) as answer:
        status = json.load(answer)
    assert status["device"]["id"] == "pafw-arm64"


def test_script_push_swaps_a_script_over_ssh(arm64: Arm64Run, tmp_path: Path) -> None:
    for version in (1, 2):
        script = tmp_path / f"v{version}" / "versioned.py"
        script.parent.mkdir()
        script.write_text(SCRIPT.format(version=version, padding=""))
        started = time.monotonic()
        out = arm64.push(script)
        arm64.figures[f"script_push_v{version}_s"] = round(time.monotonic() - started, 1)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "new version running in action 'py'" in out.stdout, out.stdout
        assert arm64.stored_version() == version


def test_reapply_changes_nothing(arm64: Arm64Run) -> None:
    reapply = arm64.runs.get("reapply")
    assert reapply is not None, "the first run failed: nothing to reapply"
    assert reapply.returncode == 0 and reapply.total("changed") == 0, reapply.describe()
