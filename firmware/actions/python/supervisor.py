"""WorkerSupervisor: keeps one PythonAction's worker alive, within limits, and measured.

* Restarts a worker that died (crash, kill after a timeout or over the memory limit, start
  failure) after ``backoff_initial_s``, doubling per consecutive failure up to
  ``backoff_max_s``. After ``max_failures`` consecutive failures the action is parked in
  state "failed" (visible in the status, no restart loop); a successful call resets the
  count; a hot reload or :meth:`restart` leaves the failed state.
* A worker that dies ``max_failures`` times within ``failure_window_s`` is parked too, even
  when calls succeed in between (a script that crashes its worker on every trigger but
  answers its updates would otherwise restart forever).
* A script that raises is a failed *call*, not a failed worker: it is counted in
  ``failures`` but does not count towards the failed state (the worker is healthy).
* A watchdog (every ``watchdog_interval_s``) kills a worker above ``max_memory_mb`` of
  RSS, whose cgroup hit its memory limit, or whose scratch directory outgrew its cap
  (``PythonWorker.check_limits``), and names the cause.
* :meth:`replace` is the hot reload: the new worker must start and answer ``get_status``
  before it takes over; otherwise the old one keeps running and the error (with file:line)
  is raised and kept as ``last_error``.
* Calls made while no worker runs (waiting, restarting, failed) fail at once with
  :class:`ActionFailedError`: events never pile up behind a broken script.
* A script that does not exist yet is not a failure: the action waits in state "waiting"
  (no worker, nothing counted) until the file appears, which the scripts watcher turns into
  a hot reload. Deploying the configuration first and pushing the scripts after it is the
  normal order (`pafw script push`), and a fleet update's health gate must not take an
  action still waiting for its script for a broken release.

States: stopped, waiting, starting, running, reloading, restarting, failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from firmware.actions.python.host import PythonWorker, RequestHandler
from firmware.actions.python.protocol import (
    ProtocolError,
    ReloadError,
    ScriptCallError,
    WorkerCrashed,
    WorkerError,
    WorkerRetired,
    WorkerTimeout,
)
from firmware.actions.python.spec import WorkerSpec
from firmware.actions.timer_grid import seconds_to_next
from firmware.stats import latency_summary

__all__ = ["ActionFailedError", "ReloadError", "WorkerSupervisor"]

MIB = 1 << 20


class ActionFailedError(WorkerError):
    """Raised by :meth:`WorkerSupervisor.call` while no worker runs (failed or restarting)."""


class WorkerSupervisor:
    """Owns the worker of one action: start, restart with backoff, failed state, memory
    watchdog, hot reload, statistics. Runs on the control loop.

    Example::

        sup = WorkerSupervisor(spec, handle_request=api.handle, logger=log)
        await sup.start()
        ok = await sup.call("on_trigger", "concentration", data)
        await sup.replace(new_spec)      # hot reload
        await sup.stop()
    """

    def __init__(self, spec: WorkerSpec, *, handle_request: RequestHandler,
                 logger: logging.Logger, max_failures: int = 5, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0, watchdog_interval_s: float = 0.5,
                 start_timeout_s: float = 5.0, stop_timeout_s: float = 5.0,
                 ring_size: int = 256, failure_window_s: float = 60.0,
                 worker_factory: Callable[..., PythonWorker] = PythonWorker) -> None:
        self.spec = spec
        self._handle = handle_request
        self.logger = logger
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self._deaths: deque[float] = deque(maxlen=max(1, max_failures))
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.watchdog_interval_s = watchdog_interval_s
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self._factory = worker_factory
        self.state = "stopped"
        self._worker: PythonWorker | None = None
        self._life = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restart_task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._next_restart_at: float | None = None
        self._stopping = False
        self._durations: deque[float] = deque(maxlen=ring_size)
        self.calls = self.successes = self.failures = self.timeouts = 0
        self.kills = {"timeout": 0, "memory": 0, "storage": 0, "crash": 0}
        self.restarts = self.reloads = self.reload_failures = 0
        self.consecutive_failures = 0
        self._last_error: dict[str, Any] | None = None
        #: epoch seconds of the last error (None before any)
        self.last_error_at: float | None = None

    @property
    def last_error(self) -> dict[str, Any] | None:
        """The newest failure as type, message, file and line (None once a reload or
        restart succeeded)."""
        return self._last_error

    @last_error.setter
    def last_error(self, value: dict[str, Any] | None) -> None:
        self._last_error = value
        if value is not None:
            self.last_error_at = time.time()

    @property
    def worker(self) -> PythonWorker | None:
        """The current worker, if one runs."""
        return self._worker

    # ------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the first worker. A failure is not raised: it is kept in ``last_error``,
        logged, and retried with backoff like any other failure."""
        self._stopping = False
        if self._watchdog_task is None:
            self._watchdog_task = asyncio.create_task(self._watchdog())
        await self._spawn()

    async def stop(self) -> None:
        """Stop the worker (on_stop, then close/terminate) and every task. Idempotent."""
        self._stopping = True
        for task in (self._restart_task, self._watchdog_task):
            if task is not None:
                task.cancel()
        self._restart_task = self._watchdog_task = None
        self.state = "stopped"
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(self.stop_timeout_s)

    async def restart(self) -> None:
        """Leave the failed state: stop the current worker if any, reset the failure count
        and start a new one now."""
        if self._restart_task is not None:
            self._restart_task.cancel()
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(self.stop_timeout_s)
        self.consecutive_failures = 0
        self._deaths.clear()
        await self.start()

    async def replace(self, new_spec: WorkerSpec) -> None:
        """Hot reload: start a worker for ``new_spec``, smoke-test get_status, swap, stop the
        old one. On failure the old worker keeps running and ReloadError is raised."""
        async with self._life:
            previous = self.state
            self.state = "reloading"
            new = self._factory(new_spec, handle_request=self._handle, logger=self.logger)
            try:
                await new.start(self.start_timeout_s)
                await new.call("get_status")
            except WorkerError as exc:
                await new.stop(1.0)
                self.reload_failures += 1
                self.last_error = _summary(exc.info)
                self.state = previous
                if previous == "waiting":  # the script arrived but does not start: from now
                    self.spec = new_spec   # on an ordinary failure, retried with backoff
                    self._failed(self.last_error)
                self.logger.error("python action %s: reload failed, previous version kept: %s",
                                  new_spec.node_id, exc)
                # the error names the file with its full path already
                raise ReloadError(f"reload of {new_spec.script_path.name} failed; the "
                                  f"previous version keeps running: {exc}",
                                  info=exc.info) from exc
            if self._restart_task is not None:
                self._restart_task.cancel()
            old, self.spec = self._worker, new_spec
            self._install(new)
            self.reloads += 1
            self.consecutive_failures = 0
            self._deaths.clear()
            self.last_error = None
        self.logger.info("python action %s: reloaded %s (worker %s)", new_spec.node_id,
                         new_spec.script_path, new.pid)
        if old is not None:
            await old.stop(self.stop_timeout_s)

    # ----------------------------------------------------------------------- calls
    async def call(self, method: str, *args: Any) -> Any:
        """Run a method of the script; returns its value or raises (ScriptCallError,
        WorkerTimeout, WorkerCrashed, ActionFailedError, ProtocolError)."""
        self.calls += 1
        worker = self._worker
        if worker is None or not worker.alive:
            self.failures += 1
            raise ActionFailedError(self._unavailable())
        start = time.perf_counter()
        try:
            try:
                value = await worker.call(method, *args)
            except WorkerRetired:
                # queued behind a hot reload: the call never ran; run it on the new worker
                current = self._worker
                if current is None or current is worker or not current.alive:
                    raise
                worker = current
                value = await worker.call(method, *args)
        except (WorkerError, ProtocolError) as exc:
            self.failures += 1
            if isinstance(exc, WorkerTimeout):
                self.timeouts += 1
            if isinstance(exc, (WorkerTimeout, ScriptCallError)):
                self.last_error = _summary(exc.info)
            if isinstance(exc, (WorkerTimeout, WorkerCrashed)):
                await worker.wait()  # killed or dead: account for it before returning
                self._handle_death(worker)
            raise
        finally:
            self._durations.append(time.perf_counter() - start)
        self.successes += 1
        self.consecutive_failures = 0
        return value

    # ------------------------------------------------------------------- internals
    async def _spawn(self) -> None:
        async with self._life:
            if self._stopping or (self._worker is not None and self._worker.alive):
                return
            if not self.spec.script_path.is_file():
                self._wait_for_script()
                return
            self.state = "starting"
            worker = self._factory(self.spec, handle_request=self._handle, logger=self.logger)
            try:
                await worker.start(self.start_timeout_s)
            except WorkerError as exc:
                self.logger.error("%s", exc)
                self._failed(_summary(exc.info))
                return
            if self._stopping:  # stop() came while this worker was starting
                await worker.stop(self.stop_timeout_s)
                return
            self._install(worker)

    def _wait_for_script(self) -> None:
        """No script file yet: wait for it (the watcher's hot reload starts the worker)."""
        path = self.spec.script_path
        message = (f"script {str(path)!r} does not exist yet: push it with `pafw script push` "
                   f"(the action starts when it arrives)")
        if self.state != "waiting":
            self.logger.warning("python action %s: %s", self.spec.node_id, message)
        self.state = "waiting"
        self._next_restart_at = None
        self.last_error = {"type": "ScriptMissing", "message": message, "file": str(path),
                           "line": None}

    def _install(self, worker: PythonWorker) -> None:
        self._worker = worker
        self.state = "running"
        self._next_restart_at = None
        task = asyncio.create_task(self._monitor(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _monitor(self, worker: PythonWorker) -> None:
        await worker.wait()
        self._handle_death(worker)

    def _handle_death(self, worker: PythonWorker) -> None:
        """Turn the death of the current worker into a counted failure and a restart (once:
        both the monitor task and a failing call may get here)."""
        if worker is not self._worker or self._stopping:
            return
        self._worker = None
        reason = worker.kill_reason
        kind = reason if reason in ("timeout", "memory", "storage") else "crash"
        self.kills[kind] += 1
        if worker.kill_info is not None:  # cut off for a protocol violation or a flood
            self.last_error = _summary(worker.kill_info)
        elif kind == "crash":
            message = worker.death_message()
            self.logger.error("%s", message)
            self.last_error = {"type": "WorkerCrashed", "message": message, "file": None,
                               "line": None}
        now = time.monotonic()
        self._deaths.append(now)
        recent = sum(1 for t in self._deaths if now - t <= self.failure_window_s)
        if recent >= self.max_failures:
            self.consecutive_failures = max(self.consecutive_failures, self.max_failures - 1)
        self._failed(self.last_error)

    def _failed(self, error: dict[str, Any] | None) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        if self.consecutive_failures >= self.max_failures:
            self.state = "failed"
            self.logger.error("python action %s: %d consecutive failures, action parked in "
                              "state 'failed' until reload or restart; last error: %s",
                              self.spec.node_id, self.consecutive_failures,
                              (error or {}).get("message"))
            return
        delay = min(self.backoff_max_s,
                    self.backoff_initial_s * 2 ** (self.consecutive_failures - 1))
        self.state = "restarting"
        self._next_restart_at = time.monotonic() + delay
        self._restart_task = asyncio.create_task(self._restart_after(delay))

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.restarts += 1
        await self._spawn()

    async def _watchdog(self) -> None:
        while True:  # on the timer grid: one wake-up of the loop for every action's watchdog
            await asyncio.sleep(seconds_to_next(self.watchdog_interval_s))
            worker = self._worker
            if worker is None:
                continue
            reason = worker.check_limits()
            if reason is not None:
                message = f"python action {self.spec.node_id}: {reason}"
                self.logger.error("%s", message)
                kind = ("MemoryLimitExceeded" if worker.kill_reason == "memory"
                        else "StorageLimitExceeded")
                self.last_error = {"type": kind, "message": message,
                                   "file": None, "line": None}
                continue
            rss = worker.rss_bytes()
            limit = self.spec.max_memory_mb * MIB
            if rss is not None and rss > limit and not worker.kill_reason:
                message = (f"python action {self.spec.node_id}: worker {worker.pid} uses "
                           f"{rss / MIB:.1f} MiB, over max_memory_mb {self.spec.max_memory_mb}; "
                           f"killed")
                self.logger.error("%s", message)
                self.last_error = {"type": "MemoryLimitExceeded", "message": message,
                                   "file": None, "line": None}
                worker.kill("memory")

    def _unavailable(self) -> str:
        error = (self.last_error or {}).get("message", "none")
        if self.state == "failed":
            return (f"python action {self.spec.node_id} is failed after "
                    f"{self.consecutive_failures} consecutive failures (fix the script and "
                    f"reload, or restart); last error: {error}")
        if self.state == "waiting":
            return f"python action {self.spec.node_id} is waiting for its script: {error}"
        return f"python action {self.spec.node_id} has no running worker ({self.state}); " \
               f"last error: {error}"

    def get_status(self) -> dict[str, Any]:
        """JSON-safe statistics of this action's worker(s); see docs/status.md."""
        worker = self._worker
        durations = list(self._durations)
        next_in = None if self._next_restart_at is None else round(
            max(0.0, self._next_restart_at - time.monotonic()), 3)
        return {
            "state": self.state, "script": str(self.spec.script_path),
            "class_name": self.spec.class_name,
            "pid": worker.pid if worker else None,
            "rss_bytes": worker.rss_bytes() if worker else None,
            "uss_bytes": worker.uss_bytes() if worker else None,
            "calls": self.calls, "successes": self.successes, "failures": self.failures,
            "timeouts": self.timeouts, "kills": dict(self.kills), "restarts": self.restarts,
            "reloads": self.reloads, "reload_failures": self.reload_failures,
            "consecutive_failures": self.consecutive_failures,
            "next_restart_in_s": next_in,
            "exec_ms": latency_summary(durations),
            "last_error": self.last_error,
            "worker": worker.get_status() if worker else None,
        }


def _summary(info: dict[str, Any]) -> dict[str, Any]:
    """last_error form of a wire error: type, message, file, line (no traceback)."""
    return {key: info.get(key) for key in ("type", "message", "file", "line")}
