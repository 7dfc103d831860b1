"""WorkerSupervisor: restarts with backoff, the failed state, hot reload, statistics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

import pytest

from firmware.actions.python.host import PythonWorker
from firmware.actions.python.protocol import ScriptCallError, WorkerTimeout
from firmware.actions.python.supervisor import (
    ActionFailedError,
    ReloadError,
    WorkerSupervisor,
)
from tests.actions.python.conftest import make_spec


def spec_in(scripts_dir: Path, name: str):
    """The spec of class Versioned in ``scripts_dir / name`` (written by the test)."""
    return make_spec(name, "Versioned", scripts_dir=scripts_dir,
                     script_path=scripts_dir / name)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


class TimedWorker(PythonWorker):
    """A real worker that records when each start was attempted."""

    attempts: ClassVar[list[float]] = []

    async def start(self, timeout_s: float = 5.0) -> None:
        TimedWorker.attempts.append(time.monotonic())
        await super().start(timeout_s)


def test_repeated_failures_park_the_action_with_backoff(api, logger):
    TimedWorker.attempts = []
    spec = make_spec("hostile.py", "InitRaises")

    async def main():
        sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger, max_failures=4,
                               backoff_initial_s=0.1, worker_factory=TimedWorker)
        await sup.start()
        assert sup.state == "restarting"
        await wait_for(lambda: sup.state == "failed")
        await asyncio.sleep(0.5)  # parked: no further attempt
        with pytest.raises(ActionFailedError, match="is failed after 4 consecutive failures"):
            await sup.call("on_trigger", "x", {})
        status = sup.get_status()
        await sup.stop()
        return status

    status = run(main())
    assert (status["state"], status["consecutive_failures"], status["restarts"]) == (
        "failed", 4, 3)
    assert status["last_error"]["line"] == 48
    assert (status["calls"], status["failures"]) == (1, 1)
    gaps = [b - a for a, b in zip(TimedWorker.attempts, TimedWorker.attempts[1:], strict=False)]
    assert len(gaps) == 3
    for gap, backoff in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        # the backoff plus one failed start (generous: the machine may be loaded)
        assert backoff <= gap < backoff + 5.0, gaps


def test_backoff_is_capped(api, logger):
    sup = WorkerSupervisor(make_spec("hostile.py", "InitRaises"), handle_request=api.handle,
                           logger=logger, backoff_initial_s=0.5, backoff_max_s=2.0,
                           max_failures=100)

    async def main():
        delays = []
        for failures in range(1, 7):
            sup.consecutive_failures = failures - 1
            sup._failed({"type": "X", "message": "m", "file": None, "line": None})
            delays.append(round(sup.get_status()["next_restart_in_s"], 1))
            sup._restart_task.cancel()
        return delays

    assert run(main()) == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_successful_call_resets_the_failure_count(api, logger):
    spec = make_spec("hostile.py", "Flaky", timeout_ms=300)

    async def main():
        sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger,
                               backoff_initial_s=0.05, max_failures=3)
        await sup.start()
        for expected in (1, 2):
            with pytest.raises(WorkerTimeout):
                await sup.call("on_trigger", "x", {"hang": True})
            assert sup.consecutive_failures == expected
            await wait_for(lambda: sup.state == "running")
        assert await sup.call("on_trigger", "x", {}) is True
        status = sup.get_status()
        await sup.stop()
        return status

    status = run(main())
    assert status["consecutive_failures"] == 0 and status["state"] == "running"
    assert status["kills"]["timeout"] == 2 and status["timeouts"] == 2
    assert (status["calls"], status["successes"], status["failures"]) == (3, 1, 2)


def test_script_exceptions_do_not_park_the_action(api, logger):
    async def main():
        sup = WorkerSupervisor(make_spec("hostile.py", "Raises"), handle_request=api.handle,
                               logger=logger, max_failures=2)
        await sup.start()
        pid = sup.worker.pid
        for _ in range(5):
            with pytest.raises(ScriptCallError, match="KeyError"):
                await sup.call("on_trigger", "x", {})
        status = sup.get_status()
        await sup.stop()
        return pid, status

    pid, status = run(main())
    assert (status["state"], status["pid"], status["failures"]) == ("running", pid, 5)
    assert status["consecutive_failures"] == 0 and status["restarts"] == 0
    assert status["last_error"] == {"type": "KeyError", "message": "'missing'",
                                    "file": status["script"], "line": 74}


VERSION = """\
class Versioned(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {{"version": {version}}}
"""


def test_hot_reload_swaps_only_a_working_script(tmp_path: Path, api, logger):
    (tmp_path / "v1.py").write_text(VERSION.format(version=1))
    (tmp_path / "v2.py").write_text(VERSION.format(version=2))
    (tmp_path / "v3.py").write_text(VERSION.format(version="3,"))  # a tuple: still valid
    (tmp_path / "broken.py").write_text(VERSION.format(version=4) + "    def oops(:\n")
    (tmp_path / "bad_status.py").write_text(VERSION.format(version="{1, 2}"))

    async def main():
        sup = WorkerSupervisor(spec_in(tmp_path, "v1.py"), handle_request=api.handle, logger=logger)
        await sup.start()
        old = sup.worker
        await sup.replace(spec_in(tmp_path, "v2.py"))
        assert await sup.call("get_status") == {"version": 2}
        assert not old.alive and old.returncode == 0
        new_pid = sup.worker.pid
        errors = []
        for name in ("broken.py", "bad_status.py"):
            with pytest.raises(ReloadError) as err:
                await sup.replace(spec_in(tmp_path, name))
            errors.append(err.value)
            assert sup.worker.pid == new_pid  # the working version keeps running
            assert await sup.call("get_status") == {"version": 2}
        status = sup.get_status()
        await sup.stop()
        return errors, status

    (broken, bad_status), status = run(main())
    assert (broken.info["type"], broken.file, broken.line) == (
        "SyntaxError", str(tmp_path / "broken.py"), 7)
    assert "the previous version keeps running" in str(broken)
    assert bad_status.info["type"] == "TypeError"
    assert "get_status() return value['version'] is a set" in bad_status.info["message"]
    assert (status["reloads"], status["reload_failures"], status["state"]) == (1, 2, "running")
    assert status["last_error"]["type"] == "TypeError"
    assert status["script"] == str(tmp_path / "v2.py")


def test_a_call_queued_behind_a_reload_runs_on_the_new_worker(tmp_path: Path, api, logger):
    """A call that waits for the old worker while a reload replaces it has not started: it
    runs on the new worker instead of failing with "exited with code 0"."""
    (tmp_path / "v1.py").write_text(VERSION.format(version=1))
    (tmp_path / "v2.py").write_text(VERSION.format(version=2))

    async def main():
        sup = WorkerSupervisor(spec_in(tmp_path, "v1.py"), handle_request=api.handle, logger=logger)
        await sup.start()
        old = sup.worker
        await old._lock.acquire()  # the old worker is busy with another call
        queued = asyncio.create_task(sup.call("get_status"))
        await asyncio.sleep(0.05)
        # the reload stops the old worker
        reload = asyncio.create_task(sup.replace(spec_in(tmp_path, "v2.py")))
        await wait_for(lambda: old.retired)
        assert old.alive  # the stop waits for the call in flight
        old._lock.release()
        await reload
        assert not old.alive
        value = await queued
        status = sup.get_status()
        await sup.stop()
        return value, status

    value, status = run(main())
    assert value == {"version": 2}
    assert status["state"] == "running" and status["reloads"] == 1


def test_reload_leaves_the_failed_state(tmp_path: Path, api, logger):
    async def main():
        sup = WorkerSupervisor(make_spec("hostile.py", "InitRaises"), logger=logger,
                               handle_request=api.handle, max_failures=1)
        await sup.start()
        assert sup.state == "failed"
        await sup.replace(make_spec("echo_action.py", "EchoAction"))
        state = sup.state
        assert await sup.call("on_trigger", "concentration", {"value": 2000}) is True
        await sup.stop()
        return state, sup.get_status()

    state, status = run(main())
    assert state == "running"
    assert status["consecutive_failures"] == 0 and status["last_error"] is None


def test_a_script_not_pushed_yet_waits_instead_of_failing(tmp_path: Path, api, logger):
    """The config names a script that is not there yet (pushed after the deployment): the
    action waits, counts no failure and never parks in 'failed'; the script's arrival (the
    watcher's hot reload) starts it. A script that then arrives broken is an ordinary
    failure, retried with backoff."""
    (tmp_path / "v1.py").write_text(VERSION.format(version=1))

    async def main():
        sup = WorkerSupervisor(spec_in(tmp_path, "later.py"), handle_request=api.handle,
                               logger=logger, max_failures=2, backoff_initial_s=0.05)
        await sup.start()
        waiting = sup.get_status()
        with pytest.raises(ActionFailedError, match="is waiting for its script: script "):
            await sup.call("on_trigger", "x", {})
        await asyncio.sleep(0.3)  # no retries while waiting
        assert sup.state == "waiting" and sup.restarts == 0
        (tmp_path / "later.py").write_text(VERSION.format(version=2))
        await sup.replace(spec_in(tmp_path, "later.py"))
        running = (sup.state, await sup.call("get_status"))
        await sup.stop()

        late = WorkerSupervisor(spec_in(tmp_path, "late.py"), handle_request=api.handle,
                                logger=logger, max_failures=2, backoff_initial_s=0.05)
        await late.start()
        (tmp_path / "late.py").write_text("class Versioned(:\n")
        with pytest.raises(ReloadError):
            await late.replace(spec_in(tmp_path, "late.py"))
        await wait_for(lambda: late.state == "failed")
        broken = late.get_status()
        await late.stop()
        return waiting, running, broken

    waiting, running, broken = run(main())
    assert waiting["state"] == "waiting" and waiting["consecutive_failures"] == 0
    assert waiting["last_error"]["type"] == "ScriptMissing"
    assert "push it with `pafw script push`" in waiting["last_error"]["message"]
    assert running == ("running", {"version": 2})
    assert broken["last_error"]["type"] == "SyntaxError" and broken["restarts"] >= 1


def test_statistics(api, logger):
    async def main():
        sup = WorkerSupervisor(make_spec("echo_action.py", "EchoAction"),
                               handle_request=api.handle, logger=logger)
        await sup.start()
        for i in range(50):
            await sup.call("on_trigger", "concentration", {"value": i * 50})
        status = sup.get_status()
        worker = sup.worker
        await sup.stop()
        return status, worker

    status, worker = run(main())
    assert (status["calls"], status["successes"], status["failures"]) == (50, 50, 0)
    timing = status["exec_ms"]
    assert timing["count"] == 50
    assert 0 < timing["p50"] <= timing["p95"] <= timing["p99"]  # figures: the bench
    assert status["pid"] == worker.pid and status["rss_bytes"] > status["uss_bytes"] > 0
    assert status["worker"]["requests"] >= 50 * 6
    assert not worker.alive
    print(f"\non_trigger round trip with 6 API requests: p50 {timing['p50']} ms, "
          f"p95 {timing['p95']} ms, p99 {timing['p99']} ms")

