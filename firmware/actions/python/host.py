"""Host side of one PythonAction worker process: spawn, RPC with deadlines, logs, memory.

:class:`PythonWorker` runs on the control loop (asyncio) and never blocks it: the socketpair
is an asyncio stream, the process an asyncio subprocess. One call runs at a time; its wall-
clock deadline (``timeout_ms``, which includes the time the host spends answering the
script's API requests) kills the worker's whole process group with SIGKILL on expiry and
raises :class:`WorkerTimeout`; just before the kill (at most 0.25 s) the worker dumps its
stack (faulthandler on SIGUSR1) so the error names the script line it was stuck on. Requests
of the script are answered at any time, through ``handle_request`` (the integrator's
capability-checking API); a PermissionError, ValueError ... raised there reaches the script
as that type. Worker log lines go to ``logger``, at most ``log_lines_per_s`` per second,
then one "suppressed N lines" summary.

The worker is started from the control loop's thread, and its parent-death signal is tied to
that thread: it dies with the loop, never outlives the appliance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware.actions.log_limit import LogLimiter, printable
from firmware.actions.python import protocol
from firmware.actions.python.confinement import Confinement, ConfinementError, Placement
from firmware.actions.python.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ProtocolError,
    ScriptCallError,
    ScriptLoadError,
    WorkerCrashed,
    WorkerError,
    WorkerRetired,
    WorkerTimeout,
    describe_error,
    describe_exit,
)
from firmware.actions.python.spec import WorkerSpec

MIB = 1 << 20
RequestHandler = Callable[[str, list[Any], dict[str, Any]], Awaitable[Any]]
WORKER_MODULE = "firmware.actions.python.worker"
#: API requests of one worker being answered at once: a worker waits for each answer, so
#: more than a few means it writes requests without reading the replies (a flood)
MAX_REQUESTS_IN_FLIGHT = 4
#: unsent reply bytes the host holds for one worker before it is cut off as not reading
MAX_UNSENT_BYTES = 2 * DEFAULT_MAX_FRAME_BYTES
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
_serial = 0
#: CPU seconds between calls after which the host warns (once per worker)
BACKGROUND_CPU_WARN_S = 1.0


def _read_proc_kb(path: str, keys: tuple[str, ...]) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            total = sum(int(line.split()[1]) for line in f if line.split(":")[0] in keys)
    except (OSError, ValueError, IndexError):
        return None
    return total * 1024


def worker_env(spec: WorkerSpec, scratch: Path) -> dict[str, str]:
    """The worker's environment: minimal, so no secret of the appliance's leaks into it
    (configuration reaches the script through python_config), single-threaded math libs,
    home and temporary files in its scratch directory."""
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": str(scratch), "TMPDIR": str(scratch), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    return env


class PythonWorker:
    """One worker process running one script. Not restarted here: see WorkerSupervisor.

    Example::

        worker = PythonWorker(spec, handle_request=api.handle, logger=log)
        await worker.start(timeout_s=5)
        ok = await worker.call("on_trigger", "concentration", {"value": 1200.0})
        await worker.stop()
    """

    def __init__(self, spec: WorkerSpec, *, handle_request: RequestHandler,
                 logger: logging.Logger, confinement: Confinement | None = None) -> None:
        self.spec = spec
        self.confinement = confinement or Confinement.shared()
        self.placement: Placement | None = None
        self._released: asyncio.Task[None] | None = None
        self._in_flight = 0
        #: where the script was when the worker was killed for a protocol violation
        self.kill_info: dict[str, Any] | None = None
        #: CPU seconds the worker used while no call was in flight (threads of its own)
        self.background_cpu_s = 0.0
        self._cpu_seen: float | None = None
        self._background_warned = False
        self._handle = handle_request
        self.logger = logger
        self.limiter = LogLimiter(logger, f"python action {spec.node_id}", spec.log_lines_per_s)
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._exited: asyncio.Future[int] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._stderr_tail: deque[str] = deque(maxlen=10)
        self._dump: list[str] | None = None  # collects fd-2 lines after SIGUSR1
        self._stderr_task: asyncio.Task[Any] | None = None
        self.kill_reason: str | None = None
        #: set by stop(): calls that have not started are refused with WorkerRetired
        self.retired = False
        self.ready_info: dict[str, Any] = {}
        self.start_ms: float | None = None
        self.calls = self.requests = 0

    # ------------------------------------------------------------------ properties
    @property
    def pid(self) -> int | None:
        """The worker's pid (None before start)."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the worker is gone (negative: killed by that signal)."""
        return self._exited.result() if self._exited and self._exited.done() else None

    @property
    def alive(self) -> bool:
        """True from the spawn until the process has exited."""
        return self._exited is not None and not self._exited.done()

    # ------------------------------------------------------------------- lifecycle
    async def start(self, timeout_s: float = 5.0) -> None:
        """Spawn the worker and wait for ``ready``. Raises ScriptLoadError (with file:line)
        on a fatal load error, WorkerTimeout, or WorkerCrashed; the process is gone then."""
        spec = self.spec
        if spec.unsafe_allow_refused_imports:
            self.logger.warning("python action %s: UNSAFE refused imports unlocked: %s "
                                "(tests and diagnostics only)", spec.node_id,
                                ", ".join(spec.unsafe_allow_refused_imports))
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        global _serial
        _serial += 1
        name = f"{spec.node_id}-{os.getpid()}-{_serial}"
        try:
            placement = await asyncio.to_thread(self.confinement.prepare, spec, name)
        except (ConfinementError, OSError) as exc:
            raise ScriptLoadError(f"python action {spec.node_id}: {exc}", info={
                "type": type(exc).__name__, "message": str(exc), "file": None,
                "line": None}) from None
        self.placement = placement
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-m", WORKER_MODULE, "--fd", str(theirs.fileno()),
                "--max-frame", str(spec.max_frame_bytes),
                pass_fds=(theirs.fileno(), *placement.pass_fds()),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
                cwd=placement.scratch, env=worker_env(spec, placement.scratch))
        except OSError as exc:
            ours.close()
            await asyncio.to_thread(self.confinement.release, placement)
            raise WorkerCrashed(f"python action {spec.node_id}: cannot start a worker: "
                                f"{exc}") from None
        finally:
            theirs.close()
            placement.close_fds()
        init: bytes | None = None
        try:  # in its cgroup before it reads ``init``: no script code has run yet
            self.confinement.attach(placement, self._proc.pid)
            init = protocol.pack({**spec.init_message(), **placement.init_fields()},
                                 spec.max_frame_bytes)
        except ProcessLookupError:
            pass  # the interpreter died at once: its exit and stderr are reported below
        except (ConfinementError, ProtocolError) as exc:
            self._proc.kill()
            await self._proc.wait()
            ours.close()
            await asyncio.to_thread(self.confinement.release, placement)
            raise ScriptLoadError(f"python action {spec.node_id}: {exc}") from None
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._ready, self._exited = loop.create_future(), loop.create_future()
        self._spawn(self._read_loop(reader))
        self._stderr_task = self._spawn(self._pump_stderr())
        self._spawn(self._watch_exit())
        if init is not None:
            self._writer.write(init)
        try:
            self.ready_info = await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            self.kill("start timeout")
            await self.wait()
            raise WorkerTimeout(f"python action {spec.node_id}: worker {self.pid} not ready "
                                f"within {timeout_s} s; killed") from None
        except WorkerError:
            self.kill("load failed")
            await self.wait()
            raise
        except asyncio.CancelledError:  # e.g. the supervisor stopped meanwhile
            self.kill("start cancelled")
            raise
        self.start_ms = round((time.perf_counter() - t0) * 1e3, 3)
        report = self.ready_info.get("sandbox", {})
        self.logger.info("python action %s: worker %s ready in %.0f ms (%s)", spec.node_id,
                         self.pid, self.start_ms, self.protections())
        for warning in [*report.get("warnings", []), *placement.notes]:
            self.logger.warning("python action %s: %s", spec.node_id, printable(str(warning)))

    async def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` of the script's instance within ``timeout_ms``.

        Raises ScriptCallError (the script raised or returned a wrong type), WorkerTimeout
        (the worker was killed), WorkerCrashed, ProtocolError (args not JSON-like/too big).
        """
        if method not in protocol.CALL_METHODS:
            raise ValueError(f"unknown method {method!r}; one of "
                             f"{', '.join(sorted(protocol.CALL_METHODS))}")
        async with self._lock:
            if self.retired and method != "on_stop":
                raise WorkerRetired(f"python action {self.spec.node_id}: worker {self.pid} was "
                                    "stopped before the call started", returncode=self.returncode)
            if not self.alive or self._writer is None:
                raise WorkerCrashed(self.death_message(), returncode=self.returncode)
            self._next_id += 1
            call_id = self._next_id
            frame = protocol.pack({"t": "call", "id": call_id, "method": method,
                                   "args": list(args)}, self.spec.max_frame_bytes)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[call_id] = future
            self.calls += 1
            self._writer.write(frame)
            try:
                # a deadline on this task itself: no helper task nor shielded future per
                # call, so the reply resumes this coroutine in one turn of the loop
                async with asyncio.timeout(self.spec.timeout_ms / 1000):
                    await self._writer.drain()
                    reply = await future
            except TimeoutError:
                info = await self._where_stuck()
                self.kill("timeout")
                info["message"] = (f"{method} did not return within {self.spec.timeout_ms} "
                                   f"ms; worker {self.pid} killed")
                raise WorkerTimeout(describe_error(self.spec.node_id, "timeout", info),
                                    info=info) from None
            finally:
                self._pending.pop(call_id, None)
        if reply["t"] == "error":
            info = reply.get("error") or {}
            raise ScriptCallError(describe_error(self.spec.node_id, f"{method} failed", info),
                                  info=info)
        return reply.get("value")

    async def _where_stuck(self, wait_s: float = 0.25) -> dict[str, Any]:
        """Ask a stuck worker for its stack (faulthandler on SIGUSR1, written to fd 2) and
        find the innermost frame of the script: the timeout then names file:line."""
        info: dict[str, Any] = {"type": "WorkerTimeout", "file": None, "line": None,
                                "traceback": ""}
        if self._proc is None or not self.alive:
            return info
        self._dump = []
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGUSR1)
        path = str(self.ready_info.get("script") or self.spec.script_path)
        script = f'File "{path}", line '
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            found = [line for line in self._dump if script in line]
            if found:
                await asyncio.sleep(0.02)  # the rest of the dump
                info["line"] = int(found[0].split(script, 1)[1].split()[0])
                info["file"] = path
                break
        info["traceback"] = "\n".join(self._dump)[-4000:]
        self._dump = None
        self._stderr_tail.clear()  # the dump is in the error, not a crash cause
        return info

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Call on_stop (if the script defines it), close the connection, then SIGTERM and
        SIGKILL the process group if it does not exit. Idempotent."""
        if self._exited is None:
            return
        self.retired = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self.alive and "on_stop" in self.ready_info.get("methods", []):
            try:
                await asyncio.wait_for(self.call("on_stop"), max(0.05, timeout_s / 2))
            except (WorkerError, TimeoutError) as exc:
                self.logger.warning("python action %s: on_stop: %s", self.spec.node_id, exc)
        # let a call in flight finish (bounded): closing the connection would cut it off;
        # calls queued behind it see ``retired`` and raise WorkerRetired without starting
        try:
            await asyncio.wait_for(self._lock.acquire(), max(0.05, deadline - loop.time()))
        except TimeoutError:
            pass  # still busy at the deadline: the call is cut off with the worker
        else:
            self._lock.release()
        if self._writer is not None:
            self._writer.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self.kill_reason = self.kill_reason or "did not exit when stopped"
                self._killpg(sig)
            remaining = deadline - loop.time() if sig is None else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), max(0.05, remaining))
            if not self.alive:
                break
        self.limiter.flush()

    def kill(self, reason: str = "killed") -> None:
        """SIGKILL the worker, its process group and its cgroup now (the first reason is
        kept)."""
        if self.alive:
            self.kill_reason = self.kill_reason or reason
            self._killpg(signal.SIGKILL)

    def check_limits(self) -> str | None:
        """Kill the worker when its cgroup's OOM killer struck or its scratch directory
        holds more than ``scratch_mb`` (a directory, not a tmpfs: the kernel does not cap
        it); return the reason, else None. Called by the supervisor's watchdog."""
        placement = self.placement
        if not self.alive or placement is None or self.kill_reason:
            return None
        cgroup = placement.cgroup
        self._account_background_cpu(cgroup.cpu_s() if cgroup is not None else None)
        reason = None
        if cgroup is not None and cgroup.oom_kills():
            reason = (f"worker {self.pid} reached max_memory_mb {self.spec.max_memory_mb} "
                      f"(its cgroup's memory, files in its scratch included); killed")
        elif not placement.scratch_is_tmpfs and (
                used := placement.scratch_bytes()) > placement.scratch_mb * MIB:
            reason = (f"worker {self.pid} wrote {used / MIB:.1f} MiB to its scratch "
                      f"directory, over scratch_mb {placement.scratch_mb}; killed")
        elif placement.data_dir is not None and (
                used := placement.data_bytes()) > placement.data_mb * MIB:
            reason = (f"worker {self.pid} holds {used / MIB:.1f} MiB in its data directory "
                      f"{placement.data_dir}, over capabilities.data_mb "
                      f"{placement.data_mb}; killed (delete data or raise the grant)")
        if reason is not None:
            self.kill("memory" if "max_memory_mb" in reason else "storage")
        return reason

    def _account_background_cpu(self, cpu: float | None) -> None:
        """Add the CPU used since the last look (``cpu``: the cgroup's CPU seconds, None
        without a cgroup) to ``background_cpu_s`` when no call was in flight, and warn once
        past BACKGROUND_CPU_WARN_S: the cgroup throttles such a worker to max_cpu_percent,
        the operator should know why it is busy."""
        if cpu is None:
            return
        if self._cpu_seen is not None and not self._lock.locked():
            self.background_cpu_s += max(0.0, cpu - self._cpu_seen)
        self._cpu_seen = cpu
        if self.background_cpu_s > BACKGROUND_CPU_WARN_S and not self._background_warned:
            self._background_warned = True
            self.logger.warning(
                "python action %s: worker %s used %.1f s of CPU between calls (threads of "
                "the script); throttled to max_cpu_percent %d", self.spec.node_id, self.pid,
                self.background_cpu_s, self.spec.max_cpu_percent)

    def _note_oom_kill(self, code: int) -> None:
        """A worker the kernel killed for its cgroup's memory limit is a memory kill, with
        the limit named, not a crash."""
        cgroup = self.placement.cgroup if self.placement is not None else None
        if code != -signal.SIGKILL or self.kill_reason or cgroup is None:
            return
        stats = cgroup.stats()
        if stats.get("oom_kills"):
            self.kill_reason = "memory"
            peak = stats.get("memory_peak_bytes")
            used = f"used {peak / MIB:.1f} MiB, " if peak else ""
            message = (f"worker {self.pid} {used}over max_memory_mb "
                       f"{self.spec.max_memory_mb}; killed by the kernel (its cgroup's memory "
                       f"limit, files in its scratch directory included)")
            self.kill_info = {"type": "MemoryLimitExceeded", "message": message,
                              "file": None, "line": None}
            self.logger.error("python action %s: %s", self.spec.node_id, message)

    def protections(self) -> str:
        """One line: what the kernel enforces on this worker (for logs and status)."""
        report = self.ready_info.get("sandbox") or {}
        placement = self.placement
        parts = [f"uid {report.get('uid')}"]
        landlock = report.get("landlock") or {}
        parts.append(f"landlock ABI {landlock['abi']} (tcp: {landlock.get('network')})"
                     if landlock.get("abi") else "no landlock")
        seccomp = report.get("seccomp") or {}
        parts.append(f"seccomp {seccomp.get('mode')} (sockets: {seccomp.get('sockets')})"
                     if seccomp.get("mode") == "allow-list" else "no seccomp")
        if placement is not None:
            parts.append("cgroup " + (" ".join(placement.cgroup.enforced()) or "kill-only")
                         if placement.cgroup else "no cgroup")
            if placement.egress_table:
                parts.append("egress nftables")
            parts.append(f"scratch {'tmpfs' if placement.scratch_is_tmpfs else 'dir'} "
                         f"{placement.scratch_mb} MiB")
        return ", ".join(parts)

    async def wait(self) -> int:
        """Wait until the worker has exited; its return code."""
        if self._exited is None:
            raise RuntimeError("worker not started")
        return await asyncio.shield(self._exited)

    # ------------------------------------------------------------------- measures
    def rss_bytes(self) -> int | None:
        """Resident set size (from /proc/<pid>/status), None when not running."""
        return _read_proc_kb(f"/proc/{self.pid}/status", ("VmRSS",)) if self.alive else None

    def uss_bytes(self) -> int | None:
        """Unique set size: private pages (from /proc/<pid>/smaps_rollup)."""
        keys = ("Private_Clean", "Private_Dirty", "Private_Hugetlb")
        return _read_proc_kb(f"/proc/{self.pid}/smaps_rollup", keys) if self.alive else None

    def get_status(self) -> dict[str, Any]:
        """JSON-safe status of this worker process."""
        placement = self.placement
        cgroup = placement.cgroup if placement is not None else None
        return {"pid": self.pid, "alive": self.alive, "exit": describe_exit(self.returncode)
                if self.returncode is not None else None, "kill_reason": self.kill_reason,
                "start_ms": self.start_ms, "load_ms": self.ready_info.get("load_ms"),
                "network": self.ready_info.get("network"),
                "sandbox": self.ready_info.get("sandbox"),
                "protections": self.protections() if self.ready_info else None,
                "confinement": placement.get_status() if placement is not None else None,
                "usage": cgroup.stats() if cgroup is not None and self.alive else None,
                "background_cpu_s": round(self.background_cpu_s, 3),
                "calls": self.calls, "requests": self.requests,
                "log_suppressed": self.limiter.suppressed_total}

    # -------------------------------------------------------------------- internals
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _killpg(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self._proc.send_signal(sig)
        if sig == signal.SIGKILL and self.placement is not None and self.placement.cgroup:
            self.placement.cgroup.kill()

    def death_message(self) -> str:
        """How the worker ended: exit code or signal, our kill reason, last stderr lines."""
        text = f"python action {self.spec.node_id}: worker {self.pid} " \
               f"{describe_exit(self.returncode)}"
        if self.kill_reason:
            text += f" ({self.kill_reason})"
        if self._stderr_tail:
            text += "; stderr: " + " | ".join(self._stderr_tail)
        return text

    async def _watch_exit(self) -> None:
        assert self._proc is not None and self._exited is not None
        code = await self._proc.wait()
        self._killpg(signal.SIGKILL)  # whatever the worker left behind (group, cgroup)
        if self.placement is not None:
            self._note_oom_kill(code)
            await asyncio.to_thread(self.confinement.release, self.placement)
        if self._stderr_task is not None:  # the last lines (a traceback) name the cause
            await asyncio.wait({self._stderr_task}, timeout=0.5)
        self._exited.set_result(code)
        error = WorkerCrashed(self.death_message(), returncode=code)
        for future in [self._ready, *self._pending.values()]:
            if future is not None and not future.done():
                future.set_exception(error)
        if self._ready is not None and self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: no "never retrieved" warning
        if self._writer is not None:
            self._writer.close()
        self.limiter.flush()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await protocol.read_message(
                    reader, self.spec.max_frame_bytes)) is not None:
                self._dispatch(message)
        except (ProtocolError, ValueError, TypeError, KeyError) as exc:  # a broken worker
            await self._cut_off(f"protocol error: {exc}")
        except (ConnectionError, OSError):
            pass
        if self.alive:  # EOF while running: give it a moment to exit, then make sure
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), 2.0)
            self.kill("closed its connection")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind in ("result", "error"):
            future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "req":
            if self._in_flight >= MAX_REQUESTS_IN_FLIGHT:
                self._spawn(self._cut_off(f"flooding: more than {MAX_REQUESTS_IN_FLIGHT} API "
                                          f"requests sent without reading the replies"))
                return
            self._in_flight += 1
            self._spawn(self._answer(message))
        elif kind == "log" and message.get("suppressed"):  # the worker's own summary
            self.limiter.count_suppressed(int(message["suppressed"]))
            self.logger.warning("python action %s: %s", self.spec.node_id,
                                message.get("message"))
        elif kind == "log":
            self.limiter.log(LEVELS.get(str(message.get("level")), logging.INFO),
                             str(message.get("stream", "log")), str(message.get("message")))
        elif kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message)
        elif kind == "fatal" and self._ready is not None and not self._ready.done():
            info = message.get("error") or {}
            self._ready.set_exception(ScriptLoadError(
                describe_error(self.spec.node_id, "cannot load the script", info), info=info))
        else:
            raise ProtocolError(f"unexpected {kind!r} frame")

    async def _cut_off(self, reason: str) -> None:
        """Kill a worker that broke the protocol or flooded the host, naming the script line
        it was at (its stack, dumped on SIGUSR1), and log it once."""
        if not self.alive or self.kill_reason:
            return
        self.kill_reason = reason
        info = await self._where_stuck(0.25)
        self._killpg(signal.SIGKILL)
        where = f" at {info['file']}:{info['line']}" if info.get("file") else ""
        info.update(type="WorkerKilled", message=f"worker {self.pid} killed: {reason}{where}")
        self.kill_info = info
        self.logger.error("python action %s: %s", self.spec.node_id,
                          printable(str(info["message"])))

    async def _answer(self, message: dict[str, Any]) -> None:
        """Answer one API request of the script through handle_request."""
        try:
            await self._answer_one(message)
        finally:
            self._in_flight -= 1

    async def _answer_one(self, message: dict[str, Any]) -> None:
        self.requests += 1
        req_id, method = message.get("id"), str(message.get("method"))
        try:
            if method not in protocol.API_METHODS:
                raise ValueError(f"unknown API method {method!r}")
            value = await self._handle(method, list(message.get("args") or []),
                                       dict(message.get("kwargs") or {}))
            frame = protocol.pack({"t": "resp", "id": req_id, "value": value},
                                  self.spec.max_frame_bytes)
        except Exception as exc:
            wire = next((c.__name__ for c in type(exc).__mro__
                         if c.__name__ in protocol.WIRE_ERRORS), None)
            if wire is None:  # the appliance's fault: logged, within the action's rate
                self.limiter.log(logging.ERROR, "host",
                                 f"handling {method} failed: {type(exc).__name__}: {exc}")
                wire, text = "RuntimeError", f"the appliance failed to handle {method}: {exc}"
            else:
                text = str(exc)
            frame = protocol.pack({"t": "resp", "id": req_id,
                                   "error": {"type": wire, "message": text[:4000]}},
                                  self.spec.max_frame_bytes)
        if self._writer is not None and self.alive:
            unsent = self._writer.transport.get_write_buffer_size()
            if unsent + len(frame) > MAX_UNSENT_BYTES:
                await self._cut_off(f"flooding: {unsent} bytes of replies left unread")
                return
            self._writer.write(frame)
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def _pump_stderr(self) -> None:
        """Forward what the interpreter writes on fd 2 (before the script's stderr is
        redirected, or at a crash) to the log; keep the last lines for crash reports."""
        assert self._proc is not None and self._proc.stderr is not None
        pending = b""
        while chunk := await self._proc.stderr.read(4096):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-4000:]
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._stderr_tail.append(line[:500])
                    if self._dump is not None:
                        self._dump.append(line)
                    self.limiter.log(logging.WARNING, "stderr-fd", line)
        if pending.strip():
            self._stderr_tail.append(pending.decode("utf-8", "replace")[:500])
