"""Running the real Ansible tools (from deploy/requirements-dev.txt) on deploy/ansible.

Every command gets a clean environment: the test runner's ``PIP_*``/``PYTHON*`` settings
must not leak into the target, which the chroot connection would otherwise pass on to the
modules it runs there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
ROLE_DIR = ANSIBLE_DIR / "roles" / "pafw"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory" / "example" / "hosts.yml"
RENDER_PLAYBOOK = Path(__file__).resolve().parent / "render_unit.yml"
PRUNE_PLAYBOOK = Path(__file__).resolve().parent / "prune_releases.yml"
REQUIREMENTS = REPO / "deploy" / "requirements-dev.txt"


def tool(name: str) -> str:
    """Path of an Ansible command: the one beside this interpreter (the venv), else on PATH;
    the test is skipped when it is not installed."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -r {REQUIREMENTS.relative_to(REPO)}")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment for Ansible: the venv's bin first on PATH, no colours, this
    repository's ansible.cfg."""
    path = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/sbin",
                            "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
    env.update(extra)
    return env


def run_tool(argv: Sequence[str], *, cwd: Path = ANSIBLE_DIR, env: Mapping[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command from deploy/ansible; never raises on a non-zero exit."""
    return subprocess.run(list(argv), cwd=cwd, env=dict(env or clean_env()), capture_output=True,
                          text=True, timeout=timeout)


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook run, from its JSON callback."""

    returncode: int
    seconds: float
    stats: dict[str, dict[str, int]]
    #: (task or handler name, per-host result) in execution order
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    output: str = ""

    def total(self, key: str) -> int:
        """Sum of a recap counter (``changed``, ``failures``, ...) over the hosts."""
        return sum(host.get(key, 0) for host in self.stats.values())

    def changed_tasks(self) -> list[str]:
        """Names of the tasks and handlers that reported a change."""
        return [name for name, result in self.results if result.get("changed")]

    def failed_tasks(self) -> list[str]:
        """Names and messages of the tasks that failed."""
        return [f"{name}: {result.get('msg', '')} {result.get('stderr', '')}".strip()
                for name, result in self.results if result.get("failed")]

    def ran(self, name: str) -> bool:
        """True if a task or handler of that name ran (was not skipped)."""
        return any(n == name and not r.get("skipped") for n, r in self.results)

    def describe(self) -> str:
        """A short account for assertion messages."""
        return (f"rc={self.returncode} stats={self.stats} changed={self.changed_tasks()} "
                f"failed={self.failed_tasks()}")


def _plain_name(name: str) -> str:
    """A task's name without its role prefix ("pafw : Restart pafw" -> "Restart pafw")."""
    role, sep, rest = name.partition(" : ")
    return rest if sep and " " not in role else name


def run_playbook(inventory: Path, playbook: Path = ANSIBLE_DIR / "site.yml", *,
                 check: bool = False, diff: bool = False,
                 extra_vars: Mapping[str, Any] | None = None,
                 timeout: float = 1500) -> PlaybookRun:
    """ansible-playbook with the JSON callback; the parsed recap and task results."""
    argv = [tool("ansible-playbook"), "-i", str(inventory), str(playbook)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if extra_vars:
        argv += ["--extra-vars", json.dumps(dict(extra_vars))]
    env = clean_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    start = time.monotonic()
    done = run_tool(argv, env=env, timeout=timeout)
    seconds = time.monotonic() - start
    try:
        report = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        raise AssertionError(f"ansible-playbook printed no JSON report (rc {done.returncode}):"
                             f"\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}") from None
    results = [(_plain_name(task["task"]["name"]), result) for play in report.get("plays", [])
               for task in play.get("tasks", []) for result in task["hosts"].values()]
    return PlaybookRun(returncode=done.returncode, seconds=seconds, stats=report["stats"],
                       results=results, output=done.stdout + done.stderr)


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def exposure(unit_file: Path, *, root: Path | None = None) -> tuple[float, str]:
    """(overall exposure, full report) of ``systemd-analyze security --offline=yes``; with
    ``root``, ``unit_file`` is the unit's path inside that root."""
    argv = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    if root is not None:
        argv.append(f"--root={root}")
    done = subprocess.run([*argv, str(unit_file)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"})
    match = EXPOSURE.search(done.stdout + done.stderr)
    if match is None:
        raise AssertionError(f"no exposure level in systemd-analyze's output "
                             f"(rc {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return float(match.group(1)), done.stdout
