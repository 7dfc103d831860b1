"""Operator changes through the API, on the real appliance: acknowledging an alarm silences
the relay and slows the LED until the alarm clears, disabling an action rests its output and
survives a restart, a test pulse really pulses the pin, a script reload swaps or keeps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from firmware.app.analyzer import Analyzer
from tests.conftest import graph_node
from tests.web.conftest import TOKEN, WebRig

ALARM_PPM = 3000.0


def alarm_profile(data: dict[str, Any], *, step_s: float = 2.0) -> None:
    """1000 ppm, then above the 2000 ppm threshold from ``step_s`` on, for a long time."""
    data["acquisition"]["simulator"]["concentration"] = {
        "profile": "steps", "levels_ppm": [1000, ALARM_PPM], "step_s": step_s,
        "repeat": False}
    for name in ("alarm", ):
        data["hal"]["relays"][name].update({"min_on_s": 0.0, "min_off_s": 0.0})


def relay_state(rig: WebRig) -> str:
    outputs = rig.get("/api/v1/outputs").body["outputs"]
    return next(o["state"] for o in outputs if o["name"] == "alarm")


def action(rig: WebRig, action_id: str) -> dict[str, Any]:
    return rig.get(f"/api/v1/actions/{action_id}").body


def test_acknowledge_silences_the_alarm_until_it_clears(make_rig: Any) -> None:
    rig = make_rig(alarm_profile)
    refused = rig.post("/api/v1/actions/alarm_relay/acknowledge", token=TOKEN)
    assert refused.status == 409 and "no active alarm" in refused.body["error"]["message"]
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=60, what="the alarm relay on")
    assert rig.get("/api/v1/status").body["health"]["state"] == "alarm"
    rig.wait_for(lambda: action(rig, "status_led")["outputs"]["led:status"] == "alarm",
                 what="the LED blinking the alarm")

    answer = rig.post("/api/v1/actions/alarm_relay/acknowledge", token=TOKEN)
    assert answer.status == 200, answer.body
    assert answer.body["acknowledged"] == ["high_gas"]
    assert answer.body["action"]["state"] == "acknowledged"
    rig.wait_for(lambda: relay_state(rig) == "off", what="the relay silenced")
    assert rig.post("/api/v1/actions/status_led/acknowledge", token=TOKEN).status == 200
    assert action(rig, "status_led")["outputs"]["led:status"] == "acknowledged"
    health = rig.get("/api/v1/status").body["health"]
    assert health["state"] == "alarm"  # each action has its own: mqtt's is not acknowledged
    assert [a["action"] for a in health["alarms"] if not a["acknowledged"]] == ["mqtt"]
    answer = rig.post("/api/v1/alarms/acknowledge", token=TOKEN)
    assert answer.status == 200 and answer.body["acknowledged"] == {"mqtt": ["high_gas"]}
    assert rig.get("/api/v1/status").body["health"]["state"] == "acknowledged"
    assert rig.post("/api/v1/alarms/acknowledge", token=TOKEN).status == 409
    # the condition persists: acknowledged, not cleared; the relay stays silent
    time.sleep(0.5)
    assert relay_state(rig) == "off"
    kinds = [e.kind for e in rig.appliance.action_events.since(0)
             if e.action_id == "alarm_relay"]
    assert "acknowledged" in kinds


def test_a_disabled_action_rests_its_output_and_stays_disabled(make_rig: Any) -> None:
    rig = make_rig(alarm_profile)
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=60, what="the alarm relay on")
    answer = rig.post("/api/v1/actions/alarm_relay/disable", token=TOKEN)
    assert answer.status == 200 and answer.body["state"] == "disabled"
    rig.wait_for(lambda: relay_state(rig) == "off", what="the relay rested")
    rig.post("/api/v1/actions/status_led/disable", token=TOKEN)
    assert rig.get("/api/v1/outputs").body["outputs"][1]["on"] is False
    state_file = Path(rig.appliance.analyzer.state_dir) / "operator.json"
    assert '"alarm_relay"' in state_file.read_text()
    rig.server.stop()
    rig.appliance.stop()

    # the next start (same state directory) keeps both disabled
    rig = make_rig(alarm_profile)
    disabled = {h.node_id for h in rig.appliance.handlers if not h.enabled}
    assert disabled == {"alarm_relay", "status_led"}
    rig.wait_for(lambda: action(rig, "alarm_relay")["active_triggers"] == ["high_gas"],
                 timeout=20, what="the alarm, unacted")
    assert relay_state(rig) == "off"
    assert action(rig, "alarm_relay")["counters"]["suppressed"] >= 1
    answer = rig.post("/api/v1/actions/alarm_relay/enable", token=TOKEN)
    assert answer.status == 200 and answer.body["enabled"] is True
    rig.wait_for(lambda: relay_state(rig) == "on", what="the relay back on: alarm active")
    assert '"alarm_relay"' not in state_file.read_text()


def test_a_test_pulse_really_pulses_the_relay(make_rig: Any) -> None:
    rig = make_rig(alarm_profile)
    relay = rig.appliance.hal.relay("alarm")
    pin = relay._device.pin  # gpiozero's MockPin: its state history is the ground truth
    answer = rig.post("/api/v1/relays/alarm/pulse", {"seconds": 0.3}, token=TOKEN)
    assert answer.status == 200 and answer.body == {"relay": "alarm", "seconds": 0.3,
                                                    "state": "on"}
    assert pin.state
    rig.wait_for(lambda: not pin.state, what="the pulse's end")
    assert rig.post("/api/v1/relays/alarm/pulse", {"seconds": 61}, token=TOKEN).status == 422
    assert rig.post("/api/v1/relays/nope/pulse", {"seconds": 1}, token=TOKEN).status == 404
    assert rig.post("/api/v1/relays/alarm/pulse", {"seconds": 0}, token=TOKEN).status == 422


def test_no_test_pulse_while_an_action_holds_the_relay(make_rig: Any) -> None:
    rig = make_rig(alarm_profile)
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=60, what="the alarm relay on")
    answer = rig.post("/api/v1/relays/alarm/pulse", {"seconds": 0.2}, token=TOKEN)
    assert answer.status == 409 and "is on" in answer.body["error"]["message"]
    time.sleep(0.4)
    assert relay_state(rig) == "on"


GOOD = '''
class Counter:
    def __init__(self, config):
        self.version = {version}

    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {{"version": self.version}}
'''


def python_action(scripts_dir: Path) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["scripts"] = {"worker_user": None, "hot_reload": False}
        data["processing"]["default_graph"]["nodes"].append({
            "id": "counter", "type": "python_action", "parameters": {
                "python_script_path": "counter.py", "python_class_name": "Counter",
                "monitored_nodes": ["concentration"], "concentration_threshold": 2000.0}})
        data["processing"]["default_graph"]["connections"].append(
            {"from": "concentration", "to": "counter"})
        graph_node(data, "counter")

    scripts_dir.mkdir(parents=True, exist_ok=True)
    (scripts_dir / "counter.py").write_text(GOOD.format(version=1))
    return change


def test_reload_swaps_a_good_script_and_keeps_the_old_on_a_bad_one(
        make_rig: Any, state_env: dict[str, str]) -> None:
    scripts = Path(state_env["PAFW_SCRIPTS_DIR"])
    rig = make_rig(python_action(scripts))
    rig.wait_for(lambda: action(rig, "counter")["script"]["worker_state"] == "running",
                 what="the worker")
    (scripts / "counter.py").write_text(GOOD.format(version=2))
    answer = rig.post("/api/v1/actions/counter/reload", token=TOKEN)
    assert answer.status == 200 and answer.body["reloaded"] is True
    assert answer.body["action"]["script"]["reloads"] == 1

    (scripts / "counter.py").write_text("class Counter:\n    def __init__(self, config)\n")
    answer = rig.post("/api/v1/actions/counter/reload", token=TOKEN)
    assert answer.status == 422
    assert "previous version keeps running" in answer.body["error"]["message"]
    summary = action(rig, "counter")
    assert summary["script"]["worker_state"] == "running"
    assert summary["script"]["reload_failures"] == 1
    error = summary["last_error"]
    assert error["type"] == "SyntaxError"
    assert error["file"].endswith("counter.py") and error["line"] == 2
    kinds = [e.kind for e in rig.appliance.action_events.since(0) if e.action_id == "counter"]
    assert kinds.count("reloaded") == 1 and kinds.count("reload_failed") == 1


@pytest.mark.parametrize("action_id", ["mqtt", "alarm_relay", "status_led"])
def test_only_python_actions_reload(make_rig: Any, action_id: str) -> None:
    rig = make_rig()
    answer = rig.post(f"/api/v1/actions/{action_id}/reload", token=TOKEN)
    assert answer.status == 409 and "only python_action" in answer.body["error"]["message"]


def test_no_test_pulse_while_an_alarm_waits_for_min_off(make_rig: Any, make_doc: Any) -> None:
    """The alarm's switch-on waits out min_off_s: the relay is off but about to be held on,
    and a test pulse must not replace that switch-on."""
    def slow_relay(data: dict[str, Any]) -> None:
        alarm_profile(data, step_s=0.5)
        data["hal"]["relays"]["alarm"]["min_off_s"] = 10.0

    # min_off_s counts from the HAL's start, which comes before the kernels' warm-up: compile
    # them into the shared cache first, so that the appliance's own warm-up is a load and the
    # alarm (0.5 s in) comes well inside the 10 s, however loaded the machine
    Analyzer(make_doc(slow_relay), realtime=False).warm_up()
    rig = make_rig(slow_relay)
    handler = next(h for h in rig.appliance.handlers if h.node_id == "alarm_relay")
    rig.wait_for(lambda: handler.held, timeout=60, what="the alarm holding the relay")
    assert relay_state(rig) == "off", "still waiting for min_off_s"
    answer = rig.post("/api/v1/relays/alarm/pulse", {"seconds": 0.2}, token=TOKEN)
    assert answer.status == 409 and "held on by alarm_relay" in answer.body["error"]["message"]
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=60, what="the held relay on")


def test_a_held_relay_switched_off_behind_the_actions_back_comes_back_on(
        make_rig: Any) -> None:
    rig = make_rig(alarm_profile)
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=60, what="the alarm relay on")
    rig.appliance.hal.relay("alarm").off()  # e.g. a script with the relay granted
    rig.wait_for(lambda: relay_state(rig) == "on", timeout=30, what="the relay on again")


def test_concurrent_enable_disable_keep_the_saved_state_consistent(make_rig: Any) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    rig = make_rig()
    ids = ["alarm_relay", "status_led"]

    def flip(i: int) -> int:
        verb = "disable" if i % 2 else "enable"
        return rig.post(f"/api/v1/actions/{ids[i % 2]}/{verb}", token=TOKEN).status

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(flip, range(60))) == {200}
    saved = json.loads((Path(rig.appliance.analyzer.state_dir) / "operator.json").read_text())
    assert saved["disabled"] == sorted(h.node_id for h in rig.appliance.handlers
                                       if not h.enabled)
    leftovers = list(Path(rig.appliance.analyzer.state_dir).glob(".operator.json.*"))
    assert leftovers == []


NAN_STATUS = '''
class Nan:
    def __init__(self, config):
        pass

    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {"mean_ppm": float("nan"), "peak": float("inf")}
'''


def test_a_scripts_nan_status_is_served_as_null(make_rig: Any,
                                                state_env: dict[str, str]) -> None:
    scripts = Path(state_env["PAFW_SCRIPTS_DIR"])
    change = python_action(scripts)
    (scripts / "counter.py").write_text(NAN_STATUS.replace("class Nan", "class Counter"))
    rig = make_rig(change)
    rig.wait_for(lambda: rig.appliance.handlers[-1].script_status is not None, timeout=20,
                 what="the script's status")
    answer = rig.get("/api/v1/actions/counter")
    assert answer.status == 200
    assert answer.body["details"]["script_status"] == {"mean_ppm": None, "peak": None}
    assert rig.get("/api/v1/actions").status == 200
