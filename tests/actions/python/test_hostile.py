"""Hostile scripts: each one is contained and reported, while the host's event loop keeps
ticking and another worker keeps answering."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from firmware.actions.python.host import PythonWorker
from firmware.actions.python.protocol import (
    ScriptCallError,
    WorkerCrashed,
    WorkerTimeout,
)
from firmware.actions.python.supervisor import WorkerSupervisor
from tests.actions.python.conftest import IS_ROOT, SCRIPTS, Ticker, make_spec

HOSTILE = str(SCRIPTS / "hostile.py")
MAX_LOOP_GAP_S = 1.0  # a blocked loop stalls for the whole call (seconds)


@contextlib.asynccontextmanager
async def arena(api, logger):
    """A ticker and a healthy worker answering get_status every 50 ms meanwhile."""
    healthy = PythonWorker(make_spec("echo_action.py", "EchoAction", node_id="healthy"),
                           handle_request=api.handle, logger=logger)
    await healthy.start()
    answers = 0

    async def keep_asking():
        nonlocal answers
        while True:
            await healthy.call("get_status")
            answers += 1
            await asyncio.sleep(0.05)

    async with Ticker() as ticker:
        asker = asyncio.create_task(keep_asking())
        started_at = time.monotonic()
        yield
        elapsed = time.monotonic() - started_at
        asker.cancel()
    await healthy.stop()
    assert ticker.max_gap_s < MAX_LOOP_GAP_S, f"event loop stalled {ticker.max_gap_s:.3f} s"
    assert answers >= min(3, int(elapsed / 0.1)), f"healthy worker answered {answers} times"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def wait_for_state(sup: WorkerSupervisor, state: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while sup.state != state:
        assert time.monotonic() < deadline, f"state {sup.state}, expected {state}"
        await asyncio.sleep(0.02)


def test_infinite_loop_is_killed_at_the_deadline_and_restarted(api, logger):
    spec = make_spec("hostile.py", "InfiniteLoop", timeout_ms=400)

    async def main():
        async with arena(api, logger):
            sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger,
                                   backoff_initial_s=0.1)
            await sup.start()
            first_pid = sup.worker.pid
            t0 = time.monotonic()
            with pytest.raises(WorkerTimeout) as err:
                await sup.call("on_trigger", "x", {})
            assert 0.4 <= time.monotonic() - t0 < 4.0  # the deadline, not much later
            await wait_for_state(sup, "running")
            assert sup.worker.pid != first_pid
            assert await sup.call("get_status") == {"status": "active"}
            status = sup.get_status()
            await sup.stop()
        return err.value, status

    error, status = run(main())
    assert (error.file, error.line) in ((HOSTILE, 10), (HOSTILE, 11))  # inside the loop
    assert "on_trigger did not return within 400 ms" in str(error)
    assert status["kills"] == {"timeout": 1, "memory": 0, "storage": 0, "crash": 0}
    assert (status["timeouts"], status["restarts"], status["state"]) == (1, 1, "running")


def test_sleep_forever_is_killed(api, logger):
    async def main():
        async with arena(api, logger):
            worker = PythonWorker(make_spec("hostile.py", "SleepForever", timeout_ms=300),
                                  handle_request=api.handle, logger=logger)
            await worker.start()
            with pytest.raises(WorkerTimeout) as err:
                await worker.call("on_trigger", "x", {})
            assert await worker.wait() == -9
            with pytest.raises(WorkerCrashed, match=r"killed by SIGKILL \(signal 9\) "
                                                    r"\(timeout\)"):
                await worker.call("on_trigger", "x", {})
        return err.value

    error = run(main())
    assert (error.file, error.line) == (HOSTILE, 16)


def test_memory_hog_is_killed_by_the_rss_watchdog(api, logger):
    spec = make_spec("hostile.py", "MemoryHog", max_memory_mb=64, timeout_ms=10_000)

    async def main():
        async with arena(api, logger):
            sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger,
                                   backoff_initial_s=0.1)
            await sup.start()
            t0 = time.monotonic()
            with pytest.raises(WorkerCrashed, match=r"killed by SIGKILL .*\(memory\)"):
                await sup.call("on_trigger", "x", {"mb": 150})
            assert time.monotonic() - t0 < 10.0
            await wait_for_state(sup, "running")
            status = sup.get_status()
            await sup.stop()
        return status

    status = run(main())
    assert status["kills"]["memory"] == 1
    assert status["last_error"]["type"] == "MemoryLimitExceeded"
    assert "over max_memory_mb 64; killed" in status["last_error"]["message"]


def test_memory_bomb_hits_rlimit_as(api, logger):
    async def main():
        worker = PythonWorker(make_spec("hostile.py", "MemoryBomb"),
                              handle_request=api.handle, logger=logger)
        await worker.start()
        with pytest.raises(ScriptCallError) as err:
            await worker.call("on_trigger", "x", {})
        assert worker.alive and await worker.call("on_update", {}) is None
        report = worker.ready_info["sandbox"]["rlimits"]
        await worker.stop()
        return err.value, report

    error, rlimits = run(main())
    assert (error.info["type"], error.line) == ("MemoryError", 33)
    assert rlimits["as_mb"] == 64 + 256


@pytest.mark.parametrize(("script", "cls", "unsafe", "returncode", "text"), [
    ("unsafe_ctypes.py", "Segfault", ["ctypes"], -11, r"killed by SIGSEGV \(signal 11\)"),
    ("unsafe_os.py", "ExitThree", ["os"], 3, "exited with code 3"),
])
def test_crashes_are_reported_and_restarted(api, logger, script, cls, unsafe, returncode, text):
    spec = make_spec(script, cls, unsafe_allow_refused_imports=unsafe)

    async def main():
        async with arena(api, logger):
            sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger,
                                   backoff_initial_s=0.1)
            await sup.start()
            with pytest.raises(WorkerCrashed, match=text) as err:
                await sup.call("on_trigger", "x", {})
            await wait_for_state(sup, "running")
            status = sup.get_status()
            await sup.stop()
        return err.value, status

    error, status = run(main())
    assert error.returncode == returncode
    assert status["kills"] == {"timeout": 0, "memory": 0, "storage": 0, "crash": 1}
    assert status["last_error"]["type"] == "WorkerCrashed"


def test_fork_bomb_is_refused_by_the_audit_hook(api, logger):
    spec = make_spec("unsafe_os.py", "ForkBomb", unsafe_allow_refused_imports=["os"])

    async def main():
        async with arena(api, logger):
            worker = PythonWorker(spec, handle_request=api.handle, logger=logger)
            await worker.start()
            with pytest.raises(ScriptCallError) as err:
                await worker.call("on_trigger", "x", {})
            status = await worker.call("get_status")
            await worker.stop()
        return err.value, status

    error, status = run(main())
    assert error.info["type"] == "PermissionError"
    assert error.info["message"] == ("process creation and signals are not allowed in actions "
                                     "(os.fork)")
    assert status["made"] == 0


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def test_fork_bomb_is_refused_by_the_kernel_with_the_audit_hook_unlocked(api, logger):
    """With ``subprocess`` unlocked the audit hook lets fork through: seccomp refuses it."""
    spec = make_spec("unsafe_os.py", "ForkBomb", timeout_ms=10_000,
                     unsafe_allow_refused_imports=["os", "subprocess"])

    async def main():
        async with arena(api, logger):
            worker = PythonWorker(spec, handle_request=api.handle, logger=logger)
            await worker.start()
            with pytest.raises(ScriptCallError) as err:
                await worker.call("on_trigger", "x", {})
            status = await worker.call("get_status")
            during = len(_group_members(worker.pid))
            await worker.stop()
        return err.value, status, during

    error, status, during = run(main())
    assert error.info["type"] == "PermissionError"
    assert error.info["message"] == "[Errno 1] Operation not permitted"  # the kernel's EPERM
    assert status["made"] == 0 and during == 1


def test_socket_without_grant_is_refused(api, logger):
    async def serve(reader, writer):
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results = []
        for network in (False, True):
            worker = PythonWorker(make_spec("network_action.py", "Connect", network=network,
                                            allowed_imports=["socket"]),
                                  handle_request=api.handle, logger=logger)
            await worker.start()
            try:
                results.append(await worker.call("on_trigger", "x", {"port": port}))
            except ScriptCallError as exc:
                results.append(exc)
            results.append(worker.ready_info["network"])
            await worker.stop()
        server.close()
        return results

    refused, mechanism, granted, granted_mechanism = run(main())
    assert isinstance(refused, ScriptCallError)
    assert refused.info["type"] == "PermissionError"
    assert refused.info["message"] == ("network access is not granted to this action: add "
                                       "capabilities.network: true (socket.getaddrinfo)")
    assert refused.line == 9
    assert mechanism == "none"
    assert (granted, granted_mechanism) == (True, "any")


def test_log_flood_is_rate_limited(api, logger, caplog):
    spec = make_spec("hostile.py", "LogFlood", log_lines_per_s=20)

    async def main():
        async with arena(api, logger):
            worker = PythonWorker(spec, handle_request=api.handle, logger=logger)
            await worker.start()
            assert await worker.call("on_trigger", "x", {"lines": 20_000}) is True
            status = worker.get_status()
            await worker.stop()
        return status

    status = run(main())
    lines = [r for r in caplog.records if "[stdout]: flood line" in r.getMessage()]
    summaries = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    assert 0 < len(lines) <= 20
    assert status["log_suppressed"] == 20_000 - len(lines)
    assert summaries == [f"python action py_test: suppressed {20_000 - len(lines)} lines "
                         f"(over 20 lines/s)"]


def test_a_forged_oversized_frame_cuts_the_worker_off(api, logger):
    spec = make_spec("unsafe_os.py", "ForgeFrame", allowed_imports=["struct"],
                     unsafe_allow_refused_imports=["os"])

    async def main():
        async with arena(api, logger):
            worker = PythonWorker(spec, handle_request=api.handle, logger=logger)
            await worker.start()
            with pytest.raises(WorkerCrashed) as err:
                await worker.call("on_trigger", "x", {})
        return err.value

    error = run(main())
    assert error.returncode == -9
    assert ("(protocol error: incoming frame of 50,000,000 bytes exceeds the 1,048,576-byte "
            "frame cap (max_frame_bytes))") in str(error)


def test_load_failures_surface_with_file_and_line_through_the_supervisor(api, logger):
    async def main():
        errors = []
        for spec in (make_spec("forbidden_import.py", "Forbidden"),
                     make_spec("hostile.py", "InitRaises")):
            sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger,
                                   backoff_initial_s=10)
            await sup.start()
            errors.append((sup.state, sup.get_status()["last_error"]))
            await sup.stop()
        return errors

    (state1, forbidden), (state2, init) = run(main())
    assert state1 == state2 == "restarting"
    assert (forbidden["type"], forbidden["file"], forbidden["line"]) == (
        "ImportError", str(SCRIPTS / "forbidden_import.py"), 5)
    assert (init["type"], init["file"], init["line"]) == ("ValueError", HOSTILE, 48)


def test_no_worker_outlives_its_host_objects():
    """Every worker this test process started is gone (process groups killed on stop/exit),
    allowing the kernel a moment to finish processes killed just before. Workers of other
    processes (a concurrent test run, a live appliance) are not this test's business."""
    deadline = time.monotonic() + 30.0
    while True:
        leftovers = []
        for pid in (p for p in os.listdir("/proc") if p.isdigit() and _is_worker(p)):
            with contextlib.suppress(OSError):
                leftovers.append(Path(f"/proc/{pid}/stat").read_text())
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leftovers == []


def _is_worker(pid: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    state, parent = fields[0], int(fields[1])
    return (b"firmware.actions.python.worker" in cmdline and state != "Z"
            and parent == os.getpid())


FALLBACK_PROBE = """
import json, os, pwd, socket, sys
import ctypes, encodings.idna, resource
from firmware.actions.python import sandbox
nobody = pwd.getpwnam("nobody")
os.setgroups([]); os.setgid(nobody.pw_gid); os.setuid(nobody.pw_uid)
spec = {"max_memory_mb": 64, "network": False, "script_path": sys.argv[1],
        "scratch_dir": None, "worker_uid": 1900000000}
report, guard = sandbox.apply_sandbox(spec, parent_pid=os.getppid())
results = {}
for name, attempt in (("connect", lambda: socket.socket()),
                      ("fork", os.fork),
                      ("kill_parent", lambda: os.kill(os.getppid(), 0)),
                      ("read_passwd", lambda: open("/etc/passwd").read())):
    try:
        attempt()
        results[name] = "allowed"
    except PermissionError as exc:
        results[name] = str(exc)
print(json.dumps({"report": report, "results": results}))
"""


@pytest.mark.skipif(not IS_ROOT, reason="as a non-root user the other tests run this path")
def test_a_non_root_appliance_still_gets_the_kernel_layers():
    """What a non-root appliance without CAP_SETUID gets (a developer, or the unit without
    worker capabilities): the workers keep its uid, but seccomp and Landlock apply all the
    same; the report says the uid could not change."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-I", "-c", FALLBACK_PROBE, HOSTILE],
                         capture_output=True, text=True, timeout=30, check=True)
    probe = json.loads(out.stdout)
    report = probe["report"]
    assert report["network"] == "none"
    assert report["rlimits"]["nproc"] is None
    assert report["uid"] == 65534 and report["no_new_privs"] is True
    assert report["seccomp"]["mode"] == "allow-list" and report["landlock"]["abi"] >= 1
    assert any("share the appliance's uid" in w for w in report["warnings"])
    assert probe["results"] == {
        "connect": "[Errno 1] Operation not permitted",
        "fork": "[Errno 1] Operation not permitted",
        "kill_parent": "[Errno 1] Operation not permitted",
        "read_passwd": "[Errno 13] Permission denied: '/etc/passwd'"}
