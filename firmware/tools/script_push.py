"""`pafw script push [user@]host FILE`: deploy a customer script to an appliance over SSH.

1. check the file's syntax locally;
2. read the appliance's status (``pafw status --json`` over SSH): its scripts directory and
   the python_action nodes that run a file of this name;
3. copy the file with scp to a hidden temporary name in the scripts directory (the watcher
   ignores hidden files, so a partial upload is never loaded);
4. run ``pafw script check`` there against the appliance's config: a failing script is
   deleted and reported, and the running version stays;
5. rename it onto the final name (atomic within the directory): the appliance's watcher
   starts it in a new worker and swaps it in only if it starts and answers;
6. wait until the appliance reports the new version running, or its error, and print it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from firmware.errors import PafwError

SSH_TIMEOUT_S = 120.0


@dataclass
class PushTarget:
    """How to reach the appliance and its pafw."""

    host: str
    port: int | None = None
    identity: Path | None = None
    options: list[str] = field(default_factory=list)
    remote_pafw: str = "/opt/pafw/current/venv/bin/pafw"  # a command line: split like a shell
    remote_config: str = "/etc/pafw/config.yaml"

    def _common(self, port_flag: str) -> list[str]:
        args = ["-o", "BatchMode=yes"]
        if self.port is not None:
            args += [port_flag, str(self.port)]
        if self.identity is not None:
            args += ["-i", str(self.identity)]
        for option in self.options:
            args += ["-o", option]
        return args

    @property
    def pafw(self) -> list[str]:
        """The remote pafw command as words."""
        return shlex.split(self.remote_pafw)

    def run(self, argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on the appliance (each argument quoted for its shell)."""
        cmd = ["ssh", *self._common("-p"), self.host, "--", shlex.join(argv)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=SSH_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PafwError(f"ssh {self.host}: no answer in {SSH_TIMEOUT_S:.0f} s") from None
        if done.returncode == 255:  # ssh's own failure (connection, authentication)
            raise PafwError(f"ssh {self.host}: {done.stderr.strip() or 'connection failed'}")
        if check and done.returncode != 0:
            raise PafwError(f"{self.host}: {shlex.join(argv)} failed: "
                            f"{(done.stderr or done.stdout).strip()}")
        return done

    def copy(self, local: Path, remote: str) -> None:
        """scp ``local`` to ``remote`` on the appliance."""
        cmd = ["scp", "-q", *self._common("-P"), str(local), f"{self.host}:{remote}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SSH_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise PafwError(f"scp to {self.host}:{remote} failed: {done.stderr.strip()}")

    def status(self) -> dict[str, Any]:
        """The appliance's status snapshot."""
        done = self.run([*self.pafw, "status", "--json", "--config", self.remote_config])
        try:
            snapshot = json.loads(done.stdout)
        except ValueError:
            snapshot = None
        if not isinstance(snapshot, dict):  # not JSON, or not the status object
            raise PafwError(f"{self.host}: cannot read the appliance's status: "
                            f"{(done.stderr or done.stdout).strip()}")
        if done.returncode != 0:
            raise PafwError(f"{self.host}: the appliance is not running "
                            f"(state {snapshot.get('state')!r})")
        return snapshot


def _workers(snapshot: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """python_action id -> supervisor status, for the actions running a file named ``name``."""
    actions = (snapshot.get("control") or {}).get("actions") or {}
    return {action_id: a.get("worker") or {} for action_id, a in actions.items()
            if a.get("type") == "python_action"
            and PurePosixPath(str(a.get("script", ""))).name == name}


def push_script(target: PushTarget, file: Path, *, name: str | None = None,
                timeout_s: float = 30.0, out: TextIO) -> bool:
    """Deploy ``file``; True when the new version runs (or no action uses it yet)."""
    name = name or file.name
    if "/" in name or not name.endswith(".py") or name.startswith("."):
        raise PafwError(f"--name {name!r}: expected a plain file name ending in .py")
    if not file.is_file():
        raise PafwError(f"{file}: no such file")
    source = file.read_text(encoding="utf-8")
    try:
        compile(source, str(file), "exec")
    except SyntaxError as exc:
        out.write(f"{file}:{exc.lineno}:{exc.offset}: syntax error: {exc.msg}\n"
                  f"not uploaded\n")
        return False
    snapshot = target.status()
    scripts_dir = PurePosixPath(snapshot["paths"]["scripts_dir"])
    before = _workers(snapshot, name)
    upload = str(scripts_dir / f".{name}.upload-{uuid.uuid4().hex[:8]}.py")
    target.copy(file, upload)
    check_args = [*target.pafw, "script", "check", upload, "--as", name]
    if before:
        check_args += ["--config", target.remote_config]
    check = target.run(check_args)
    if check.returncode != 0:
        target.run(["rm", "-f", upload])
        out.write(check.stdout + check.stderr)
        out.write(f"{name} rejected: the version running on {target.host} is unchanged\n")
        return False
    target.run(["mv", "-f", upload, str(scripts_dir / name)], check=True)
    if not before:
        out.write(f"{name} uploaded to {target.host}:{scripts_dir}; no python_action runs it "
                  f"yet (add a node with python_script_path: {name})\n")
        return True
    return _wait_for_swap(target, name, before, timeout_s, out)


def _wait_for_swap(target: PushTarget, name: str, before: dict[str, dict[str, Any]],
                   timeout_s: float, out: TextIO) -> bool:
    """Poll the status until every action running ``name`` reloaded or failed to."""
    deadline = time.monotonic() + timeout_s
    pending = dict(before)
    ok = True
    while pending and time.monotonic() < deadline:
        time.sleep(0.3)
        now = _workers(target.status(), name)
        for action_id, old in list(pending.items()):
            new = now.get(action_id, {})
            if new.get("reloads", 0) > old.get("reloads", 0):
                out.write(f"{name}: new version running in action {action_id!r} "
                          f"(worker pid {new.get('pid')})\n")
                del pending[action_id]
            elif new.get("reload_failures", 0) > old.get("reload_failures", 0):
                error = new.get("last_error") or {}
                out.write(f"{name}: action {action_id!r} kept its running version: "
                          f"{error.get('type')}: {error.get('message')} at "
                          f"{error.get('file')}:{error.get('line')}\n")
                del pending[action_id]
                ok = False
    for action_id in pending:
        out.write(f"{name}: action {action_id!r} did not report the new version within "
                  f"{timeout_s:.0f} s\n")
    return ok and not pending
