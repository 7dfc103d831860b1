"""Host side of a worker's confinement: its uid, its scratch directory, its cgroup and its
egress table, prepared before the spawn and released after the worker is gone.

One :class:`Confinement` serves every worker of the appliance process (``shared()``; the
appliance configures it from ``scripts``). For each worker start it makes a
:class:`Placement`:

* **uid**: where the appliance may switch users, each action gets a uid and gid of its own,
  ``worker_uid_base`` plus a slot derived from the action id (stable across restarts, probed
  past collisions), with no passwd entry and no supplementary group: no worker can signal,
  trace or read another's files. Before the first spawn the host checks that such a uid can
  read the interpreter, the libraries and the SDK, and refuses with the path to fix instead
  of a worker dying of ``ModuleNotFoundError``.
* **scratch**: a private directory (mode 0700, owned by the worker's uid; ``TMPDIR`` and
  ``HOME`` point there; Landlock lets the worker write nowhere else). As root it is a tmpfs
  of ``scratch_mb`` (``nosuid,nodev,noexec``) whose pages count in the worker's cgroup
  memory; otherwise a directory whose size the host's watchdog checks (``RLIMIT_FSIZE`` caps
  each file). It is emptied at each start and removed at the end.
* **cgroup** (cgroups.py) with the worker's memory, task and CPU limits.
* **egress** (egress.py) for a host-list network grant.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import shutil
import socket
import stat
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.actions.python import cgroups, egress
from firmware.actions.python.cgroups import SAFE_NAME
from firmware.actions.python.sandbox import can_switch_user, effective_capabilities
from firmware.errors import ScriptError

if TYPE_CHECKING:
    from firmware.actions.python.spec import WorkerSpec

MIB = 1 << 20
#: above every range systemd hands out (dynamic users, nspawn container ranges)
DEFAULT_UID_BASE = 1_900_000_000
UID_SLOTS = 65_536
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
#: tasks a worker needs besides the script's own threads (main thread, faulthandler watchdog)
TASK_SPARE = 4


class ConfinementError(ScriptError):
    """Raised when a worker cannot be confined as configured (an unreadable interpreter, a
    scratch directory or cgroup the kernel refuses)."""


@dataclass
class Placement:
    """What the host prepared for one worker."""

    name: str
    uid: int | None
    gid: int | None
    scratch: Path
    scratch_mb: int
    scratch_is_tmpfs: bool
    cgroup: cgroups.WorkerCgroup | None = None
    egress_table: str | None = None
    tcp_ports: list[int] | None = None
    resolved: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    data_mb: int = 0
    #: (uid, gid) owning the scratch and data directories; None: the appliance's own
    owner: tuple[int, int] | None = None
    #: the data directory, open for the worker (inherited, then its working directory: the
    #: worker's uid needs no right on the state directory's ancestors)
    data_fd: int | None = None
    #: the descriptor's number in the worker (it inherits it under the same number)
    worker_data_fd: int | None = None

    def init_fields(self) -> dict[str, Any]:
        """What the worker needs of it, merged into the ``init`` frame."""
        return {"worker_uid": self.uid, "worker_gid": self.gid,
                "scratch_dir": str(self.scratch), "scratch_mb": self.scratch_mb,
                "data_fd": self.worker_data_fd, "tcp_ports": self.tcp_ports,
                "resolved_hosts": self.resolved}

    def pass_fds(self) -> tuple[int, ...]:
        """Descriptors the worker inherits."""
        return () if self.data_fd is None else (self.data_fd,)

    def close_fds(self) -> None:
        """Close the host's copies once the worker has its own."""
        fd, self.data_fd = self.data_fd, None  # once: the number is reused after close
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def scratch_bytes(self) -> int:
        """Bytes in the scratch directory (bounded walk: at most 10 000 entries)."""
        return _tree_bytes(self.scratch)

    def data_bytes(self) -> int:
        """Bytes in the data directory."""
        return _tree_bytes(self.data_dir) if self.data_dir is not None else 0

    def get_status(self) -> dict[str, Any]:
        """What confines the worker (JSON-safe)."""
        return {"uid": self.uid, "scratch": str(self.scratch),
                "scratch_tmpfs": self.scratch_is_tmpfs, "scratch_mb": self.scratch_mb,
                "data_dir": str(self.data_dir) if self.data_dir else None,
                "data_mb": self.data_mb,
                "cgroup": self.cgroup.name if self.cgroup else None,
                "cgroup_limits": self.cgroup.enforced() if self.cgroup else [],
                "egress": "nftables" if self.egress_table else None,
                "tcp_ports": self.tcp_ports, "notes": list(self.notes)}


def _tree_bytes(root: Path) -> int:
    """Bytes allocated below ``root`` (bounded walk: at most 10 000 entries)."""
    total, seen = 0, 0
    stack = [str(root)]
    while stack and seen < 10_000:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                seen += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def _parse_destination(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Confinement:
    """Prepares and releases the workers' placements; see the module docstring."""

    _shared: Confinement | None = None

    def __init__(self, *, uid_base: int | None = DEFAULT_UID_BASE,
                 scratch_root: Path | None = None, data_root: Path | None = None) -> None:
        self.uid_base = uid_base
        self.scratch_root = scratch_root or default_scratch_root()
        #: one directory per action granted data_mb (the appliance sets it: see app/appliance.py)
        self.data_root = data_root or self.scratch_root.parent / f"pafw-data-{os.geteuid()}"
        self.switching = can_switch_user()
        caps = effective_capabilities()
        self.root = os.geteuid() == 0
        self.can_mount = self.root or bool(caps & (1 << CAP_SYS_ADMIN))
        self.egress_ok, self.egress_reason = egress.available(
            self.root or bool(caps & (1 << CAP_NET_ADMIN)))
        self._cgroups: cgroups.CgroupManager | None = None
        self._uids: dict[str, int] = {}
        self._checked_readable = False
        #: placements not released yet (released at exit if an event loop was torn down)
        self._live: dict[str, Placement] = {}
        self._swept = False
        atexit.register(self.release_all)

    @classmethod
    def shared(cls) -> Confinement:
        """The appliance process's instance (created on first use)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    @classmethod
    def configure(cls, *, uid_base: int | None, scratch_root: Path | None = None,
                  data_root: Path | None = None) -> Confinement:
        """Replace the shared instance with one using these settings (appliance start)."""
        cls._shared = cls(uid_base=uid_base, scratch_root=scratch_root, data_root=data_root)
        return cls._shared

    @property
    def cgroup_manager(self) -> cgroups.CgroupManager:
        """Opened on first use (it may move this process into a leaf cgroup)."""
        if self._cgroups is None:
            self._cgroups = cgroups.open_manager()
        return self._cgroups

    def uid_for(self, node_id: str) -> int | None:
        """The action's own uid (None when workers cannot get one)."""
        if not self.switching or self.uid_base is None:
            return None
        if node_id not in self._uids:
            taken = set(self._uids.values())
            slot = zlib.crc32(node_id.encode()) % UID_SLOTS
            while self.uid_base + slot in taken:
                slot = (slot + 1) % UID_SLOTS
            self._uids[node_id] = self.uid_base + slot
        return self._uids[node_id]

    def get_status(self) -> dict[str, Any]:
        """The appliance-wide view for ``pafw status``: what confines workers here."""
        return {"per_action_uid": self.switching and self.uid_base is not None,
                "uid_base": self.uid_base if self.switching else None,
                "cgroups": self.cgroup_manager.describe(),
                "scratch": "tmpfs" if self.can_mount else "directory + watchdog",
                "egress": "nftables per worker" if self.egress_ok else
                          f"ports only ({self.egress_reason})"}

    # ------------------------------------------------------------------ placement
    def prepare(self, spec: WorkerSpec, name: str) -> Placement:
        """Everything of the worker that exists before its process (blocking: run it in a
        thread). ConfinementError when the configuration cannot be honoured."""
        if not self._swept:
            self._swept = True
            self.sweep_stale()
        uid = self.uid_for(spec.node_id)
        if uid is not None and not self._checked_readable:
            check_readable_by_others()
            self._checked_readable = True
        placement = Placement(name=name, uid=uid, gid=uid, scratch=self.scratch_root / name,
                              scratch_mb=spec.scratch_mb, scratch_is_tmpfs=False,
                              owner=self._owner(uid, spec))
        if placement.owner is None:
            placement.notes.append("workers share the appliance's uid (it is not root and "
                                   "holds no CAP_SETUID/CAP_SETGID): they can signal and read "
                                   "each other")
        try:
            self._make_scratch(placement)
            self._open_data_dir(placement, spec)
            self._make_cgroup(placement, spec)
            self._network(placement, spec)
        except BaseException:
            self.release(placement)
            raise
        self._live[name] = placement
        return placement

    def attach(self, placement: Placement, pid: int) -> None:
        """Put the new worker process into its cgroup (before it is sent ``init``)."""
        if placement.cgroup is not None:
            try:
                placement.cgroup.add(pid)
            except ProcessLookupError:
                raise  # it died at once: the caller reports how (its stderr)
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    raise ProcessLookupError(exc.errno, exc.strerror) from None
                raise ConfinementError(f"cannot move worker {pid} into cgroup "
                                       f"{placement.cgroup.name}: {exc}") from None

    def release(self, placement: Placement) -> None:
        """Kill what is left in the cgroup, remove it, the scratch and the egress table (the
        data directory stays)."""
        self._live.pop(placement.name, None)
        placement.close_fds()
        if placement.cgroup is not None:
            placement.cgroup.remove()
        if placement.egress_table is not None:
            with contextlib.suppress(OSError):
                egress.remove(placement.name)
        if placement.scratch_is_tmpfs:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.umount2(str(placement.scratch).encode(), MNT_DETACH)
        shutil.rmtree(placement.scratch, ignore_errors=True)

    def release_all(self) -> None:
        """Release every placement still held (at exit)."""
        for placement in list(self._live.values()):
            with contextlib.suppress(OSError):
                self.release(placement)

    def sweep_stale(self) -> list[str]:
        """Remove what appliances that are gone left behind (a crash, a kill -9): worker
        cgroups, egress tables and scratch directories whose name carries the pid of a dead
        process. Returns their names."""
        removed = []
        for group in self.cgroup_manager.existing():
            if _dead_owner(group.name.removeprefix("worker-"), "-"):
                group.remove(0.5)
                removed.append(group.name)
        if self.egress_ok:
            for table in egress.tables():
                if _dead_owner(table, "_"):
                    with contextlib.suppress(OSError):
                        egress.drop_table(table)
                    removed.append(table)
        with contextlib.suppress(OSError):
            for entry in self.scratch_root.iterdir():
                if _dead_owner(entry.name, "-"):
                    libc = ctypes.CDLL(None, use_errno=True)
                    libc.umount2(str(entry).encode(), MNT_DETACH)
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(str(entry))
        return removed

    def _make_scratch(self, placement: Placement) -> None:
        root = self.scratch_root
        for directory in (root.parent, root):
            if not directory.is_dir():
                directory.mkdir(mode=0o711)
                os.chmod(directory, 0o711)
        path = placement.scratch
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700)
        if self.can_mount:
            owner = (f",uid={placement.owner[0]},gid={placement.owner[1]}"
                     if placement.owner else "")
            options = f"size={placement.scratch_mb}m,mode=0700,nr_inodes=4096{owner}"
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.mount(b"pafw-scratch", str(path).encode(), b"tmpfs",
                          MS_NOSUID | MS_NODEV | MS_NOEXEC, options.encode()) == 0:
                placement.scratch_is_tmpfs = True
                return
            err = ctypes.get_errno()
            placement.notes.append(f"scratch is not a tmpfs (mount: {os.strerror(err)})")
        if placement.owner is not None:
            self._chown(path, placement.owner)

    def _owner(self, uid: int | None, spec: WorkerSpec) -> tuple[int, int] | None:
        """Who owns the worker's directories: its own uid, or run_as_user's."""
        if uid is not None:
            return uid, uid
        if self.switching and spec.run_as_user:
            import pwd

            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(spec.run_as_user)
                return entry.pw_uid, entry.pw_gid
        return None

    def _chown(self, path: Path, owner: tuple[int, int]) -> None:
        try:
            os.chown(path, *owner, follow_symlinks=False)
        except PermissionError:
            raise ConfinementError(
                f"cannot give {path} to the worker's uid {owner[0]}: the appliance needs "
                f"CAP_CHOWN (the unit's AmbientCapabilities) or root") from None

    def _open_data_dir(self, placement: Placement, spec: WorkerSpec) -> None:
        if spec.data_mb <= 0:
            return
        root = self.data_root
        if not root.is_dir():
            root.mkdir(parents=True, mode=0o711)
            os.chmod(root, 0o711)
        path = root / SAFE_NAME.sub("_", spec.node_id)
        path.mkdir(exist_ok=True, mode=0o700)
        if placement.owner is not None:
            check_readable_by_others({str(root)}, need_read=False)
            for entry in [path, *path.rglob("*")]:  # its uid may have changed
                if entry.lstat().st_uid != placement.owner[0]:
                    self._chown(entry, placement.owner)
        placement.data_dir, placement.data_mb = path, spec.data_mb
        placement.data_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        placement.worker_data_fd = placement.data_fd

    def _make_cgroup(self, placement: Placement, spec: WorkerSpec) -> None:
        manager = self.cgroup_manager
        if not manager.available:
            placement.notes.append(f"no cgroup: {manager.reason}")
            return
        limits = cgroups.Limits(memory_bytes=spec.max_memory_mb * MIB,
                                max_tasks=spec.max_threads + TASK_SPARE,
                                cpu_percent=spec.max_cpu_percent)
        try:
            placement.cgroup = manager.create(placement.name, limits)
        except OSError as exc:
            raise ConfinementError(f"python action {spec.node_id}: cannot create its cgroup "
                                   f"({exc})") from None

    def _network(self, placement: Placement, spec: WorkerSpec) -> None:
        if not spec.network:
            placement.tcp_ports = []
            if placement.uid is not None and self.egress_ok:
                egress.install(placement.name, placement.uid, [])
                placement.egress_table = egress.table_name(placement.name)
            return
        if not spec.network_hosts:
            placement.tcp_ports = None  # network: true, not restricted
            return
        destinations: list[egress.Destination] = []
        ports: set[int] = set()
        for entry in spec.network_hosts:
            host, port = _parse_destination(entry)
            ports.add(port)
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                placement.notes.append(f"{host}: cannot resolve ({exc})")
                continue
            addresses = sorted({str(info[4][0]) for info in infos})
            placement.resolved.setdefault(host, [])
            placement.resolved[host] += [a for a in addresses if a not in
                                         placement.resolved[host]]
            destinations += [egress.Destination(a, port) for a in addresses]
        placement.tcp_ports = sorted(ports)
        if placement.uid is None or not self.egress_ok:
            reason = ("workers share the appliance's uid" if placement.uid is None
                      else self.egress_reason)
            placement.notes.append(f"granted hosts enforced by port only ({reason})")
            return
        try:
            egress.install(placement.name, placement.uid, destinations)
        except OSError as exc:
            raise ConfinementError(f"python action {spec.node_id}: {exc}") from None
        placement.egress_table = egress.table_name(placement.name)


def _dead_owner(name: str, separator: str) -> bool:
    """True when ``name`` ends in ``<pid><sep><serial>`` of a process that is gone."""
    parts = name.rsplit(separator, 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return False
    return not Path(f"/proc/{parts[1]}").exists()


def default_scratch_root() -> Path:
    """Where the workers' scratch directories go: ``/run/pafw/scratch`` where the appliance
    may write there (root; the unit's ``RuntimeDirectory=pafw``, mode 0711), else a directory
    of this user's in the temporary directory. Both are traversable by the workers' uids,
    unlike the state directory (0750)."""
    run = Path("/run/pafw")
    if os.access(run if run.is_dir() else run.parent, os.W_OK | os.X_OK):
        return run / "scratch"
    return Path(tempfile.gettempdir()) / f"pafw-scratch-{os.geteuid()}"


def check_readable_by_others(targets: set[str] | None = None, *,
                             need_read: bool = True) -> None:
    """ConfinementError naming the first directory or file a uid of its own (no group, not
    the owner) cannot read: the interpreter's library, the venv and the SDK (``targets``)
    must be world-readable for workers to import what they need."""
    import firmware

    if targets is None:
        targets = {os.path.dirname(os.__file__),
                   os.path.dirname(os.path.realpath(sys.executable)),
                   os.path.dirname(os.path.realpath(firmware.__file__))}
        targets |= {site for site in sys.path
                    if site.endswith("site-packages") and os.path.isdir(site)}
    for target in sorted(targets):
        path = Path(target).resolve()
        for part in [*reversed(path.parents), path]:
            try:
                mode = part.stat().st_mode
            except OSError:
                continue
            need = stat.S_IXOTH | (stat.S_IROTH if part == path and need_read else 0)
            if mode & need != need:
                raise ConfinementError(
                    f"python action workers run as a uid of their own and cannot read "
                    f"{part} (mode {stat.filemode(mode)}), needed for {path}: make it "
                    f"readable by others (chmod o+rx {part}), or install the appliance where "
                    f"it is (e.g. /opt), or set scripts.worker_uid_base: null to run workers "
                    f"as scripts.worker_user")
