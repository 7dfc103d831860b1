"""The escapes against a NON-ROOT appliance, as the shipped unit runs it: the host process is
an unprivileged uid (setpriv), with no capability at all (the unit without worker
capabilities) or with exactly the unit's ambient set (``pafw_worker_capabilities``), under
no_new_privs, in a cgroup subtree delegated to it as systemd's ``Delegate=yes`` does (the
directories chowned to the service's uid). The attacks of escape.py fail the same way."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.actions.python import landlock
from firmware.actions.python.cgroups import _mounts, _own_paths
from tests.actions.python.conftest import SCRIPTS

HARNESS = Path(__file__).with_name("nonroot_harness.py")
SERVICE_UID = 1_899_000_123  # the service's uid, below the workers' base
UNIT_CAPS = "setuid,setgid,kill,net_admin,chown,dac_override,fowner"
EPERM, EACCES = 1, 13

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another uid"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
    pytest.mark.skipif(landlock.abi_version() < 1, reason="the kernel has no Landlock"),
]


@contextlib.contextmanager
def delegated_cgroups(uid: int):
    """Cgroup directories of every hierarchy, owned by ``uid`` (what Delegate=yes gives a
    unit's user); yields the cgroup.procs files a launcher moves itself into."""
    own, made = _own_paths(), []
    for mount, fstype, options in _mounts():
        key = "" if fstype == "cgroup2" else next(
            (c for c in ("memory", "pids", "cpu", "cpuacct") if c in options), None)
        if key is None or key not in own:
            continue
        path = Path(mount) / own[key].lstrip("/") / f"pafw-delegated-{os.getpid()}"
        try:
            path.mkdir()
        except OSError:
            continue
        for entry in [path, *path.iterdir()]:
            if entry.name in ("", "cgroup.procs", "tasks", "cgroup.subtree_control",
                              "cgroup.threads") or entry == path:
                os.chown(entry, uid, uid)
        made.append(path)
    try:
        yield [p / "cgroup.procs" for p in made]
    finally:
        for path in made:
            for child in sorted(path.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    child.rmdir()


def run_as_service(capabilities: str | None) -> dict:
    """The harness as the service's uid, with ``capabilities`` ambient (None: none)."""
    caps = ([f"--inh-caps=-all,+{capabilities.replace(',', ',+')}",
             f"--ambient-caps=-all,+{capabilities.replace(',', ',+')}",
             f"--bounding-set=-all,+{capabilities.replace(',', ',+')}"]
            if capabilities else ["--inh-caps=-all", "--bounding-set=-all"])
    with delegated_cgroups(SERVICE_UID) as procs:
        move = "".join(f"echo $$ > {p} && " for p in procs)
        command = " ".join([
            "setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups",
            *caps, "--no-new-privs", sys.executable, "-I", str(HARNESS), str(SCRIPTS)])
        out = subprocess.run(["sh", "-c", f"{move}exec {command}"], capture_output=True,
                             text=True, timeout=120, env={"PATH": os.defpath, "HOME": "/tmp"},
                             check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_contained(result: dict) -> None:
    attack, disk = result["attack"], result["disk"]
    assert attack["fork"] == {"pid": -1, "errno": EPERM}
    for target in ("kill_victim", "kill_host", "kill_init"):
        assert attack[target] == {"rc": -1, "errno": EPERM}, target
    assert result["victim_alive"] and result["victim_count"] == 1
    for place in ("tmp", "shm", "other_script", "own_script_write"):
        assert disk[place]["ok"] is False and disk[place]["errno"] == EACCES, place
    assert disk["scratch_small"]["ok"] is True
    assert disk["scratch_huge"]["ok"] is False
    for status in result["workers"].values():
        assert "seccomp allow-list" in status["protections"]
        assert "landlock ABI" in status["protections"]


def test_a_non_root_unit_without_worker_capabilities():
    result = run_as_service(None)
    assert result["host_uid"] == SERVICE_UID
    assert_contained(result)
    assert result["appliance"]["per_action_uid"] is False
    for status in result["workers"].values():
        assert status["sandbox"]["uid"] == SERVICE_UID
        assert any("share the appliance's uid" in n for n in status["confinement"]["notes"])


def test_a_non_root_unit_with_the_worker_capabilities():
    result = run_as_service(UNIT_CAPS)
    assert_contained(result)
    assert result["appliance"]["per_action_uid"] is True
    uids = {name: status["sandbox"]["uid"] for name, status in result["workers"].items()}
    assert len(set(uids.values())) == 3 and min(uids.values()) >= 1_900_000_000
    for status in result["workers"].values():
        assert status["sandbox"]["warnings"] == []
        if shutil.which("nft"):
            assert status["confinement"]["egress"] == "nftables"
        assert status["confinement"]["cgroup"] is not None, status["confinement"]["notes"]
