"""Landlock of a PythonAction worker: which files it may read or write, which TCP ports it
may connect to, and whom it may signal, enforced by the kernel (Linux >= 5.13; the network
rules need ABI 4, Linux 6.7; the signal and abstract-socket scopes ABI 6, Linux 6.12).

The worker restricts itself once, after dropping privileges and before the script runs
(``restrict``): reads are limited to the interpreter and its libraries, the SDK, the script
file itself and a few system files; writes to its private scratch directory; ``/proc`` to its
own pid's directory (no other process's environment or command line). Landlock only ever
removes rights, is inherited by every thread, and cannot be lifted.

The system calls are called through libc's ``syscall`` by number: 444-446 on every
architecture (they were added after the tables were unified).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from typing import Any

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

#: file-system rights each ABI knows
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
             5: (1 << 16) - 1}
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
SCRATCH = (WRITE_FILE | READ_FILE | READ_DIR | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG
           | REFER | TRUNCATE)
O_PATH = getattr(os, "O_PATH", 0o10000000)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class LandlockUnavailableError(OSError):
    """Raised when the kernel has no Landlock (or refuses the ruleset)."""


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI (0: not available: too old, or not in the LSM list)."""
    libc = _libc()
    version = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(0, int(version))


@dataclass
class Policy:
    """What the worker keeps. ``tcp_ports`` None: TCP is not restricted by Landlock
    (``network: true``); an empty list: no TCP connection at all."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    #: directories given as open descriptors (the host's data directory)
    write_fds: list[int] = field(default_factory=list)
    tcp_ports: list[int] | None = field(default_factory=list)


def system_read_paths() -> list[str]:
    """The interpreter, its standard library, the venv and the shared libraries it loads,
    time zones and CA certificates (for granted TLS), the few /etc files name lookups and
    TLS read, and /dev/null and /dev/urandom."""
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable)),
             "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
             "/usr/share/zoneinfo", "/usr/share/ca-certificates", "/etc/ssl",
             "/etc/ca-certificates", "/etc/localtime", "/etc/hosts", "/etc/resolv.conf",
             "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf", "/etc/services",
             "/etc/protocols", "/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/dev/random"}
    if sys.base_prefix == "/usr":  # not all of /usr: the standard library and the libraries
        paths.discard("/usr")
        paths.add(os.path.join("/usr/lib", f"python{sys.version_info[0]}."
                               f"{sys.version_info[1]}"))
    return sorted(paths)


def restrict(policy: Policy) -> dict[str, Any]:
    """Apply ``policy`` to this process for good. Requires no_new_privs. Raises
    LandlockUnavailableError when the kernel has no Landlock; returns the report otherwise."""
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailableError("the kernel has no Landlock (Linux >= 5.13 with "
                                  "CONFIG_SECURITY_LANDLOCK and 'landlock' in lsm=)")
    libc = _libc()
    handled_fs = FS_BY_ABI.get(abi, FS_BY_ABI[5])
    attr = _RulesetAttr(handled_access_fs=handled_fs)
    size = 8
    net = abi >= 4 and policy.tcp_ports is not None
    if net:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET
        size = 24
    fd = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                      ctypes.c_uint32(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise LandlockUnavailableError(f"landlock_create_ruleset: {os.strerror(err)}")
    skipped: list[str] = []
    try:
        for rights, paths in ((READ_ONLY, policy.read), (SCRATCH | READ_ONLY, policy.write)):
            for path in paths:
                if not _add_path(libc, fd, path, rights & handled_fs):
                    skipped.append(path)
        for fd_path in policy.write_fds:
            _add_fd(libc, fd, fd_path, (SCRATCH | READ_ONLY) & handled_fs)
        for port in (policy.tcp_ports or []) if net else []:
            rule = _NetPort(allowed_access=NET_CONNECT_TCP, port=port)
            if libc.syscall(SYS_ADD_RULE, fd, RULE_NET_PORT, ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:
                err = ctypes.get_errno()
                raise LandlockUnavailableError(f"landlock port rule {port}: {os.strerror(err)}")
        if libc.syscall(SYS_RESTRICT_SELF, fd, ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise LandlockUnavailableError(f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(fd)
    return {"abi": abi, "network": ("ports " + ",".join(map(str, policy.tcp_ports or []))
                                    if policy.tcp_ports else "no tcp") if net else
            ("not restricted" if policy.tcp_ports is None else "needs ABI 4"),
            "scoped": "signals, abstract sockets" if abi >= 6 else "needs ABI 6",
            "write": list(policy.write), "missing": skipped}


def _add_fd(libc: Any, ruleset: int, directory_fd: int, rights: int) -> None:
    rule = _PathBeneath(allowed_access=rights, parent_fd=directory_fd)
    if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule),
                    ctypes.c_uint32(0)) != 0:
        err = ctypes.get_errno()
        raise LandlockUnavailableError(f"landlock rule for fd {directory_fd}: "
                                       f"{os.strerror(err)}")


def _add_path(libc: Any, ruleset: int, path: str, rights: int) -> bool:
    """Allow ``rights`` beneath ``path``; False when it does not exist."""
    try:
        fd = os.open(path, O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        rule = _PathBeneath(allowed_access=rights, parent_fd=fd)
        if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise LandlockUnavailableError(f"landlock rule for {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
    return True
