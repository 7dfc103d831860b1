"""python_action in the real appliance: events reach the script in its worker, grants are
enforced, the store persists, hot reload swaps good code and keeps the old on bad code, and
a hostile script never slows the DSP loop or the other actions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from firmware.app.appliance import Appliance
from tests.actions.test_builtin_actions import STEP_FRAMES, handler, run_frames, scenario
from tests.actions.test_builtin_actions import wait_until as wait

GOOD = '''
class Counter(CustomPythonAction):
    VERSION = {version}

    def __init__(self, api):
        super().__init__(api)
        self.triggers = api.store.get("triggers", 0)

    def on_trigger(self, trigger_type, data):
        self.triggers += 1
        self.api.store.set("triggers", self.triggers)
        self.api.relay_on("alarm")
        return data["value"] > data["threshold"]

    def on_clear(self, trigger_type, data):
        self.api.relay_off("alarm")

    def on_update(self, computing_data):
        self.last = computing_data["concentration"]["concentration_ppm"]

    def get_status(self):
        return {{"version": self.VERSION, "triggers": self.triggers}}
'''


def python_node(script: str, **extra) -> dict:
    return {"id": "py", "type": "python_action", "parameters": {
        "python_script_path": f"/user_scripts/{script}",
        "python_class_name": "Counter",
        "monitored_nodes": ["concentration"],
        "concentration_threshold": 2000.0,
        # generous: a call's deadline is not what these tests are about (a loaded machine)
        "python_timeout_ms": 5000,
        "capabilities": {"relays": ["alarm"]},
        **extra}}


def configure(tmp_path: Path, levels, node: dict, *, mqtt: bool = False):
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)

    def change(data):
        scenario(data, levels, mqtt=mqtt)
        graph = data["processing"]["default_graph"]
        graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "alarm_relay"]
        graph["connections"] = [c for c in graph["connections"] if c["to"] != "alarm_relay"]
        graph["nodes"].append(node)
        graph["connections"].append({"from": "concentration", "to": node["id"]})
        data["paths"]["scripts_dir"] = str(scripts)
        data["scripts"]["worker_user"] = None  # the test interpreter is not readable by nobody
        data["scripts"]["debounce_s"] = 0.05
    return scripts, change


def status_of(appliance) -> dict:
    return handler(appliance, "py").get_status()


def test_events_reach_the_script_which_drives_a_granted_relay(make_doc, tmp_path):
    scripts, change = configure(tmp_path, [500.0, 3000.0, 500.0], python_node("counter.py"))
    (scripts / "counter.py").write_text(GOOD.format(version=1))
    appliance = Appliance(make_doc(change), realtime=False)
    pin = appliance.hal.factory.pin(17)
    try:
        run_frames(appliance, 3 * STEP_FRAMES)
        py = handler(appliance, "py")
        assert wait(lambda: py.clears == 1 and py.successes == 2)
        assert [s.state for s in pin.states] == [False, True, False]
        worker = status_of(appliance)["worker"]
        assert worker["state"] == "running" and worker["calls"] >= 3
        assert worker["exec_ms"]["p95"] is not None
        assert py.store.get("triggers") == 1
    finally:
        appliance.stop()


def test_denied_capability_raises_in_the_script_and_is_counted(make_doc, tmp_path):
    script = GOOD.format(version=1).replace('self.api.relay_on("alarm")',
                                             'self.api.publish_mqtt("other/topic", 1)')
    node = python_node("counter.py", capabilities={"relays": ["alarm"],
                                                   "mqtt_publish": ["site/+/co2"]})
    scripts, change = configure(tmp_path, [500.0, 3000.0], node, mqtt=True)
    (scripts / "counter.py").write_text(script)
    appliance = Appliance(make_doc(change), realtime=False)
    try:
        run_frames(appliance, 2 * STEP_FRAMES)
        py = handler(appliance, "py")
        assert wait(lambda: py.failures == 1)
        status = status_of(appliance)
        assert status["denied_calls"] == 1
        assert "other/topic" in status["last_denied"] and "site/+/co2" in status["last_denied"]
        error = status["worker"]["last_error"]
        assert error["type"] == "PermissionError" and error["line"] == 12
    finally:
        appliance.stop()


def test_store_survives_a_restart_of_the_appliance(make_doc, tmp_path):
    scripts, change = configure(tmp_path, [3000.0], python_node("counter.py"))
    (scripts / "counter.py").write_text(GOOD.format(version=1))
    for expected in (1, 2):
        appliance = Appliance(make_doc(change), realtime=False)
        try:
            run_frames(appliance, 4)
            py = handler(appliance, "py")
            assert wait(lambda action=py: action.successes == 1)
            assert py.store.get("triggers") == expected
        finally:
            appliance.stop()


def reload_until(appliance, predicate, timeout=30.0):
    py = handler(appliance, "py")
    return wait(lambda: predicate(py.supervisor.get_status()), timeout=timeout)


@pytest.fixture
def running(make_doc, tmp_path):
    scripts, change = configure(tmp_path, [500.0], python_node("counter.py"))
    (scripts / "counter.py").write_text(GOOD.format(version=1))
    appliance = Appliance(make_doc(change), realtime=True)
    appliance.start()
    assert reload_until(appliance, lambda s: s["state"] == "running")
    yield appliance, scripts / "counter.py"
    appliance.stop()


def script_version(appliance) -> int:
    py = handler(appliance, "py")
    return appliance.control.call(py.supervisor.call("get_status")).result(5)["version"]


def test_good_edit_is_live_within_a_second(running):
    appliance, path = running
    staging = path.with_name(".counter.tmp")
    staging.write_text(GOOD.format(version=2))
    staging.rename(path)
    # live without a restart (how fast: `pafw bench python-actions`, reload latency)
    assert wait(lambda: script_version(appliance) == 2, timeout=30)
    assert handler(appliance, "py").supervisor.get_status()["reloads"] == 1


@pytest.mark.parametrize("broken", [
    "class Counter(CustomPythonAction:\n",                       # syntax error
    GOOD.format(version=3).replace("super().__init__(api)",
                                   "super().__init__(api); 1 / 0"),  # failing __init__
])
def test_broken_edit_keeps_the_old_version_and_reports(running, broken):
    appliance, path = running
    path.write_text(broken)
    assert reload_until(appliance, lambda s: s["reload_failures"] == 1)
    status = handler(appliance, "py").supervisor.get_status()
    assert status["state"] == "running"
    assert status["last_error"]["file"].endswith("counter.py")
    assert script_version(appliance) == 1


def test_half_written_file_is_never_loaded(running):
    appliance, path = running
    new = GOOD.format(version=4)
    with path.open("w") as fh:
        fh.write(new[: len(new) // 2])
        fh.flush()
        time.sleep(0.6)  # a slow upload: much longer than the debounce
        assert script_version(appliance) == 1
        assert handler(appliance, "py").supervisor.get_status()["reload_failures"] == 0
        fh.write(new[len(new) // 2:])
    assert wait(lambda: script_version(appliance) == 4, timeout=30)
    assert handler(appliance, "py").supervisor.get_status()["reload_failures"] == 0


HOSTILE = '''
class Counter(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True

    def on_update(self, computing_data):
        while True:
            pass
'''


def test_hostile_script_does_not_slow_the_dsp_or_other_actions(make_doc, tmp_path):
    scripts, change = configure(tmp_path, [3000.0], python_node("counter.py",
                                                                python_timeout_ms=500))
    (scripts / "counter.py").write_text(HOSTILE)
    appliance = Appliance(make_doc(change), realtime=True)
    try:
        appliance.start()
        time.sleep(0.5)
        frames0, t0 = appliance.analyzer.frames, time.monotonic()
        time.sleep(4.0)
        rate = (appliance.analyzer.frames - frames0) / (time.monotonic() - t0)
        led = handler(appliance, "status_led")
        assert rate == pytest.approx(48000 / 4096, rel=0.1)  # paced at real time
        assert led.pattern == "alarm", "the other actions keep working"
        assert led.updates > 30
        worker = handler(appliance, "py").supervisor.get_status()
        assert worker["timeouts"] >= 2 and worker["kills"]["timeout"] >= 2
        # a DSP thread waiting on the script would overrun every frame; on a loaded machine
        # the scheduler may still make one frame late now and then, whatever the script does
        analyzer = appliance.analyzer
        assert analyzer.overruns <= max(1, analyzer.frames // 20), analyzer.get_status()
    finally:
        appliance.stop()


CONFIGURED = '''
class Counter(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {"version": self.api.get_node_parameter("version")}
'''


def test_config_change_of_the_node_is_applied_and_a_bad_file_is_not(state_env, tmp_path):
    import yaml

    from firmware.config.loader import default_config_text, load_config

    scripts, change = configure(tmp_path, [500.0], python_node(
        "counter.py", python_config={"version": 1}))
    (scripts / "counter.py").write_text(CONFIGURED)
    data = yaml.safe_load(default_config_text())
    change(data)
    config = tmp_path / "pafw.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    appliance = Appliance(load_config(config, env=state_env), realtime=True)
    try:
        appliance.start()
        assert wait(lambda: script_version(appliance) == 1)
        graph_node = next(n for n in data["processing"]["default_graph"]["nodes"]
                          if n["id"] == "py")
        graph_node["parameters"]["python_config"]["version"] = 2
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        assert wait(lambda: script_version(appliance) == 2, timeout=30)
        assert wait(lambda: appliance.config_reload["reloads"] == 1, timeout=30)

        config.write_text("processing:\n  status_interval_s: -1\n")
        assert wait(lambda: appliance.config_reload["last_error"] is not None, timeout=30)
        assert "status_interval_s" in appliance.config_reload["last_error"]
        assert script_version(appliance) == 2
    finally:
        appliance.stop()


def escape_node(node_id: str, cls: str, **extra) -> dict:
    return {"id": node_id, "type": "python_action", "parameters": {
        "python_script_path": "/user_scripts/escape.py", "python_class_name": cls,
        "monitored_nodes": ["concentration"], "concentration_threshold": 2000.0,
        "python_timeout_ms": 30_000, **extra}}


def test_slow_and_cpu_burning_scripts_stall_neither_the_dsp_the_tick_nor_a_canary(
        make_doc, tmp_path):
    """A 20 s on_update (under a 30 s timeout) and threads burning CPU between calls: the
    DSP keeps real time, the control loop keeps ticking (data timeouts, every status), the
    canary's events run, the burner is throttled by its cgroup and its CPU time reported."""
    import shutil

    from tests.actions.python.conftest import SCRIPTS

    scripts, change = configure(tmp_path, [3000.0], escape_node(
        "py_slow", "SlowUpdate", python_config={"sleep_s": 20}))

    def change_more(data):
        change(data)
        graph = data["processing"]["default_graph"]
        for node in (escape_node("py_burn", "BackgroundBurner", max_cpu_percent=10),
                     escape_node("py_canary", "Canary")):
            graph["nodes"].append(node)
            graph["connections"].append({"from": "concentration", "to": node["id"]})

    shutil.copy(SCRIPTS / "escape.py", scripts / "escape.py")
    appliance = Appliance(make_doc(change_more), realtime=True)
    try:
        appliance.start()
        canary, burn = handler(appliance, "py_canary"), handler(appliance, "py_burn")
        assert wait(lambda: canary.successes >= 1 and burn.successes >= 1, timeout=10)
        assert wait(lambda: handler(appliance, "py_slow").supervisor.calls >= 1, timeout=10)
        frames0, ticks0, t0 = appliance.analyzer.frames, appliance.control.ticks, \
            time.monotonic()
        time.sleep(4.0)  # the slow on_update is in flight all along
        elapsed = time.monotonic() - t0
        rate = (appliance.analyzer.frames - frames0) / elapsed
        ticks = appliance.control.ticks - ticks0
        slow = handler(appliance, "py_slow").get_status()
        usage = burn.supervisor.get_status()["worker"]["usage"]
        assert rate == pytest.approx(48000 / 4096, rel=0.1)  # paced at real time
        # a tick waiting on the slow call would stall for its whole 20 s
        assert ticks >= 0.25 * elapsed / appliance.control.tick_s, "the tick waited"
        assert appliance.control.tick_lag_max_s < 5.0
        assert slow["worker"]["state"] == "running"  # answered from what is known
        assert appliance.analyzer.overruns == 0
        if usage is not None and usage["throttled_periods"] is not None:
            assert usage["throttled_periods"] > 0 and usage["cpu_s"] > 0
    finally:
        appliance.stop()


def test_pafw_status_shows_what_confines_each_worker(make_doc, tmp_path):
    import json

    from firmware.state import json_safe
    from firmware.tools.status import summarize

    scripts, change = configure(tmp_path, [500.0], python_node("counter.py"))
    (scripts / "counter.py").write_text(GOOD.format(version=1))
    appliance = Appliance(make_doc(change), realtime=True)
    try:
        appliance.start()
        assert reload_until(appliance, lambda s: s["state"] == "running")
        snapshot = json.loads(json.dumps(json_safe(appliance.get_status())))
    finally:
        appliance.stop()
    snapshot.update(state="running", pid=os.getpid(), written_at=time.time())
    _running, text = summarize(snapshot)
    assert "script workers: " in text and "egress" in text
    protections = next(line for line in text.splitlines() if "protections:" in line)
    assert "seccomp allow-list" in protections and "landlock ABI" in protections
    if os.geteuid() == 0:
        assert "script workers: a uid per action" in text
        assert "uid 19" in protections and "cgroup" in protections
