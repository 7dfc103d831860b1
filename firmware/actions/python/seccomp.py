"""Seccomp-BPF allow-list of a PythonAction worker, loaded through libseccomp.

The kernel, not Python, decides which system calls a worker may make once the script runs.
The filter is built with libseccomp (``libseccomp.so.2``, installed on every Debian and
Raspberry Pi OS system: systemd depends on it) through ctypes, so system call names are
resolved for the machine's own architecture (x86-64, aarch64, armhf) and the filter checks
the architecture too: a call through another ABI (x32, ia32) kills the process.

What the allow-list grants is what CPython, its standard library and numpy need to compute,
read files, use threads and talk to the host over the inherited socket. Everything else fails
with ``EPERM``; a few calls are refined by their arguments:

* ``clone`` only with ``CLONE_THREAD`` (threads, never processes); ``clone3`` fails with
  ``ENOSYS`` so glibc falls back to ``clone``; ``fork``, ``vfork``, ``execve`` are refused.
* ``kill``/``tgkill`` only towards the worker's own pid (faulthandler and ``raise``);
  ``tkill``, ``rt_sigqueueinfo`` and pidfd signals are refused.
* ``socket`` only for ``AF_INET``/``AF_INET6`` and only when the action is granted network;
  with a host list, stream sockets only (UDP would bypass the TCP port rules), with
  ``network: true`` datagrams too. ``socketpair``, ``AF_UNIX``, ``AF_NETLINK``, ``AF_PACKET``
  are never available; the inherited host channel needs no new socket.
* ``ptrace``, ``process_vm_*``, ``mount``, ``unshare``, ``setns``, ``bpf``, ``perf_event_open``,
  ``io_uring_*``, ``userfaultfd``, ``memfd_create``, System V IPC, ``keyctl``, module and reboot
  calls, ``personality``, ``set*id`` are not on the list.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

LIBSECCOMP = "libseccomp.so.2"

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(code: int) -> int:  # noqa: N802 - libseccomp's macro name
    """The action "fail with this errno"."""
    return 0x00050000 | (code & 0xFFFF)


SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
CLONE_THREAD = 0x00010000
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC are flags above it

#: allowed without conditions; names the running architecture lacks (open on aarch64) are
#: skipped when the filter is built
ALLOWED = (
    # memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "membarrier",
    # files (Landlock decides which paths)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "close", "close_range", "creat", "lseek",
    "_llseek", "stat", "lstat", "fstat", "newfstatat", "fstatat64", "stat64", "lstat64",
    "fstat64", "statx", "statfs", "fstatfs", "statfs64", "fstatfs64", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir",
    "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "chmod", "fchmod", "fchmodat", "umask", "ftruncate", "ftruncate64",
    "truncate", "fallocate", "fsync", "fdatasync", "sync_file_range", "fadvise64",
    "fadvise64_64", "arm_fadvise64_64", "readahead", "sendfile", "sendfile64",
    "copy_file_range", "flock", "utimensat", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "dup", "dup2", "dup3", "fcntl", "fcntl64",
    "ioctl", "pipe", "pipe2",
    # waiting and time
    "select", "_newselect", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "nanosleep", "clock_nanosleep",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "times", "getitimer",
    "setitimer", "alarm", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "futex", "futex_waitv", "sched_yield",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_getattr",
    "get_robust_list", "set_robust_list", "set_tid_address", "rseq", "restart_syscall",
    # signals to itself (kill/tgkill are added with conditions)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigreturn", "sigaltstack",
    "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend", "pause", "signalfd", "signalfd4",
    # identity and limits (reading; prlimit64 cannot raise a hard limit without privilege)
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getuid32", "geteuid32", "getgid32", "getegid32",
    "getresuid32", "getresgid32", "getgroups32", "getpgrp", "getpgid", "getsid",
    "getrlimit", "ugetrlimit", "prlimit64", "getrusage", "getpriority", "sysinfo", "uname",
    "getrandom", "getcpu", "capget", "prctl", "arch_prctl",
    # the host channel and, when granted, the network (socket itself has conditions)
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    "getsockname", "getpeername", "getsockopt", "setsockopt",
    # threads end, processes end
    "exit", "exit_group", "wait4", "waitid",
)
#: allowed only with network granted (Landlock refuses binding a TCP port anyway)
NETWORK = ("connect", "bind", "listen", "accept", "accept4")


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class SeccompUnavailableError(OSError):
    """Raised when libseccomp cannot be loaded or the kernel refuses the filter."""


class _Filter:
    """A libseccomp filter context being built."""

    def __init__(self, default_action: int) -> None:
        try:
            self.lib = ctypes.CDLL(LIBSECCOMP, use_errno=True)
        except OSError as exc:
            raise SeccompUnavailableError(f"cannot load {LIBSECCOMP}: {exc}") from None
        lib = self.lib
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        self.ctx = lib.seccomp_init(default_action)
        if not self.ctx:
            raise SeccompUnavailableError("seccomp_init failed")
        lib.seccomp_attr_set(self.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)
        # a binary tree instead of a list of ~170 comparisons on every system call
        # (libseccomp >= 2.5; older versions refuse the attribute and keep the list)
        lib.seccomp_attr_set(self.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        self.rules = 0

    def rule(self, action: int, name: str, *conditions: tuple[int, int, int, int]) -> bool:
        """Add one rule; False when this architecture has no such call."""
        number = self.lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return False
        array = (_ArgCmp * max(1, len(conditions)))(*(_ArgCmp(*c) for c in conditions))
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, number, len(conditions), array)
        if rc < 0:
            raise SeccompUnavailableError(f"seccomp rule for {name}: {os.strerror(-rc)}")
        self.rules += 1
        return True

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        self.lib.seccomp_release(self.ctx)
        if rc < 0:
            raise SeccompUnavailableError(f"the kernel refused the seccomp filter: "
                                     f"{os.strerror(-rc)}")


def install(*, network: bool, datagrams: bool) -> dict[str, Any]:
    """Load the worker's filter into this process (irreversible; needs no_new_privs or
    CAP_SYS_ADMIN). ``network``: AF_INET/AF_INET6 sockets; ``datagrams``: UDP too.
    Returns the report for the status ("allow-list", how many rules)."""
    allow, refuse = SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(errno.EPERM)
    f = _Filter(refuse)
    for name in ALLOWED:
        f.rule(allow, name)
    pid = os.getpid()
    f.rule(allow, "clone", (0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
    f.rule(SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
    f.rule(allow, "kill", (0, SCMP_CMP_EQ, pid, 0))
    f.rule(allow, "tgkill", (0, SCMP_CMP_EQ, pid, 0))
    if network:
        for name in NETWORK:
            f.rule(allow, name)
        for family in (AF_INET, AF_INET6):
            f.rule(allow, "socket", (0, SCMP_CMP_EQ, family, 0),
                   (1, SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, SOCK_STREAM))
            if datagrams:
                f.rule(allow, "socket", (0, SCMP_CMP_EQ, family, 0),
                       (1, SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, SOCK_DGRAM))
    rules = f.rules
    f.load()
    return {"mode": "allow-list", "rules": rules,
            "sockets": ("inet stream+datagram" if datagrams else "inet stream")
            if network else "none"}
