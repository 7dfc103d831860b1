"""Fleet updates with site.yml on booted containers: waves, health gate, rollback.

Two Debian 12 roots booted with systemd-nspawn (debian_root.py) form a small fleet that
shares the host's network, and so a private Mosquitto on the host's loopback
(tests/mqtt_broker.py) and each host's dashboard on a port of its own. Three wheels are built
from this repository: release A as it is, B (version 0.1.1) and C (version 0.1.2, whose
`pafw run` dies at start: its service module raises on import).

The fixture installs A on every host, updates them to B in the playbook's default
waves (1, 25 %, the rest), then tries C. The tests check that B rolled through (every host
reports it in its status API and its retained MQTT status, the links moved, the previous
link names A), and that C failed its gate on the first host, was switched back to B there
(running, healthy, the state directory's files at rest unchanged, the outbox the same file
with its sequence continuing), and never reached the other host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.debian_root import BootedRoot, DebianRoot
from tests.deploy.playbooks import REPO, PlaybookRun, run_playbook, tool
from tests.mqtt_broker import Broker, Subscriber, free_port

#: two hosts keep the run within minutes here; three or more change nothing in the logic
#: (the waves are 1, 25 %, the rest: with two, one after the other)
HOSTS = ("fleet-01", "fleet-02")
STATE = "var/lib/pafw"
#: state files the running appliance rewrites by itself (the snapshot, its journal-like
#: stores); everything else in the state directory must come through a rollback byte for byte
LIVE_STATE = ("status.json", "mqtt-outbox.sqlite3", "events", "trend")
CALIBRATION = {"calibration/cell-2026-11-30.json": '{"span_ppm": 1000.0, "gain": 1.0042}\n',
               "user_scripts/README.txt": "scripts uploaded by the customer\n"}


def build_wheel(source: Path, out_dir: Path) -> Path:
    """`pip wheel --no-deps` of ``source`` into ``out_dir`` (alone there)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out_dir), str(source)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out_dir.glob("pafw-*.whl")
    return wheel


def variant(work: Path, version: str, *, broken: bool = False) -> Path:
    """A copy of the repository's sources at another version (``broken``: `pafw run` dies
    at start, while `pafw config check` and the capability probe still work)."""
    source = work / f"src-{version}"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "dist", "build", "*.egg-info", "__pycache__", ".*cache"))
    for name, old, new in (("pyproject.toml", 'version = "0.1.0"', f'version = "{version}"'),
                           ("firmware/__init__.py", '__version__ = "0.1.0"',
                            f'__version__ = "{version}"')):
        path = source / name
        assert old in path.read_text(), name
        path.write_text(path.read_text().replace(old, new))
    if broken:
        run = source / "firmware/service/run.py"
        run.write_text('raise RuntimeError("release 0.1.2 is broken on purpose")\n'
                       + run.read_text())
    return build_wheel(source, work / f"dist-{version}")


def release_of(wheel: Path) -> str:
    """The release id the role derives: version and the wheel's sha256 (10 hex)."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:10]
    return f"{wheel.name.split('-')[1]}-{digest}"


@dataclass
class Host:
    """One analyzer of the fleet."""

    name: str
    booted: BootedRoot
    web_port: int

    @property
    def root(self) -> Path:
        return self.booted.root.path

    def link(self, name: str) -> str | None:
        """The release a link of /opt/pafw names (None when there is no such link)."""
        path = self.root / "opt/pafw" / name
        return Path(os.readlink(path)).name if path.is_symlink() else None

    def releases(self) -> set[str]:
        return {p.name for p in (self.root / "opt/pafw/releases").iterdir()}

    def api_status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/api/v1/status",
                                    timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
            return data

    def active(self) -> str:
        return self.booted.run(["systemctl", "is-active", "pafw.service"],
                               check=False).stdout.strip()

    def state_at_rest(self) -> dict[str, str]:
        """sha256 of every state file the appliance does not rewrite while it runs."""
        base = self.root / STATE
        found = {}
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).as_posix()
            top = rel.split("/")[0]
            if path.is_file() and not top.startswith(LIVE_STATE) and not top.startswith("."):
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def outbox_inode(self) -> int:
        return (self.root / STATE / "mqtt-outbox.sqlite3").stat().st_ino


@dataclass
class Fleet:
    """The fleet, the releases and what each run left behind."""

    hosts: dict[str, Host]
    releases: dict[str, str]
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    #: host -> (current link, previous link, active state, API release) after each run
    after: dict[str, dict[str, tuple[str | None, str | None, str, str | None]]] = field(
        default_factory=dict)
    #: host -> mtime of its current link, after each run
    link_mtimes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: host -> its release directories, after each run
    installed: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    state_before: dict[str, str] = field(default_factory=dict)
    state_after: dict[str, str] = field(default_factory=dict)
    outbox_inodes: tuple[int, int] = (0, 0)
    #: the measurements' seq on the first host: the highest before C, the lowest after it
    seq_around_rollback: tuple[int, int] = (0, 0)
    #: retained status per host after B rolled through (release field)
    mqtt_releases: dict[str, str | None] = field(default_factory=dict)

    def observe(self, label: str) -> None:
        self.after[label] = {}
        self.link_mtimes[label] = {}
        self.installed[label] = {name: host.releases() for name, host in self.hosts.items()}
        for name, host in self.hosts.items():
            try:
                api = host.api_status().get("release")
            except OSError:
                api = None
            self.after[label][name] = (host.link("current"), host.link("previous"),
                                       host.active(), api)
            link = host.root / "opt/pafw/current"
            self.link_mtimes[label][name] = os.lstat(link).st_mtime_ns if link.is_symlink() else 0


def write_inventory(path: Path, fleet: dict[str, Host], broker: Broker) -> None:
    hosts = {name: {"ansible_connection": "community.general.chroot",
                    "ansible_host": str(host.root),
                    "ansible_chroot_exe": str(host.booted.chroot_exe),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_become": False,
                    "pafw_web_port": host.web_port}
             for name, host in fleet.items()}
    group_vars = {"pafw_mqtt_host": broker.host, "pafw_mqtt_port": broker.port,
                  "pafw_web_read_access": "loopback", "pafw_worker_user_switch": False,
                  # the first start of a release compiles the numba kernels: slow here
                  "pafw_timeout_start_sec": 240, "pafw_health_timeout": 240}
    inventory = {"all": {"children": {"analyzers": {"hosts": hosts, "vars": group_vars}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


def measurement_seqs(subscriber: Subscriber, device: str) -> list[int]:
    return [m.json()["seq"] for m in subscriber.on(f"pafw/{device}/measurements")]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A installed everywhere, B rolled through in waves, C tried (see the module docstring)."""
    if os.geteuid() != 0:
        pytest.skip("the deploy tests need root (debootstrap, systemd-nspawn)")
    tool("ansible-playbook")
    work = tmp_path_factory.mktemp("fleet")
    wheels = {"A": build_wheel(REPO, work / "dist-a"), "B": variant(work, "0.1.1"),
              "C": variant(work, "0.1.2", broken=True)}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Broker(work / "broker"))
        hosts = {}
        for name in HOSTS:
            root = stack.enter_context(DebianRoot(mount_proc=False))
            hosts[name] = Host(name, stack.enter_context(BootedRoot(root)), free_port())
        inventory = work / "hosts.yml"
        write_inventory(inventory, hosts, broker)
        fleet = Fleet(hosts=hosts, releases={k: release_of(w) for k, w in wheels.items()})
        subscriber = Subscriber(broker, ["pafw/+/status", "pafw/+/measurements"])
        stack.callback(subscriber.close)

        # one host after the other: their apt archives are one shared cache (one apt lock)
        fleet.runs["install A"] = run_playbook(
            inventory, extra_vars={"pafw_wheel": str(wheels["A"]), "pafw_serial": 1})
        if fleet.runs["install A"].returncode != 0:
            pytest.fail(f"installing A failed: {fleet.runs['install A'].describe()}")
        fleet.observe("install A")
        for host in hosts.values():  # what an analyzer keeps besides its live files
            for rel, text in CALIBRATION.items():
                path = host.root / STATE / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

        fleet.runs["update B"] = run_playbook(inventory,
                                              extra_vars={"pafw_wheel": str(wheels["B"])})
        fleet.observe("update B")
        if fleet.runs["update B"].returncode != 0:
            pytest.fail(f"updating to B failed: {fleet.runs['update B'].describe()}")
        releases = {}
        for name in HOSTS:
            subscriber.wait_for(lambda m, n=name: any(  # type: ignore[misc]
                x.topic == f"pafw/{n}/status" and x.json().get("release")
                == fleet.releases["B"] for x in m), timeout=30)
            statuses = subscriber.on(f"pafw/{name}/status")
            releases[name] = statuses[-1].json().get("release") if statuses else None
        fleet.mqtt_releases = releases

        first = hosts[HOSTS[0]]
        subscriber.wait_for(lambda m: len(measurement_seqs(subscriber, first.name)) > 3, 60)
        fleet.state_before = first.state_at_rest()
        inode_before = first.outbox_inode()
        seq_before = max(measurement_seqs(subscriber, first.name), default=0)
        subscriber.clear()
        fleet.runs["update C"] = run_playbook(inventory,
                                              extra_vars={"pafw_wheel": str(wheels["C"])})
        fleet.observe("update C")
        subscriber.wait_for(lambda m: bool(measurement_seqs(subscriber, first.name)), 60)
        fleet.seq_around_rollback = (seq_before,
                                     min(measurement_seqs(subscriber, first.name), default=0))
        fleet.state_after = first.state_at_rest()
        fleet.outbox_inodes = (inode_before, first.outbox_inode())
        yield fleet
        gates = [r["stdout"].splitlines()[0] for run in fleet.runs.values()
                 for n, r in run.results if n == "Wait for the health gate" and "stdout" in r]
        print("\nfleet run times (s): "
              + ", ".join(f"{k} {r.seconds:.0f}" for k, r in fleet.runs.items())
              + f"; gates: {gates}")


@pytest.mark.deploy
@pytest.mark.timeout(3600)
class TestFleetUpdate:
    """site.yml's waves, health gate and rollback on a small fleet."""

    def test_install_everywhere(self, fleet: Fleet) -> None:
        run = fleet.runs["install A"]
        assert run.returncode == 0 and run.total("failures") == 0, run.describe()
        release = fleet.releases["A"]
        for name, (current, previous, active, api) in fleet.after["install A"].items():
            assert (current, previous, active, api) == (release, None, "active", release), name

    def test_a_good_update_rolls_through_in_waves(self, fleet: Fleet) -> None:
        run = fleet.runs["update B"]
        assert run.returncode == 0 and run.total("failures") == 0, run.describe()
        a, b = fleet.releases["A"], fleet.releases["B"]
        for name, state in fleet.after["update B"].items():
            assert state == (b, a, "active", b), name
            assert fleet.installed["update B"][name] == {a, b}
        assert fleet.mqtt_releases == dict.fromkeys(HOSTS, b)
        gates = [r for n, r in run.results if n == "Wait for the health gate"]
        assert len(gates) == len(HOSTS)
        assert all(r["stdout"].startswith("healthy after ") for r in gates), gates
        assert all("ok: DSP advancing" in r["stdout"] and "ok: MQTT online" in r["stdout"]
                   for r in gates)

    def test_a_broken_update_is_rolled_back_on_the_first_host(self, fleet: Fleet) -> None:
        run = fleet.runs["update C"]
        assert run.returncode != 0
        first = HOSTS[0]
        assert run.stats[first]["failures"] >= 1, run.describe()
        b, c = fleet.releases["B"], fleet.releases["C"]
        failed = [r.get("msg", "") for n, r in run.results if n == "Stop the update"]
        assert len(failed) == 1, run.describe()
        assert failed[0].startswith(f"pafw: {first} failed the update to {c} ("), failed
        assert failed[0].endswith(f"Restart pafw); rolled back to {b}, which is healthy "
                                  f"again. The run stops before the next wave."), failed
        rollback = [r for n, r in run.results
                    if n == "Check that the previous release is healthy again"]
        assert rollback and rollback[0]["rc"] == 0, rollback
        current, previous, active, api = fleet.after["update C"][first]
        assert (current, previous, active, api) == (b, fleet.releases["A"], "active", b)
        assert c in fleet.hosts[first].releases()  # kept for a look at what went wrong

    def test_the_other_hosts_were_never_touched(self, fleet: Fleet) -> None:
        run = fleet.runs["update C"]
        c = fleet.releases["C"]
        for name in HOSTS[1:]:
            assert name not in run.stats or run.stats[name].get("changed", 0) == 0, run.stats
            assert fleet.after["update C"][name] == fleet.after["update B"][name], name
            assert fleet.link_mtimes["update C"][name] == fleet.link_mtimes["update B"][name]
            assert c not in fleet.hosts[name].releases()

    def test_the_rollback_keeps_state_outbox_and_calibration(self, fleet: Fleet) -> None:
        assert "calibration/cell-2026-11-30.json" in fleet.state_before
        assert fleet.state_after == fleet.state_before
        before, after = fleet.outbox_inodes
        assert before == after != 0  # the same outbox file, never recreated
        highest_before, lowest_after = fleet.seq_around_rollback
        assert highest_before > 0 and lowest_after > highest_before  # its seq went on
