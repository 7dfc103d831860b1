"""Sandbox of a PythonAction worker, applied before the customer script is loaded.

What is enforced, in this order (``apply_sandbox``):

1. ``prctl(PR_SET_NO_NEW_PRIVS)``: no exec can ever gain privileges (setuid binaries, file
   capabilities).
2. Resource limits (soft = hard, so the script cannot raise them):
   ``RLIMIT_AS = max_memory_mb + AS_HEADROOM_MB`` MiB. Address space is not memory use:
   the interpreter, its shared libraries, malloc arenas and thread stacks reserve more than
   they touch (measured on x86-64: a worker running the study's email script maps 27 MiB
   for 22 MiB resident; numpy with one BLAS thread maps 100 MiB for 26 MiB resident, and
   every extra thread reserves an 8 MiB stack), so the headroom keeps real scripts working
   while a runaway allocation still ends in a MemoryError within milliseconds. The precise
   limit is the host's RSS watchdog (every 0.5 s, kill above ``max_memory_mb``).
   ``RLIMIT_CORE = 0`` (no core dumps of secrets), ``RLIMIT_NOFILE = NOFILE_LIMIT``.
   ``RLIMIT_NPROC = NPROC_LIMIT`` only when the worker drops to ``run_as_user``: the limit
   counts every process and thread of the uid and root ignores it, so it only means
   something for a dedicated unprivileged user.
3. Network, when not granted: ``unshare(CLONE_NEWNET)`` puts the worker in an empty network
   namespace (only a down loopback; needs root, so as a developer it usually fails), and an
   audit hook ALWAYS refuses socket.connect/bind/sendto/sendmsg/getaddrinfo and name lookups
   with "network access is not granted to this action: add capabilities.network: true".
   The ready message reports "netns+audit-hook" or "audit-hook" (or "granted").
4. ``run_as_user`` (when running as root): setgroups([]), setgid, setuid to that user, so
   root-only or gpio-group files (/dev/gpiochip*, /dev/gpiomem: root:gpio 0660) cannot be
   opened. The parent-death signal (SIGKILL) is set after that change (the kernel clears it
   on credential changes). The interpreter, the venv and the scripts directory must stay
   readable by that user for imports made after the drop.
5. The audit hook, once armed just before the script's code runs, also refuses process
   creation (os.system, os.exec*, os.fork, os.forkpty, os.posix_spawn, subprocess.Popen,
   os.kill/killpg) unless ``subprocess`` is unlocked through unsafe_allow_refused_imports,
   and ``ctypes.dlopen`` unless ``ctypes`` is. For a non-root developer (no NPROC, no
   netns) the hook is the fork-bomb and network containment.

Audit hooks cannot be removed, but Python-level tricks can reach code the hook does not
see (a C extension, ctypes when unlocked): it is defense in depth. The boundary is the
separate process, its rlimits, the unprivileged uid, the network namespace and the host's
capability checks on every API request.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import TYPE_CHECKING, Any

from firmware.errors import ScriptError

if TYPE_CHECKING:
    from pathlib import Path  # host side: the worker avoids pathlib

MIB = 1 << 20
AS_HEADROOM_MB = 256
NOFILE_LIMIT = 64
NPROC_LIMIT = 64
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNET = 0x40000000
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522

NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"})
PROCESS_EVENTS = frozenset({
    "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
    "subprocess.Popen", "os.kill", "os.killpg"})
NETWORK_REFUSED = "network access is not granted to this action: add capabilities.network: true"


class ScriptPathError(ScriptError, ValueError):
    """Raised when a script path is missing or resolves outside the scripts directory."""


def real_script_path(scripts_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """The real path (symlinks resolved) of ``path`` (relative paths are taken inside
    ``scripts_dir``); ScriptPathError unless it is a file inside the real scripts_dir."""
    real_dir = os.path.realpath(scripts_dir)
    real = os.path.realpath(os.path.join(real_dir, path))
    if os.path.commonpath([real_dir, real]) != real_dir:
        raise ScriptPathError(f"script {os.fspath(path)!r} resolves to {real!r}, outside the "
                              f"scripts directory {real_dir!r}")
    if not os.path.isfile(real):
        raise ScriptPathError(f"script {os.fspath(path)!r} not found (looked at {real!r} in "
                              f"the scripts directory {real_dir!r})")
    return real


def resolve_script(scripts_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Host-side check before spawning a worker; see :func:`real_script_path`."""
    from pathlib import Path  # host side: the worker avoids pathlib

    return Path(real_script_path(scripts_dir, path))


def read_script(scripts_dir: str, path: str) -> tuple[str, str]:
    """(real path, source) of the script, re-checked in the worker on the opened file itself
    (its /proc/self/fd link), so a symlink swapped after the check cannot redirect the read."""
    expected = real_script_path(scripts_dir, path)
    fd = os.open(expected, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
        real_script_path(scripts_dir, opened)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    return opened, data.decode("utf-8")


class AuditGuard:
    """The worker's audit hook (see the module docstring). Network refusals apply at once;
    process creation and dlopen refusals from :meth:`arm` on (the worker itself needs ctypes
    for prctl before that)."""

    def __init__(self, *, network: bool, processes: bool, dlopen: bool) -> None:
        self.refused: dict[str, str] = {}
        if not network:
            self.refused.update(dict.fromkeys(NETWORK_EVENTS, NETWORK_REFUSED))
        self._after_arm: dict[str, str] = {}
        if not processes:
            self._after_arm.update(dict.fromkeys(
                PROCESS_EVENTS, "process creation and signals are not allowed in actions"))
        if not dlopen:
            self._after_arm["ctypes.dlopen"] = "loading native libraries is not allowed"

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        reason = self.refused.get(event)
        if reason is not None:
            raise PermissionError(f"{reason} ({event})")

    def install(self) -> None:
        """Add the hook (for the life of the process: audit hooks cannot be removed)."""
        sys.addaudithook(self)

    def arm(self) -> None:
        """Start refusing process creation and dlopen (called just before the script runs)."""
        self.refused.update(self._after_arm)


def _call(name: str, *args: int) -> str | None:
    """Call a libc function through ctypes; None on success, else the errno text. ctypes is
    loaded here, before the script (whose dlopen the armed audit hook refuses)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        return f"{name} failed: {os.strerror(err)} (errno {err})"
    return None


def apply_rlimits(max_memory_mb: int, *, nproc: int | None) -> dict[str, Any]:
    """Set AS, CORE, NOFILE (and NPROC when given); report what is in force."""
    limits = {"as_mb": max_memory_mb + AS_HEADROOM_MB, "core": 0, "nofile": NOFILE_LIMIT}
    resource.setrlimit(resource.RLIMIT_AS, (limits["as_mb"] * MIB,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = min(NOFILE_LIMIT, hard if hard != resource.RLIM_INFINITY else NOFILE_LIMIT)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    limits["nofile"] = nofile
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    limits["nproc"] = nproc
    return limits


def effective_capabilities() -> int:
    """This process's effective capability set (CapEff of /proc/self/status). Read as bytes:
    after a user switch no codec module may be importable."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapEff:"):
                return int(line.split()[1], 16)
    return 0


def can_switch_user() -> bool:
    """True when this process may switch its workers to another user: euid 0, or
    CAP_SETUID and CAP_SETGID in its effective set (a service run as an unprivileged user
    with systemd's AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL)."""
    if os.geteuid() == 0:
        return True
    caps = effective_capabilities()
    return bool(caps & (1 << CAP_SETUID)) and bool(caps & (1 << CAP_SETGID))


def clear_capabilities(libc: Any) -> None:
    """Empty the ambient, effective, permitted and inheritable sets. The kernel does this by
    itself only on a switch away from uid 0 (capabilities(7)); a worker started with ambient
    capabilities keeps them across setuid otherwise, and could switch back. ``libc`` is
    loaded before the switch: the new user may not be able to read the interpreter's files."""
    import ctypes

    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before Linux 4.3
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2 words: all zero
    if libc.capset(header, data) != 0:
        err = ctypes.get_errno()
        raise ScriptError(f"cannot clear capabilities: {os.strerror(err)} (errno {err})")


def drop_privileges(user: str) -> dict[str, Any]:
    """setgroups([]), setgid, setuid to ``user`` (root only); verify root cannot come back."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ScriptError(f"run_as_user {user!r} does not exist on this system") from None
    import ctypes  # before the switch: the new user may not read the standard library

    libc = ctypes.CDLL(None, use_errno=True)
    previous_uid = os.getuid()
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    clear_capabilities(libc)
    for back in {0, previous_uid} - {entry.pw_uid}:
        try:
            os.setuid(back)
        except PermissionError:
            continue
        raise ScriptError(f"could not drop privileges to {user!r}: uid {back} is reachable")
    if effective_capabilities():  # pragma: no cover - capset above failed silently
        raise ScriptError(f"capabilities left after dropping to {user!r}")
    return {"uid": entry.pw_uid, "gid": entry.pw_gid, "user": user}


def apply_sandbox(*, max_memory_mb: int, network: bool, run_as_user: str | None,
                  unsafe_allow_refused_imports: list[str],
                  parent_pid: int) -> tuple[dict[str, Any], AuditGuard]:
    """Apply steps 1-5 of the module docstring; return the report for the ready message and
    the (installed, not yet armed) audit guard. ``parent_pid`` is the host's pid as seen at
    the worker's start (to notice a host that died before the parent-death signal)."""
    report: dict[str, Any] = {"warnings": []}
    dropping = bool(run_as_user) and can_switch_user()
    report["no_new_privs"] = _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) is None
    report["rlimits"] = apply_rlimits(max_memory_mb, nproc=NPROC_LIMIT if dropping else None)
    if network:
        report["network"] = "granted"
    else:
        error = _call("unshare", CLONE_NEWNET)
        report["network"] = "audit-hook" if error else "netns+audit-hook"
        report["netns_error"] = error
    if dropping and run_as_user:
        report.update(drop_privileges(run_as_user))
        if not os.access(os.path.dirname(os.__file__), os.R_OK | os.X_OK):
            report["warnings"].append(
                f"run_as_user {run_as_user!r} cannot read the Python library at "
                f"{os.path.dirname(os.__file__)}: imports not loaded yet will fail")
    else:
        report.update(uid=os.getuid(), gid=os.getgid(), user=None)
        if run_as_user:
            report["warnings"].append(f"run_as_user {run_as_user!r} ignored: the appliance "
                                      f"does not run as root")
    _call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent_pid:  # the host died before the signal was armed
        os._exit(1)
    unsafe = set(unsafe_allow_refused_imports)
    processes = "subprocess" in unsafe
    report["processes"] = "allowed (unsafe)" if processes else (
        "audit-hook+nproc" if dropping else "audit-hook")
    guard = AuditGuard(network=network, processes=processes, dlopen="ctypes" in unsafe)
    guard.install()
    return report, guard
