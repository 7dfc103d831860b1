"""The escapes a hostile customer found, each replayed against the kernel-enforced sandbox
(seccomp, Landlock, cgroup, a uid per action): every attempt fails with the kernel's error,
is reported, and a neighbouring worker and the host's event loop carry on.

The scripts (scripts/escape.py) reach ``os``, ``ctypes``, ``gc`` and ``socket`` through the
real builtins, the way the reported escape did, so the Python import guard and the audit hook
are out of the picture: only the kernel decides.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import platform
import resource
import socket
import time
from pathlib import Path

import pytest

from firmware.actions.python import landlock
from firmware.actions.python.confinement import Confinement
from firmware.actions.python.host import PythonWorker
from firmware.actions.python.protocol import WorkerCrashed
from firmware.actions.python.supervisor import WorkerSupervisor
from tests.actions.python.conftest import IS_ROOT, SCRIPTS, Ticker, make_spec
from tests.actions.python.test_hostile import wait_for_state

ESCAPE = str(SCRIPTS / "escape.py")
HAS_LANDLOCK = landlock.abi_version() >= 1
HAS_LANDLOCK_NET = landlock.abi_version() >= 4
pytestmark = pytest.mark.skipif(not HAS_LANDLOCK, reason="the kernel has no Landlock")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def syscall_numbers(*names: str) -> dict[str, int]:
    """System call numbers of this architecture, resolved by libseccomp."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    return {name: lib.seccomp_syscall_resolve_name(name.encode()) for name in names}


async def attack(cls: str, data: dict, logger, api, **spec_changes) -> tuple[dict, dict]:
    """Start ``cls`` of escape.py, run its attack, return (its report, worker status)."""
    worker = PythonWorker(make_spec("escape.py", cls, node_id=f"hostile_{cls.lower()}",
                                    **spec_changes),
                          handle_request=api.handle, logger=logger)
    await worker.start()
    try:
        await worker.call("on_trigger", "x", data)
        report = (await worker.call("get_status"))["report"]
        status = worker.get_status()
    finally:
        await worker.stop()
    return report, status


def refused(entry: dict, *errnos: int) -> bool:
    return entry["ok"] is False and entry["errno"] in errnos


def test_a_disarmed_audit_hook_leaves_no_shell_no_socket_no_environ(api, logger, tmp_path):
    marker = tmp_path / "escaped"
    with socket.create_server(("127.0.0.1", 0)) as server:
        data = {"marker": str(marker), "port": server.getsockname()[1],
                "host_pid": os.getpid()}
        report, _status = run(attack("DisarmAuditHook", data, logger, api))
    assert report["guards_cleared"] >= 1  # the Python guard really was disarmed
    assert not marker.exists() and report["marker_exists"] is False
    assert report["system"]["value"] != "0"
    assert refused(report["socket"], errno.EPERM), report["socket"]
    assert refused(report["environ"], errno.EACCES, errno.EPERM), report["environ"]


def test_ctypes_fork_and_signals_to_others_are_refused(api, logger):
    async def main():
        victim = PythonWorker(make_spec("escape.py", "Canary", node_id="victim"),
                              handle_request=api.handle, logger=logger)
        await victim.start()
        try:
            data = {"victim_pid": victim.pid, "host_pid": os.getpid()}
            report, status = await attack("CtypesFork", data, logger, api)
            await victim.call("on_trigger", "x", {})
            assert victim.alive and (await victim.call("get_status"))["count"] == 1
            victim_uid = victim.ready_info["sandbox"]["uid"]
        finally:
            await victim.stop()
        return report, status, victim_uid

    report, status, victim_uid = run(main())
    assert report["fork"] == {"pid": -1, "errno": errno.EPERM}
    for target in ("kill_victim", "kill_host", "kill_init"):
        assert report[target] == {"rc": -1, "errno": errno.EPERM}, target
    assert refused(report["os_kill_victim"], errno.EPERM)
    if IS_ROOT:  # a uid per action: the victim is someone else
        assert status["sandbox"]["uid"] != victim_uid
        assert status["sandbox"]["uid"] >= 1_900_000_000


def test_files_outside_the_scratch_directory_and_shm_are_refused(api, logger):
    own = SCRIPTS / "escape.py"
    data = {"scratch_fill_mb": 64, "other_script": str(SCRIPTS / "hostile.py"),
            "own_script": str(own)}
    report, status = run(attack("DiskAndShm", data, logger, api, scratch_mb=8))
    for place in ("tmp", "shm", "var_tmp", "other_script", "own_script_write"):
        assert refused(report[place], errno.EACCES), (place, report[place])
    assert report["scratch_small"]["ok"] is True
    # the scratch directory is capped: RLIMIT_FSIZE (EFBIG) or the tmpfs size (ENOSPC)
    assert refused(report["scratch_huge"], errno.EFBIG, errno.ENOSPC), report["scratch_huge"]
    assert not Path("/tmp/pafw-escape-tmp").exists()
    assert not Path("/dev/shm/pafw-escape-shm").exists()
    scratch = Path(report["scratch"])
    assert status["confinement"]["scratch"] == str(scratch)
    assert not scratch.exists()  # removed with the worker
    assert status["sandbox"]["rlimits"]["fsize_mb"] == 8


def test_system_calls_a_worker_never_needs_fail(api, logger):
    numbers = syscall_numbers("ptrace", "process_vm_readv", "unshare", "memfd_create",
                              "io_uring_setup", "bpf", "mount", "setuid")
    report, _status = run(attack("KernelProbe", {"syscalls": numbers, "host_pid": os.getpid()},
                                 logger, api))
    for call in ("ptrace_attach", "process_vm_readv", "unshare_user", "memfd_create",
                 "io_uring_setup", "bpf", "mount", "setuid0"):
        assert report[call] == {"rc": -1, "errno": errno.EPERM}, (call, report[call])
    assert refused(report["abstract_unix"], errno.EPERM)
    assert refused(report["netlink"], errno.EPERM)
    assert refused(report["raise_nofile"], errno.EPERM) or report["raise_nofile"][
        "error"] == "ValueError"
    for path in ("read_other_proc", "read_shadow", "read_passwd"):
        assert refused(report[path], errno.EACCES), (path, report[path])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 ABI exists on x86-64 only")
def test_a_call_through_another_abi_kills_the_worker(api, logger):
    async def main():
        worker = PythonWorker(make_spec("escape.py", "X32Call"), handle_request=api.handle,
                              logger=logger)
        await worker.start()
        with pytest.raises(WorkerCrashed, match="SIGSYS"):
            await worker.call("on_trigger", "x", {})
        return await worker.wait()

    assert run(main()) == -31  # SIGSYS: seccomp's bad-architecture action


def test_threads_are_capped_and_background_cpu_is_throttled_and_reported(api, logger):
    async def main():
        worker = PythonWorker(make_spec("escape.py", "BackgroundBurner", max_threads=3,
                                        max_cpu_percent=20),
                              handle_request=api.handle, logger=logger)
        await worker.start()
        try:
            await worker.call("on_trigger", "x", {"threads": 64})
            report = (await worker.call("get_status"))["report"]
            worker.check_limits()  # what the supervisor's watchdog does every 0.5 s
            t0 = time.monotonic()
            await asyncio.sleep(1.5)  # the threads burn between calls
            wall = time.monotonic() - t0
            worker.check_limits()
            usage = worker.get_status()["usage"]
            background = worker.background_cpu_s
        finally:
            await worker.stop()
        return report, usage, wall, worker, background

    report, usage, wall, worker, background = run(main())
    assert 1 <= report["started"] <= 3 + 8, report
    assert "can't start new thread" in report["thread_error"]
    if worker.placement and "cpu" in worker.placement.get_status()["cgroup_limits"]:
        assert usage["throttled_periods"] > 0
        # 20 % of one core, with a generous margin for the start and the accounting
        assert usage["cpu_s"] < 0.2 * wall * 2 + 0.5, usage
        assert background > 0  # counted as CPU used between calls
    assert worker.get_status()["usage"] is None  # gone after the stop


def test_a_worker_flooding_the_host_is_cut_off_and_the_host_stays_small(api, logger):
    async def main():
        canary = PythonWorker(make_spec("escape.py", "Canary", node_id="canary"),
                              handle_request=api.handle, logger=logger)
        await canary.start()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sup = WorkerSupervisor(make_spec("escape.py", "Flooder", timeout_ms=20_000),
                               handle_request=api.handle, logger=logger, backoff_initial_s=0.1)
        await sup.start()
        async with Ticker() as ticker:
            with pytest.raises(WorkerCrashed):
                await sup.call("on_trigger", "x", {"frames": 200_000})
            for _ in range(5):
                await canary.call("on_trigger", "x", {})
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        status = sup.get_status()
        count = (await canary.call("get_status"))["count"]
        await sup.stop()
        await canary.stop()
        return status, count, (rss_after - rss_before) / 1024, ticker.max_gap_s

    status, count, grown_mb, max_gap_s = run(main())
    assert count == 5
    assert "flooding" in status["last_error"]["message"]
    assert status["last_error"]["file"] == ESCAPE and status["last_error"]["line"]
    assert grown_mb < 64, f"host grew {grown_mb:.0f} MB"
    assert max_gap_s < 2.0  # the loop never waited on the flood


def test_an_oversized_frame_names_the_line_and_repeated_kills_park_the_action(api, logger):
    spec = make_spec("escape.py", "OversizedFrame", timeout_ms=10_000)

    async def main():
        sup = WorkerSupervisor(spec, handle_request=api.handle, logger=logger, max_failures=3,
                               backoff_initial_s=0.05, failure_window_s=60)
        await sup.start()
        for _ in range(3):
            await wait_for_state(sup, "running", 10)
            await sup.call("on_update", {})  # a successful call between the kills
            with pytest.raises(WorkerCrashed):
                await sup.call("on_trigger", "x", {})
            await asyncio.sleep(0.01)
        await wait_for_state(sup, "failed", 10)
        status = sup.get_status()
        await sup.stop()
        return status

    status = run(main())
    assert status["state"] == "failed"
    error = status["last_error"]
    assert "protocol error" in error["message"] and "exceeds" in error["message"]
    # the header is sent at 173, then the script sleeps at 175: the cut-off is that quick
    assert error["file"] == ESCAPE and error["line"] in (173, 175)


def test_script_log_lines_cannot_forge_lines_and_refusals_are_bounded(logger, caplog):
    class RefusingApi:
        async def handle(self, method, args, kwargs):
            if method == "publish_mqtt":
                raise PermissionError(f"publishing to {args[0]!r} is not granted")
            if method == "log_message":
                logger.info("%s", args[1])  # what the appliance's host API does, unescaped
            return None

    report, _status = run(attack("LogForger", {"publishes": 100}, logger, RefusingApi(),
                                 timeout_ms=30_000))
    assert report["refused"] == 100
    worker_lines = [r.getMessage() for r in caplog.records if "[stdout]" in r.getMessage()]
    assert worker_lines and all("\n" not in m and "\x1b" not in m and "\r" not in m
                                for m in worker_lines)
    assert any("\\x1b[31m" in m for m in worker_lines)


def test_two_actions_get_their_own_uids_and_the_protections_are_reported(api, logger):
    async def main():
        workers = [PythonWorker(make_spec("escape.py", "Canary", node_id=name),
                                handle_request=api.handle, logger=logger)
                   for name in ("first", "second")]
        for worker in workers:
            await worker.start()
        statuses = [w.get_status() for w in workers]
        for worker in workers:
            await worker.stop()
        return statuses

    first, second = run(main())
    for status in (first, second):
        sandbox = status["sandbox"]
        assert sandbox["landlock"]["abi"] >= 1
        assert sandbox["seccomp"]["mode"] == "allow-list"
        assert "landlock ABI" in status["protections"]
        assert "seccomp allow-list" in status["protections"]
    if IS_ROOT:
        assert first["sandbox"]["uid"] != second["sandbox"]["uid"]
        assert first["confinement"]["scratch_tmpfs"] is True
        assert first["confinement"]["cgroup"] is not None


@pytest.mark.skipif(not HAS_LANDLOCK_NET, reason="Landlock network rules need Linux 6.7")
def test_a_host_port_grant_reaches_that_port_only(tmp_path, logger, api):
    script = tmp_path / "net.py"
    script.write_text(
        "import socket\n"
        "class Net(CustomPythonAction):\n"
        "    def on_trigger(self, trigger_type, data):\n"
        "        self.seen = {}\n"
        "        for name, (host, port) in data['targets'].items():\n"
        "            try:\n"
        "                socket.create_connection((host, port), timeout=2).close()\n"
        "                self.seen[name] = 'connected'\n"
        "            except OSError as exc:\n"
        "                self.seen[name] = type(exc).__name__ + ':' + str(exc.errno)\n"
        "        return True\n"
        "    def get_status(self):\n"
        "        return self.seen\n")
    with socket.create_server(("127.0.0.1", 0)) as granted, \
            socket.create_server(("127.0.0.1", 0)) as other, \
            socket.create_server(("127.0.0.2", 0)) as other_host:
        port, other_port = granted.getsockname()[1], other.getsockname()[1]
        # same port number, another address: only the egress table tells them apart
        with socket.create_server(("127.0.0.2", port)) as same_port_other_host:
            spec = make_spec("net.py", "Net", scripts_dir=tmp_path, script_path=script,
                             allowed_imports=["socket"], network=True, timeout_ms=30_000,
                             network_hosts=[f"127.0.0.1:{port}", f"localhost:{port}"])
            targets = {"granted": ["127.0.0.1", port], "by_name": ["localhost", port],
                       "other_port": ["127.0.0.1", other_port],
                       "other_host_same_port": ["127.0.0.2", port],
                       "other_host": ["127.0.0.2", other_host.getsockname()[1]],
                       "unknown_name": ["pafw-not-granted.invalid", port]}

            async def main():
                worker = PythonWorker(spec, handle_request=api.handle, logger=logger)
                await worker.start()
                await worker.call("on_trigger", "x", {"targets": targets})
                seen = await worker.call("get_status")
                status = worker.get_status()
                await worker.stop()
                return seen, status

            seen, status = run(main())
            assert same_port_other_host is not None
    assert seen["granted"] == "connected"
    assert seen["by_name"] == "connected"
    assert seen["other_port"] == f"PermissionError:{errno.EACCES}"  # Landlock
    assert seen["unknown_name"].startswith("gaierror")
    if status["confinement"]["egress"] == "nftables":
        assert seen["other_host_same_port"].startswith("ConnectionRefusedError")
    assert seen["other_host"] in (f"PermissionError:{errno.EACCES}",
                                  f"ConnectionRefusedError:{errno.ECONNREFUSED}")


def test_without_a_grant_there_is_no_socket(api, logger, tmp_path):
    report, status = run(attack("DisarmAuditHook", {
        "marker": str(tmp_path / "m"), "port": 9, "host_pid": os.getpid()}, logger, api))
    assert status["sandbox"]["seccomp"]["sockets"] == "none"
    assert refused(report["socket"], errno.EPERM)


def test_nothing_of_a_worker_survives_its_stop(api, logger):
    async def main():
        worker = PythonWorker(make_spec("escape.py", "CtypesFork"),
                              handle_request=api.handle, logger=logger)
        await worker.start()
        uid = worker.ready_info["sandbox"]["uid"]
        await worker.call("on_trigger", "x", {"victim_pid": 1, "host_pid": os.getpid()})
        cgroup = worker.placement.cgroup if worker.placement else None
        await worker.stop()
        return uid, cgroup

    uid, cgroup = run(main())
    if IS_ROOT:
        owned = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                 and _uid_of(p) == uid]
        assert owned == []
    if cgroup is not None:
        assert cgroup.tasks() == []


def _uid_of(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def test_the_appliance_wide_confinement_is_described():
    status = Confinement().get_status()
    assert set(status) == {"per_action_uid", "uid_base", "cgroups", "scratch", "egress"}
    assert status["per_action_uid"] is IS_ROOT
    logging.getLogger(__name__).info("confinement here: %s", status)


def test_an_interpreter_workers_cannot_read_is_refused_with_the_path_to_fix():
    import tempfile

    from firmware.actions.python.confinement import ConfinementError, check_readable_by_others

    # /tmp itself: pytest's base directory is private to its user
    with tempfile.TemporaryDirectory(prefix="pafw-readable-") as tmp:
        os.chmod(tmp, 0o755)
        private = Path(tmp) / "private"
        library = private / "lib" / "python3"
        library.mkdir(parents=True)
        private.chmod(0o700)
        with pytest.raises(ConfinementError,
                           match=r"cannot read .*private \(mode drwx------\).*chmod o\+rx"):
            check_readable_by_others({str(library)})
        private.chmod(0o755)
        check_readable_by_others({str(library)})


def test_the_data_directory_descriptor_is_closed_once(tmp_path):
    """The host's copy of the data directory descriptor is closed after the spawn and never
    again: its number is reused at once (a socket of the control loop, say)."""
    from firmware.actions.python.confinement import Placement

    placement = Placement(name="x", uid=None, gid=None, scratch=tmp_path, scratch_mb=1,
                          scratch_is_tmpfs=False)
    placement.data_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    placement.worker_data_fd = placement.data_fd
    placement.close_fds()
    reused = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        placement.close_fds()  # release() does it again
        os.fstat(reused)  # still open
        assert placement.init_fields()["data_fd"] == placement.worker_data_fd
    finally:
        os.close(reused)
