"""Sandbox of a PythonAction worker, applied before the customer script is loaded.

The kernel keeps the promises; Python-level guards are the second line. In this order
(``apply_sandbox``), each step reported in the ready message and shown by ``pafw status``:

1. ``prctl(PR_SET_NO_NEW_PRIVS)``: no exec can ever gain privileges; Landlock and seccomp
   need it.
2. Resource limits (soft = hard, so the script cannot raise them): ``RLIMIT_AS``
   (``max_memory_mb + AS_HEADROOM_MB``: address space is not memory use, so the headroom
   keeps real scripts working while a runaway allocation fails at once; the exact memory
   limit is the cgroup's, and the host's RSS watchdog), ``RLIMIT_CORE = 0``,
   ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE`` (no file larger than the scratch cap) and, when the
   worker gets a uid of its own, ``RLIMIT_NPROC`` (threads of that uid).
3. The uid: where the appliance may switch users (root, or CAP_SETUID+CAP_SETGID), each
   action runs as a uid and gid of its own with no supplementary group (``worker_uid``, see
   confinement.py), or as ``run_as_user``; capabilities are cleared. No worker can signal,
   trace or read the files of another. The parent-death signal is armed after the switch.
4. Landlock (landlock.py): reads limited to the interpreter, the SDK, the script and its own
   ``/proc`` entry; writes to its scratch directory; TCP connections to the granted ports
   only; no signal or abstract socket outside its domain.
5. Seccomp (seccomp.py): a system call allow-list. No process creation, no signal to another
   process, no socket unless network is granted (and then only AF_INET/AF_INET6), no
   mount, namespace, ptrace, bpf, io_uring, memfd, System V IPC.
6. The audit hook (second line): refuses network events without a grant and, once armed
   just before the script runs, process creation and ``ctypes.dlopen``.
7. With a host list granted, name lookups are answered from the addresses the host
   resolved for those hosts (the worker sends no DNS datagram).

Where the kernel lacks a feature (no Landlock before 5.13, no Landlock network rules
before 6.7, no libseccomp), the step is skipped, the report says so and the host logs a
warning: the remaining layers still apply.
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
NPROC_SPARE = 8
DEFAULT_MAX_THREADS = 16
DEFAULT_SCRATCH_MB = 16
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
CAP_SETGID, CAP_SETUID = 6, 7
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


def apply_rlimits(max_memory_mb: int, *, nproc: int | None,
                  fsize_mb: int = DEFAULT_SCRATCH_MB) -> dict[str, Any]:
    """Set AS, CORE, NOFILE, FSIZE (and NPROC when given); report what is in force."""
    as_mb = max_memory_mb + AS_HEADROOM_MB
    limits: dict[str, int | None] = {"as_mb": as_mb, "core": 0, "nofile": NOFILE_LIMIT,
                                     "fsize_mb": fsize_mb}
    resource.setrlimit(resource.RLIMIT_AS, (as_mb * MIB,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb * MIB,) * 2)
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
    """Drop to the passwd entry ``user`` (``run_as_user``); see :func:`drop_privileges_to`."""
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ScriptError(f"run_as_user {user!r} does not exist on this system") from None
    return {**drop_privileges_to(entry.pw_uid, entry.pw_gid), "user": user}


def drop_privileges_to(uid: int, gid: int) -> dict[str, Any]:
    """setgroups([]), setresgid, setresuid to ``uid``/``gid`` (no passwd entry needed), clear
    every capability; verify that neither root nor the previous uid can come back."""
    import ctypes  # before the switch: the new uid may not read the standard library

    libc = ctypes.CDLL(None, use_errno=True)
    previous_uid = os.getuid()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    clear_capabilities(libc)
    for back in {0, previous_uid} - {uid}:
        try:
            os.setuid(back)
        except PermissionError:
            continue
        raise ScriptError(f"could not drop privileges to uid {uid}: uid {back} is reachable")
    if effective_capabilities():  # pragma: no cover - capset above failed silently
        raise ScriptError(f"capabilities left after dropping to uid {uid}")
    return {"uid": uid, "gid": gid, "user": None}


def apply_sandbox(spec: dict[str, Any], *, parent_pid: int) -> tuple[dict[str, Any], AuditGuard]:
    """Confine this process as the ``init`` frame ``spec`` asks (module docstring, steps 1-7);
    return the report for the ready message and the (installed, not yet armed) audit guard.
    ``parent_pid`` is the host's pid as seen at the worker's start (to notice a host that
    died before the parent-death signal was armed)."""
    report: dict[str, Any] = {"warnings": []}
    warnings: list[str] = report["warnings"]
    uid, gid = spec.get("worker_uid"), spec.get("worker_gid")
    run_as_user = spec.get("run_as_user")
    switching = can_switch_user() and (uid is not None or bool(run_as_user))
    max_threads = int(spec.get("max_threads", DEFAULT_MAX_THREADS))
    report["no_new_privs"] = _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) is None
    report["rlimits"] = apply_rlimits(
        int(spec["max_memory_mb"]), nproc=max_threads + NPROC_SPARE if switching else None,
        fsize_mb=max(int(spec.get("scratch_mb", DEFAULT_SCRATCH_MB)),
                     int(spec.get("data_mb") or 0)))
    from firmware.actions.python import landlock, seccomp  # before the user switch

    if switching and uid is not None:
        report.update(drop_privileges_to(int(uid), int(gid if gid is not None else uid)))
    elif switching and run_as_user:
        report.update(drop_privileges(run_as_user))
    else:
        report.update(uid=os.getuid(), gid=os.getgid(), user=None)
        if uid is not None or run_as_user:
            warnings.append("workers share the appliance's uid: it does not run as root "
                            "nor hold CAP_SETUID/CAP_SETGID")
    if switching and not os.access(os.path.dirname(os.__file__), os.R_OK | os.X_OK):
        warnings.append(f"the worker's uid cannot read the Python library at "
                        f"{os.path.dirname(os.__file__)}: imports not loaded yet will fail")
    _call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent_pid:  # the host died before the signal was armed
        os._exit(1)
    network = network_mode(spec)
    report["network"] = network
    if spec.get("data_fd") is not None:  # the persistent data directory: its working dir
        os.fchdir(int(spec["data_fd"]))
        report["data_dir"] = "working directory"
    try:
        report["landlock"] = landlock.restrict(landlock_policy(spec))
    except OSError as exc:
        report["landlock"] = {"abi": 0, "error": str(exc)}
        warnings.append(f"Landlock not applied ({exc}): files and TCP ports are not "
                        f"confined by the kernel")
    else:
        if network == "hosts" and report["landlock"]["abi"] < 4:
            warnings.append("the kernel's Landlock has no network rules (Linux < 6.7): the "
                            "granted ports are not enforced by it")
    try:
        report["seccomp"] = seccomp.install(network=network != "none",
                                            datagrams=network == "any")
    except OSError as exc:
        report["seccomp"] = {"mode": "none", "error": str(exc)}
        warnings.append(f"seccomp not applied ({exc}): system calls are not filtered")
    unsafe = set(spec.get("unsafe_allow_refused_imports", []))
    guard = AuditGuard(network=network != "none", processes="subprocess" in unsafe,
                       dlopen="ctypes" in unsafe)
    guard.install()
    if network == "hosts":
        install_name_table(spec.get("resolved_hosts") or {})
    report["processes"] = ("seccomp" if report["seccomp"].get("mode") == "allow-list"
                           else "audit-hook")
    return report, guard


def network_mode(spec: dict[str, Any]) -> str:
    """"none", "hosts" (a granted host:port list) or "any" (``network: true``)."""
    if not spec.get("network"):
        return "none"
    return "hosts" if spec.get("tcp_ports") is not None else "any"


def landlock_policy(spec: dict[str, Any]) -> Any:
    """What the worker may read (interpreter, SDK, its script, its own /proc entry) and write
    (its scratch directory), and the TCP ports it may connect to."""
    import firmware
    from firmware.actions.python import landlock

    sdk = os.path.dirname(os.path.realpath(firmware.__file__))
    script = os.path.realpath(str(spec["script_path"]))
    read = [*landlock.system_read_paths(), sdk, script, f"/proc/{os.getpid()}"]
    scratch = spec.get("scratch_dir")
    network = network_mode(spec)
    ports = None if network == "any" else [int(p) for p in spec.get("tcp_ports") or []]
    data_fd = spec.get("data_fd")
    return landlock.Policy(read=read, write=[str(scratch)] if scratch else [],
                           write_fds=[int(data_fd)] if data_fd is not None else [],
                           tcp_ports=ports)


def install_name_table(resolved: dict[str, list[str]]) -> None:
    """Serve name lookups of the granted hosts from the addresses the host resolved: the
    worker may not send datagrams (DNS), and a name outside the grant resolves to nothing.
    Convenience only: the kernel rules (seccomp, Landlock ports, the egress table) decide."""
    import socket

    real = socket.getaddrinfo
    table = {name.lower(): list(addresses) for name, addresses in resolved.items()}

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0,
                    proto: int = 0, flags: int = 0) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _is_address(str(name)):
            return real(host, port, family, type, proto, flags)
        addresses = table.get(str(name).lower().rstrip("."))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not a granted host of this "
                                                     f"action (capabilities.network)")
        out: list[Any] = []
        for address in addresses:
            out.extend(real(address, port, family, type, proto,
                            flags | socket.AI_NUMERICHOST))
        return out

    socket.getaddrinfo = getaddrinfo


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
