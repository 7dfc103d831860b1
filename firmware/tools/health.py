"""`pafw health`: is the appliance on this host healthy? The gate of a fleet update.

The deployment switches a host to a new release, restarts the service and then runs
``pafw health --wait`` on it; a host that does not pass is switched back. Healthy means, all
at once:

- the systemd unit (``--unit``) is active: with ``Type=notify`` that is after ``READY=1``,
  and its main process is the one that wrote the status snapshot;
- the snapshot says ``running``, from a live process, without a fault, and (``--release``)
  from the expected release;
- the DSP advances: the frame counter of a later snapshot of the same process is higher;
- MQTT, when the configuration enables it, is connected (the link publishes its retained
  availability ``online`` on every connect);
- no action is in the ``failed`` state.

With a unit, the gate fails at once, without waiting for its timeout, when the unit is
``failed`` or systemd restarted it during the wait (a release that crashes at start). While
the unit is still starting (``activating``: the first start on a new host compiles every
kernel, minutes on a Pi and under emulation) the gate waits up to ``start_timeout_s``
instead: systemd bounds that phase itself (the service extends its start timeout only while
it compiles, and a start that hangs fails the unit, which the gate sees at once). The
ordinary timeout then counts from the moment the unit is active.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.app.status_file import process_alive, read_snapshot

#: how often the snapshot and the unit are read while waiting
POLL_S = 0.5


@dataclass(frozen=True)
class UnitState:
    """What systemd says about the service unit."""

    active_state: str
    sub_state: str
    main_pid: int
    restarts: int
    result: str
    #: the service's own STATUS= line (e.g. "starting: compiling the DSP kernels (80 s)")
    status_text: str = ""


@dataclass
class Verdict:
    """The outcome of one look at the appliance: what passed and what did not."""

    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    #: a problem that waiting cannot fix (the unit failed or restarted)
    final: bool = False
    #: the unit is still starting (activating): worth waiting for beyond the usual timeout
    starting: bool = False

    @property
    def healthy(self) -> bool:
        """True when every check passed."""
        return not self.problems


def read_unit(unit: str) -> UnitState | None:
    """``systemctl show`` of ``unit``; None when systemctl is missing or fails."""
    try:
        done = subprocess.run(
            ["systemctl", "show", unit, "--property=ActiveState,SubState,MainPID,NRestarts,"
             "Result,StatusText"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    values = dict(line.partition("=")[::2] for line in done.stdout.splitlines())
    return UnitState(active_state=values.get("ActiveState", "?"),
                     sub_state=values.get("SubState", "?"),
                     main_pid=_int(values.get("MainPID")),
                     restarts=_int(values.get("NRestarts")),
                     result=values.get("Result", "?"),
                     status_text=values.get("StatusText", ""))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class HealthGate:
    """Looks at the appliance repeatedly and remembers what it needs to compare (the first
    frame count of a process, the unit's restart count when the wait began)."""

    def __init__(self, snapshot: Path, *, unit: str | None = None,
                 release: str | None = None, mqtt_required: bool = True,
                 unit_reader: Callable[[str], UnitState | None] = read_unit) -> None:
        self.snapshot = snapshot
        self.unit = unit
        self.release = release
        self.mqtt_required = mqtt_required
        self.unit_reader = unit_reader
        self._first_frames: dict[int, int] = {}  # pid -> frames of its first snapshot seen
        self._restarts: int | None = None

    def look(self) -> Verdict:
        """One look: every check, with a reason for each that fails."""
        verdict = Verdict()
        unit_pid = self._check_unit(verdict)
        if verdict.final:
            return verdict
        snapshot = read_snapshot(self.snapshot)
        if snapshot is None:
            verdict.problems.append(f"no status snapshot at {self.snapshot} yet")
            return verdict
        self._check_process(snapshot, unit_pid, verdict)
        self._check_dsp(snapshot, verdict)
        self._check_mqtt(snapshot, verdict)
        self._check_actions(snapshot, verdict)
        return verdict

    def _check_unit(self, verdict: Verdict) -> int | None:
        if self.unit is None:
            return None
        state = self.unit_reader(self.unit)
        if state is None:
            verdict.problems.append(f"systemctl cannot tell the state of {self.unit}")
            return None
        if self._restarts is None:
            self._restarts = state.restarts
        if state.active_state == "failed":
            verdict.problems.append(f"{self.unit} failed ({state.result})")
            verdict.final = True
        elif state.restarts > self._restarts:
            verdict.problems.append(f"{self.unit} was restarted by systemd "
                                    f"{state.restarts - self._restarts} time(s) (it crashed)")
            verdict.final = True
        elif state.active_state != "active":
            said = f": {state.status_text}" if state.status_text else ""
            verdict.problems.append(f"{self.unit} is {state.active_state} ({state.sub_state}"
                                    f"{said}), not active (READY=1 not sent yet)")
            verdict.starting = state.active_state == "activating"
        else:
            verdict.passed.append(f"{self.unit} active (READY)")
            return state.main_pid
        return None

    def _check_process(self, snapshot: dict[str, Any], unit_pid: int | None,
                       verdict: Verdict) -> None:
        pid = snapshot.get("pid")
        state = snapshot.get("state")
        if state != "running" or not isinstance(pid, int) or not process_alive(pid):
            verdict.problems.append(f"the snapshot says {state!r} for process {pid}, which "
                                    f"is not running")
        elif unit_pid is not None and pid != unit_pid:
            verdict.problems.append(f"the snapshot is from process {pid}, not from the "
                                    f"unit's main process {unit_pid} (not written yet)")
        else:
            verdict.passed.append(f"running (pid {pid})")
        if snapshot.get("fault"):
            verdict.problems.append(f"fault: {snapshot['fault']}")
        release = snapshot.get("release")
        if self.release is not None:
            if release != self.release:
                verdict.problems.append(f"it runs release {release}, not {self.release}")
            else:
                verdict.passed.append(f"release {release}")

    def _check_dsp(self, snapshot: dict[str, Any], verdict: Verdict) -> None:
        pid, frames = snapshot.get("pid"), snapshot.get("frames")
        if not isinstance(pid, int) or not isinstance(frames, int):
            verdict.problems.append("the snapshot holds no frame counter")
            return
        first = self._first_frames.setdefault(pid, frames)
        if frames > first:
            verdict.passed.append(f"DSP advancing ({first} -> {frames} frames)")
        else:
            verdict.problems.append(f"the DSP has not advanced yet ({frames} frames)")

    def _check_mqtt(self, snapshot: dict[str, Any], verdict: Verdict) -> None:
        mqtt = snapshot.get("mqtt")
        if not self.mqtt_required or not mqtt:
            return
        if mqtt.get("connected"):
            verdict.passed.append(f"MQTT online ({mqtt.get('broker', 'broker')})")
        else:
            error = mqtt.get("last_error")
            verdict.problems.append(f"MQTT not connected to {mqtt.get('broker', 'the broker')}"
                                    + (f": {error}" if error else "") + " (availability not "
                                    "online)")

    def _check_actions(self, snapshot: dict[str, Any], verdict: Verdict) -> None:
        actions = (snapshot.get("control") or {}).get("actions") or {}
        failed = sorted(name for name, action in actions.items()
                        if isinstance(action, dict) and action.get("state") == "failed")
        if failed:
            verdict.problems.append(f"action(s) in the failed state: {', '.join(failed)}")
        else:
            verdict.passed.append(f"{len(actions)} action(s), none failed")

    def wait(self, timeout_s: float, *, start_timeout_s: float = 0.0,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Verdict:
        """Look until healthy, a final problem, or ``timeout_s``; the last verdict.

        While the unit is starting, the wait goes on up to ``start_timeout_s`` from the
        first look, and ``timeout_s`` counts again from the end of the start.
        """
        begun = clock()
        deadline = begun + timeout_s
        start_deadline = begun + max(timeout_s, start_timeout_s)
        while True:
            verdict = self.look()
            if verdict.healthy or verdict.final:
                return verdict
            now = clock()
            if verdict.starting:
                if now >= start_deadline:
                    verdict.problems.append(f"still starting after {now - begun:.0f} s "
                                            f"(--start-wait {start_timeout_s:g} s)")
                    return verdict
                deadline = max(deadline, now + timeout_s)
            elif now >= deadline:
                return verdict
            sleep(POLL_S)


def report(verdict: Verdict, *, waited_s: float | None = None) -> str:
    """A readable account of a verdict (the first line says healthy or not)."""
    took = "" if waited_s is None else f" after {waited_s:.1f} s"
    head = f"healthy{took}" if verdict.healthy else f"NOT HEALTHY{took}"
    lines = [head]
    lines += [f"  ok: {item}" for item in verdict.passed]
    lines += [f"  FAIL: {item}" for item in verdict.problems]
    return "\n".join(lines)
