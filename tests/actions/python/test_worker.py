"""Worker processes running real scripts: loading, the API round trips, errors with
file:line, result checks, path confinement, start time and memory, run-as-user."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest

from firmware.actions.python.confinement import Confinement
from firmware.actions.python.host import PythonWorker
from firmware.actions.python.protocol import ScriptCallError, ScriptLoadError, WorkerCrashed
from firmware.actions.python.sandbox import ScriptPathError, resolve_script
from tests.actions.python.conftest import IS_ROOT, SCRIPTS, make_spec

#: the shipped example: the design study's EmailNotificationAction, verbatim
from tests.paths import USER_SCRIPTS

STUDY_EMAIL = USER_SCRIPTS / "email_alert.py"
#: where the study's code raises on a missing login (a line of the verbatim class)
STUDY_EMAIL_LOGIN_CHECK = next(
    i for i, line in enumerate(STUDY_EMAIL.read_text().splitlines(), 1)
    if "SMTP username and password are required" in line)


def study_email_spec(**changes):
    return make_spec("email_alert.py", "EmailNotificationAction", script_path=STUDY_EMAIL,
                     scripts_dir=USER_SCRIPTS, allowed_imports=["smtplib"], **changes)


#: the design study's YAML (section 2.3), with ${EMAIL_PASSWORD} already substituted
STUDY_PYTHON_CONFIG = {
    "smtp_server": "smtp.gmail.com", "smtp_port": 587, "username": "alerts@company.com",
    "password": "secret", "recipients": ["operator@company.com", "supervisor@company.com"]}


async def started(spec, api, logger, confinement=None) -> PythonWorker:
    worker = PythonWorker(spec, handle_request=api.handle, logger=logger,
                          confinement=confinement)
    await worker.start(timeout_s=10)
    return worker


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_study_email_action_loads_with_its_config(api, logger, caplog):
    spec = study_email_spec(python_config=STUDY_PYTHON_CONFIG,
                            parameters={"buffer_size": 100, "concentration_threshold": 1000.0})

    async def main():
        worker = await started(spec, api, logger)
        assert await worker.call("get_status") == {
            "status": "active", "smtp_server": "smtp.gmail.com", "recipients_count": 2,
            "last_notifications": {}}
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "numpy" not in maps and "pydantic" not in maps and "numba" not in maps
        # no network granted: the script's own try/except logs the refusal, returns False
        ok = await worker.call("on_trigger", "concentration",
                               {"value": 1250.0, "threshold": 1000.0,
                                "source_node_id": "co2_concentration"})
        assert ok is False
        assert worker.ready_info["network"] == "none"
        await worker.stop()
        assert worker.returncode == 0

    asyncio.run(main())
    assert any("Email action failed: network access is not granted to this action: add "
               "capabilities.network: true" in m for m in messages(caplog))


def test_study_email_action_validation_error_names_the_line(api, logger):
    spec = study_email_spec(python_config={"username": "a@b.c"})
    with pytest.raises(ScriptLoadError) as err:
        asyncio.run(started(spec, api, logger))
    assert err.value.info["type"] == "ValueError"
    assert (err.value.file, err.value.line) == (str(STUDY_EMAIL), STUDY_EMAIL_LOGIN_CHECK)
    assert (f"email_alert.py:{STUDY_EMAIL_LOGIN_CHECK}: ValueError: SMTP username and password"
            in str(err.value))
    assert "Traceback" in err.value.info["traceback"]


def test_study_webhook_action(api, logger):
    config = {"webhook_url": "https://example.com/hook", "notification_config": {
        "templates": {"concentration": {"message": "CO2 high", "severity": "critical"}}}}
    spec = make_spec("webhook_action.py", "WebhookNotificationAction", python_config=config)

    async def main():
        worker = await started(spec, api, logger)
        assert await worker.call("on_trigger", "concentration", {"value": 1500.0}) is True
        status = await worker.call("get_status")
        await worker.stop()
        return status["last_payload"]

    payload = asyncio.run(main())
    assert payload["message"] == "CO2 high" and payload["severity"] == "critical"
    assert payload["node_id"] == ["co2_peak_finder", "co2_concentration"]
    assert payload["sensor_data"] == {"value": 1500.0}


def test_start_time_and_memory(api, logger, capsys):
    spec = make_spec("echo_action.py", "EchoAction")

    async def main():
        starts, uss, rss = [], [], []
        for _ in range(3):
            t0 = time.perf_counter()
            worker = await started(spec, api, logger)
            starts.append((time.perf_counter() - t0) * 1e3)
            uss.append(worker.uss_bytes() / 2**20)
            rss.append(worker.rss_bytes() / 2**20)
            await worker.stop()
        return starts, uss, rss

    starts, uss, rss = asyncio.run(main())
    with capsys.disabled():
        print(f"\nworker start (spawn -> ready): median {statistics.median(starts):.0f} ms "
              f"(all {', '.join(f'{s:.0f}' for s in starts)}); USS {statistics.median(uss):.1f}"
              f" MiB, RSS {statistics.median(rss):.1f} MiB")
    assert statistics.median(starts) < 2000
    assert max(uss) < 60


def test_api_round_trips_logs_and_on_stop(api, logger, caplog):
    spec = make_spec("echo_action.py", "EchoAction", python_config={"threshold": 100},
                     parameters={"buffer_size": 50, "threshold": 5})

    async def main():
        worker = await started(spec, api, logger)
        assert worker.ready_info["methods"] == ["get_status", "on_clear", "on_stop",
                                                "on_trigger", "on_update"]
        assert await worker.call("on_trigger", "concentration", {"value": 150}) is True
        assert await worker.call("on_trigger", "amplitude", {"value": 50}) is False
        assert await worker.call("on_update", {"co2": {"ppm": 1.0}}) is None
        assert await worker.call("on_clear", "concentration", {}) is None
        status = await worker.call("get_status")
        await worker.stop()
        return worker, status

    worker, status = asyncio.run(main())
    assert status["events"] == ["concentration", "amplitude", "clear:concentration"]
    assert status["concentration"] == 1234.5
    assert status["errors"] == {
        "relay": "PermissionError: relay 'heater' is not in this action's capabilities "
                 "(granted: pump)",
        "stats": "ValueError: unknown node 'nope'"}
    assert status["config"] == {"buffer_size": 50, "threshold": 100}
    assert status["buffer_size"] == 50
    assert status["monitored"] == ["co2_peak_finder", "co2_concentration"]
    assert status["history"] == 3 and len(status["recent"]) == 2
    assert status["keys"] == ["boots", "count"]
    assert (status["since"], status["day"]) == ("2024-05-01T12:30:00+00:00", "2024-05-01")
    assert api.store == {"boots": 1, "count": 2, "stopped": True}  # on_stop ran, then close
    assert ("relay_on", ["pump"], {}) in api.requests
    assert worker.returncode == 0
    logged = messages(caplog)
    assert "python action py_test [stdout]: echo action loaded" in logged
    assert "python action py_test [log]: trigger concentration #1" in logged
    assert "python action py_test [stderr]: via logging" in logged
    assert 'python action py_test [stdout]: data {"value": 150}' in logged


def test_forbidden_import_fails_the_load_with_file_and_line(api, logger):
    spec = make_spec("forbidden_import.py", "Forbidden", allowed_imports=["subprocess"])
    with pytest.raises(ScriptLoadError) as err:
        asyncio.run(started(spec, api, logger))
    assert err.value.info["type"] == "ImportError"
    assert (err.value.file, err.value.line) == (str(SCRIPTS / "forbidden_import.py"), 5)
    assert "import of 'subprocess' is refused" in str(err.value)


def test_evasive_import_is_refused_at_run_time(api, logger):
    spec = make_spec("evasive_import.py", "Evasive")

    async def main():
        worker = await started(spec, api, logger)
        with pytest.raises(ScriptCallError) as err:
            await worker.call("on_trigger", "x", {})
        await worker.stop()
        return err.value

    error = asyncio.run(main())
    assert error.info["type"] == "ImportError"
    assert (error.file, error.line) == (str(SCRIPTS / "evasive_import.py"), 9)
    assert (f"import of 'subprocess' is refused in {SCRIPTS / 'evasive_import.py'}:9"
            in error.info["message"])


def test_bad_scripts_fail_the_load_clearly(tmp_path, api, logger):
    (tmp_path / "broken.py").write_text("class A(CustomPythonAction):\n    def on_trigger(\n")
    (tmp_path / "dynamic.py").write_text("x = 1\ny = eval('x')\n")
    (tmp_path / "other.py").write_text("class Helper:\n    pass\n")
    cases = [("broken.py", "A", "SyntaxError", 2), ("dynamic.py", "A", "PermissionError", 2),
             ("other.py", "Missing", "AttributeError", None),
             ("../hostile.py", "InitRaises", "ScriptPathError", None)]
    errors = {}
    for script, cls, kind, line in cases:
        spec = make_spec(script, cls, scripts_dir=tmp_path, script_path=tmp_path / script)
        with pytest.raises(ScriptLoadError) as err:
            asyncio.run(started(spec, api, logger))
        assert (err.value.info["type"], err.value.line) == (kind, line), err.value
        errors[script] = err.value.info["message"]
    assert errors["other.py"] == (f"class 'Missing' not found in {tmp_path / 'other.py'}; "
                                  f"classes defined there: Helper")
    assert "outside the scripts directory" in errors["../hostile.py"]
    assert errors["dynamic.py"].endswith("dynamic.py:2:5: use of 'eval' is not allowed: "
                                         "scripts may not run code built at run time or "
                                         "reach the builtins")


def test_init_exception_names_its_line(api, logger):
    spec = make_spec("hostile.py", "InitRaises", python_config={"limit": None})
    with pytest.raises(ScriptLoadError) as err:
        asyncio.run(started(spec, api, logger))
    assert (err.value.file, err.value.line) == (str(SCRIPTS / "hostile.py"), 48)
    assert err.value.info["message"] == "limit is required in python_config"


def test_script_paths_are_confined(tmp_path):
    scripts = tmp_path / "user_scripts"
    scripts.mkdir()
    (scripts / "ok.py").write_text("")
    (tmp_path / "secret.py").write_text("")
    (scripts / "link.py").symlink_to(tmp_path / "secret.py")
    assert resolve_script(scripts, "ok.py") == scripts / "ok.py"
    assert resolve_script(scripts, scripts / "ok.py") == scripts / "ok.py"
    with pytest.raises(ScriptPathError, match=rf"'link.py' resolves to '{tmp_path}/secret.py', "
                                              rf"outside the scripts directory '{scripts}'"):
        resolve_script(scripts, "link.py")
    with pytest.raises(ScriptPathError, match="outside the scripts directory"):
        resolve_script(scripts, "../secret.py")
    with pytest.raises(ScriptPathError, match=r"'nope\.py' not found"):
        resolve_script(scripts, "nope.py")


def test_results_are_checked(api, logger):
    async def call(cls, method, *args):
        worker = await started(make_spec("hostile.py", cls), api, logger)
        try:
            with pytest.raises(ScriptCallError) as err:
                await worker.call(method, *args)
            assert await worker.call("on_update", {}) is None  # still answering
            assert worker.alive  # a bad result is an error, not a crash
        finally:
            await worker.stop()
        return err.value.info

    async def main():
        return await asyncio.gather(
            call("NonBool", "on_trigger", "x", {}), call("BadStatus", "get_status"),
            call("Oversized", "get_status"), call("Raises", "on_trigger", "x", {}))

    non_bool, bad_status, oversized, raises = asyncio.run(main())
    assert non_bool["message"] == "on_trigger must return bool, got int"
    assert bad_status["message"].startswith("get_status() return value['items'] is a set")
    assert oversized["type"] == "ValueError"
    assert "get_status returned a value that cannot be sent: 'result' message of 2,097," \
           in oversized["message"] and "exceeds the 1,048,576-byte frame cap" \
           in oversized["message"]
    assert (raises["type"], raises["line"], raises["message"]) == ("KeyError", 74, "'missing'")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to another user")
def test_run_as_user_drops_privileges(api, logger):
    """With ``scripts.worker_uid_base: null`` every worker runs as ``worker_user``."""
    # /tmp itself, not tmp_path: pytest's base directory is private to root
    with tempfile.TemporaryDirectory(prefix="pafw-run-as-") as tmp:
        os.chmod(tmp, 0o755)
        _check_run_as_user(Path(tmp), api, logger)


def _check_run_as_user(shared: Path, api, logger):
    secret, public = shared / "gpiochip-like", shared / "public"
    secret.write_text("root only")
    public.write_text("anyone")
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    spec = make_spec("unsafe_os.py", "ReadFile", run_as_user="nobody",
                     unsafe_allow_refused_imports=["os"])

    async def main():
        worker = await started(spec, api, logger, Confinement(uid_base=None))
        uid_line = next(line for line in Path(f"/proc/{worker.pid}/status").read_text()
                        .splitlines() if line.startswith("Uid:"))
        results = (await worker.call("on_trigger", "x", {"path": str(secret)}),
                   await worker.call("on_trigger", "x", {"path": str(public)}),
                   await worker.call("get_status"), uid_line, worker.ready_info["sandbox"])
        await worker.stop()
        return results

    denied, landlocked, status, uid_line, report = asyncio.run(main())
    # the root-only file by its mode; the world-readable one too: Landlock lets a worker
    # read the interpreter, the SDK and its script only
    assert (denied, landlocked) == (False, False)
    assert status == {"uid": 65534, "gid": 65534, "groups": []}
    assert uid_line.split()[1:] == ["65534"] * 4
    assert report["user"] == "nobody" and report["rlimits"]["nproc"] == 16 + 8
    assert report["network"] == "none"


def test_unknown_run_as_user_is_a_load_error(api, logger):
    spec = make_spec("echo_action.py", "EchoAction", run_as_user="no-such-user-xyz")
    if not IS_ROOT:
        pytest.skip("run_as_user is ignored (with a warning) when not root")
    with pytest.raises(ScriptLoadError, match="run_as_user 'no-such-user-xyz' does not exist"):
        asyncio.run(started(spec, api, logger, Confinement(uid_base=None)))


def test_runs_on_a_control_loop_thread(api, logger):
    """The appliance's control loop runs asyncio in a daemon thread, not the main thread."""
    result = {}

    def thread_main():
        async def main():
            worker = await started(make_spec("echo_action.py", "EchoAction"), api, logger)
            result["ok"] = await worker.call("on_trigger", "concentration", {"value": 2000})
            await worker.stop()
            result["returncode"] = worker.returncode

        asyncio.run(main())

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join(30)
    assert result == {"ok": True, "returncode": 0}


def test_a_worker_that_cannot_start_reports_its_stderr(api, logger, monkeypatch):
    monkeypatch.setattr("firmware.actions.python.host.WORKER_MODULE",
                        "firmware.actions.python.no_such_module")
    with pytest.raises(WorkerCrashed) as err:
        asyncio.run(started(make_spec("echo_action.py", "EchoAction"), api, logger))
    assert err.value.returncode == 1
    assert "exited with code 1; stderr:" in str(err.value)
    assert "No module named firmware.actions.python.no_such_module" in str(err.value)
