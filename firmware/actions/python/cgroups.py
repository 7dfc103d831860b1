"""A control group per PythonAction worker: memory (tmpfs included), thread count and CPU
limits the kernel keeps, usage figures, and a kill that leaves nothing of the worker behind.

Where the appliance may manage cgroups:

* **cgroup v2, delegated** (Raspberry Pi OS, Debian 12: the unit has ``Delegate=yes``, or the
  appliance runs as root): the appliance's own cgroup is the root of its subtree. The
  appliance moves itself into a leaf ``supervisor`` (a cgroup with children may hold no
  process), enables ``memory pids cpu`` for the children, and creates ``worker-<id>-<n>``
  for each worker with ``memory.max``, ``memory.swap.max = 0``, ``memory.oom.group = 1``,
  ``pids.max`` and ``cpu.max``. ``cgroup.kill`` ends every task in one write.
* **cgroup v1** (hybrid hosts, where memory/pids/cpu are v1 hierarchies): the same limits
  through ``memory.limit_in_bytes``, ``pids.max`` and ``cpu.cfs_quota_us``, in sibling
  directories of each hierarchy; the kill signals every task listed. A v2 directory is used
  as well when one is writable (tracking and ``cgroup.kill``).
* Neither (a non-root appliance without delegation): :func:`open_manager` returns a manager
  whose ``reason`` says why; workers then rely on rlimits, seccomp and Landlock, and the
  status says so.

The worker is placed in its cgroup by the host right after the spawn and before the ``init``
frame is sent: the worker runs no script code before that frame.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pafw.cgroups")

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Limits:
    """What one worker may use."""

    memory_bytes: int
    max_tasks: int
    cpu_percent: int


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, options) of every cgroup mount of this process's namespace."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((left.split()[4], fstype, set(options.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup per hierarchy: '' for v2, the controller names for v1."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                paths[""] = path
            for name in controllers.split(","):
                paths[name] = path
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    """'key value' lines (cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


@dataclass
class WorkerCgroup:
    """The cgroup directories of one worker (one per hierarchy used)."""

    name: str
    limits: Limits
    v2: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    _controllers: dict[str, Path | None] = field(default_factory=dict, repr=False)

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into every directory."""
        for path in self._dirs():
            _write(path / "cgroup.procs", str(pid))
        self.pids.append(pid)

    def _dirs(self) -> list[Path]:
        return ([self.v2] if self.v2 is not None else []) + list(self.v1.values())

    def tasks(self) -> list[int]:
        """Pids of the processes still in the cgroup."""
        for path in self._dirs():
            text = _read(path / "cgroup.procs")
            if text is not None:
                return [int(p) for p in text.split()]
        return []

    def kill(self) -> None:
        """SIGKILL everything in the cgroup (cgroup.kill on v2, each task on v1)."""
        if self.v2 is not None and (self.v2 / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.v2 / "cgroup.kill", "1")
                return
        for pid in self.tasks():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait_s: float = 2.0) -> None:
        """Kill what is left and remove the directories (retried while tasks exit)."""
        self.kill()
        deadline = time.monotonic() + wait_s
        for path in self._dirs():
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("cannot remove cgroup %s: %s", path, exc)
                        break
                    time.sleep(0.02)

    def stats(self) -> dict[str, Any]:
        """Memory in use (pages of tmpfs files included), peak, OOM kills, CPU seconds and
        throttled seconds, tasks."""
        out: dict[str, Any] = {"memory_bytes": None, "memory_peak_bytes": None,
                               "oom_kills": self.oom_kills(), "cpu_s": None,
                               "throttled_s": None, "throttled_periods": None,
                               "tasks": len(self.tasks())}
        memory = self._controller_dir("memory")
        cpu = self._controller_dir("cpu")
        if memory is not None and memory == self.v2:
            out["memory_bytes"] = _int(_read(memory / "memory.current"))
            out["memory_peak_bytes"] = _int(_read(memory / "memory.peak"))
        elif memory is not None:
            out["memory_bytes"] = _int(_read(memory / "memory.usage_in_bytes"))
            out["memory_peak_bytes"] = _int(_read(memory / "memory.max_usage_in_bytes"))
        if cpu is not None and cpu == self.v2:
            stat = _keyed(_read(cpu / "cpu.stat"))
            out["cpu_s"] = _seconds(stat.get("usage_usec"), 1e6)
            out["throttled_s"] = _seconds(stat.get("throttled_usec"), 1e6)
            out["throttled_periods"] = stat.get("nr_throttled")
        else:
            if cpu is not None:
                stat = _keyed(_read(cpu / "cpu.stat"))
                out["throttled_s"] = _seconds(stat.get("throttled_time"), 1e9)
                out["throttled_periods"] = stat.get("nr_throttled")
            out["cpu_s"] = self.cpu_s()
        return out

    def oom_kills(self) -> int | None:
        """How many times the memory limit's OOM killer struck (one file read)."""
        memory = self._controller_dir("memory")
        if memory is None:
            return None
        events = "memory.events" if memory == self.v2 else "memory.oom_control"
        return _keyed(_read(memory / events)).get("oom_kill")

    def cpu_s(self) -> float | None:
        """CPU seconds used by the cgroup's tasks (one file read)."""
        acct = self.v1.get("cpuacct")
        if acct is not None:
            return _seconds(_int(_read(acct / "cpuacct.usage")), 1e9)
        if self.v2 is not None:  # v2 has cpu.stat usage with or without the cpu controller
            return _seconds(_keyed(_read(self.v2 / "cpu.stat")).get("usage_usec"), 1e6)
        return None

    def _controller_dir(self, name: str) -> Path | None:
        """The directory where controller ``name`` acts on this cgroup (looked up once:
        what a live cgroup enables does not change)."""
        if name not in self._controllers:
            self._controllers[name] = self._find_controller_dir(name)
        return self._controllers[name]

    def _find_controller_dir(self, name: str) -> Path | None:
        if name in self.v1:
            return self.v1[name]
        if self.v2 is not None and (self.v2 / f"{name}.max").exists():
            return self.v2
        if name == "memory" and self.v2 is not None and (self.v2 / "memory.current").exists():
            return self.v2
        return None

    def enforced(self) -> list[str]:
        """The limits actually written (for the status)."""
        found = []
        if self._controller_dir("memory") is not None:
            found.append("memory")
        if self._controller_dir("pids") is not None:
            found.append("pids")
        if self._controller_dir("cpu") is not None:
            found.append("cpu")
        return found


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _seconds(value: int | None, per_s: float) -> float | None:
    return None if value is None else round(value / per_s, 3)


class CgroupManager:
    """Creates the workers' cgroups below the appliance's own; see the module docstring."""

    def __init__(self, *, v2_base: Path | None, v1_bases: dict[str, Path], reason: str,
                 v2_controllers: set[str]) -> None:
        self.v2_base = v2_base
        self.v1_bases = v1_bases
        self.v2_controllers = v2_controllers
        self.reason = reason

    @property
    def available(self) -> bool:
        """True when workers get a cgroup at all."""
        return self.v2_base is not None or bool(self.v1_bases)

    def describe(self) -> str:
        """One line for logs and status: which hierarchy holds which limit."""
        if not self.available:
            return f"none ({self.reason})"
        parts = []
        if self.v2_base is not None:
            parts.append("v2 " + (" ".join(sorted(self.v2_controllers)) or "kill-only")
                         + f" at {self.v2_base}")
        if self.v1_bases:
            parts.append("v1 " + " ".join(sorted(self.v1_bases)))
        return "; ".join(parts)

    def create(self, worker: str, limits: Limits) -> WorkerCgroup:
        """A new cgroup ``worker-<worker>`` with ``limits`` written (OSError if the kernel
        refuses)."""
        name = f"worker-{SAFE_NAME.sub('_', worker)}"
        group = WorkerCgroup(name=name, limits=limits)
        try:
            if self.v2_base is not None:
                group.v2 = self.v2_base / name
                group.v2.mkdir()
                self._limit_v2(group.v2, limits)
            for controller, base in self.v1_bases.items():
                path = base / name
                path.mkdir()
                group.v1[controller] = path
                self._limit_v1(controller, path, limits)
        except OSError:
            group.remove(0)
            raise
        return group

    def existing(self) -> list[WorkerCgroup]:
        """The worker cgroups present (to sweep those a dead appliance left)."""
        found: dict[str, WorkerCgroup] = {}
        bases = ([("", self.v2_base)] if self.v2_base is not None else []) + list(
            self.v1_bases.items())
        for controller, base in bases:
            with contextlib.suppress(OSError):
                for entry in base.iterdir():
                    if entry.is_dir() and entry.name.startswith("worker-"):
                        group = found.setdefault(entry.name, WorkerCgroup(
                            name=entry.name, limits=Limits(0, 0, 0)))
                        if controller:
                            group.v1[controller] = entry
                        else:
                            group.v2 = entry
        return list(found.values())

    def _limit_v2(self, path: Path, limits: Limits) -> None:
        if "memory" in self.v2_controllers:
            _write(path / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(path / "memory.swap.max", "0")
            with contextlib.suppress(OSError):
                _write(path / "memory.oom.group", "1")
        if "pids" in self.v2_controllers:
            _write(path / "pids.max", str(limits.max_tasks))
        if "cpu" in self.v2_controllers:
            quota = max(1000, CPU_PERIOD_US * limits.cpu_percent // 100)
            _write(path / "cpu.max", f"{quota} {CPU_PERIOD_US}")

    @staticmethod
    def _limit_v1(controller: str, path: Path, limits: Limits) -> None:
        if controller == "memory":
            _write(path / "memory.limit_in_bytes", str(limits.memory_bytes))
            memsw = path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                with contextlib.suppress(OSError):
                    _write(memsw, str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(path / "memory.swappiness", "0")
        elif controller == "pids":
            _write(path / "pids.max", str(limits.max_tasks))
        elif controller == "cpu":
            _write(path / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(path / "cpu.cfs_quota_us",
                   str(max(1000, CPU_PERIOD_US * limits.cpu_percent // 100)))


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path / "cgroup.procs", os.W_OK)


def _prepare_v2(base: Path, *, is_root: bool = False) -> tuple[Path | None, set[str], str]:
    """Make ``base`` (this process's v2 cgroup) able to hold worker children: move its
    processes to a leaf (never those of the hierarchy's root, which may hold processes and
    children alike, and holds the whole system), enable the controllers it has for the
    children."""
    if not _writable(base):
        return None, set(), f"the cgroup {base} is not writable (no Delegate=yes)"
    available = set((_read(base / "cgroup.controllers") or "").split()) & set(CONTROLLERS)
    enabled = set((_read(base / "cgroup.subtree_control") or "").split())
    missing = available - enabled
    if missing:
        own = [int(p) for p in (_read(base / "cgroup.procs") or "").split()]
        if own and not is_root:  # a cgroup with children's controllers holds no process
            leaf = base / "supervisor"
            leaf.mkdir(exist_ok=True)
            for pid in own:
                with contextlib.suppress(ProcessLookupError, OSError):
                    _write(leaf / "cgroup.procs", str(pid))
        try:
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(missing)))
        except OSError as exc:
            log.warning("cannot enable %s for worker cgroups in %s: %s", " ".join(missing),
                        base, exc)
    enabled = set((_read(base / "cgroup.subtree_control") or "").split()) & set(CONTROLLERS)
    return base, enabled, ""


def open_manager() -> CgroupManager:
    """Find the hierarchies this process may create worker cgroups in."""
    try:
        mounts, own = _mounts(), _own_paths()
    except OSError as exc:
        return CgroupManager(v2_base=None, v1_bases={}, v2_controllers=set(),
                             reason=f"cannot read /proc: {exc}")
    v2_base: Path | None = None
    v2_controllers: set[str] = set()
    reasons = []
    v2_mount = next((m for m, t, _ in mounts if t == "cgroup2"), None)
    if v2_mount is not None and "" in own:
        candidate = Path(v2_mount) / own[""].lstrip("/")
        v2_base, v2_controllers, why = _prepare_v2(candidate, is_root=own[""] == "/")
        if why:
            reasons.append(why)
    v1_bases: dict[str, Path] = {}
    for controller in (*CONTROLLERS, "cpuacct"):
        if controller in v2_controllers:
            continue
        mount = next((m for m, t, opts in mounts if t == "cgroup" and controller in opts), None)
        if mount is None or controller not in own:
            continue
        base = Path(mount) / own[controller].lstrip("/")
        if _writable(base):
            v1_bases[controller] = base
        else:
            reasons.append(f"the v1 {controller} cgroup {base} is not writable")
    if not v2_base and not v1_bases:
        reasons = reasons or ["no cgroup file system is mounted"]
    return CgroupManager(v2_base=v2_base, v1_bases=v1_bases, v2_controllers=v2_controllers,
                         reason="; ".join(reasons))
