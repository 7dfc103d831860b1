"""user_scripts/mqtt_republisher.py through the appliance's MQTT link to a private Mosquitto:
an independent subscriber gets the rate-limited values and the retained alarm state on the
granted site topics; a topic outside the grant is refused and counted."""

from __future__ import annotations

import itertools
from typing import Any

from tests.mqtt_broker import Subscriber
from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

STEP_FRAMES = 24
INTERVAL_S = 0.25
PACE_S = 0.02  # 72 frames in >= 1.45 s: about 6 values at one per INTERVAL_S


def nodes() -> list[dict[str, Any]]:
    good = docstring_node("mqtt_republisher.py")
    good["parameters"]["python_config"]["min_interval_s"] = INTERVAL_S
    assert good["parameters"]["capabilities"]["mqtt_publish"] == ["site/lab1/#"]
    stray = docstring_node("mqtt_republisher.py")  # publishes outside its grant
    stray["id"] = "stray_republisher"
    stray["parameters"].pop("triggers")
    stray["parameters"]["python_config"].update(value_topic="plant/co2",
                                                min_interval_s=INTERVAL_S)
    return [good, stray]


def test_republishes_values_and_alarm_and_refuses_other_topics(tmp_path, mosquitto):
    run_appliance = example_run(tmp_path, "mqtt_republisher.py", nodes=nodes(),
                                broker=mosquitto, profile={
                                    "profile": "steps", "levels_ppm": [500.0, 3000.0, 500.0],
                                    "step_s": 2.0, "repeat": False})
    sub = Subscriber(mosquitto, ["#"], client_id="site-dashboard")
    try:
        with run_appliance as run:
            good = run.handler("site_republisher")
            run.frames(3 * STEP_FRAMES, pace_s=PACE_S)
            wait_until(lambda: good.successes == 2)  # alarm ON, alarm OFF
            script = run.script_status("site_republisher")
            assert sub.wait_for(lambda _m: len(sub.on("site/lab1/co2")) == script["values"]
                                and len(sub.on("site/lab1/alarm")) == 2, timeout=30), (
                script, [(m.topic, m.payload, m.retain) for m in sub.messages],
                run.appliance.mqtt.get_status())
            stray_script = run.script_status("stray_republisher")
            good_status = run.status("site_republisher")
            stray_status = run.status("stray_republisher")
        values = [m.json() for m in sub.on("site/lab1/co2")]
        alarms = [m.json() for m in sub.on("site/lab1/alarm")]
        stray_messages = sub.on("plant/co2")
    finally:
        sub.close()
    late = Subscriber(mosquitto, ["site/lab1/alarm"], client_id="late-dashboard")
    try:  # connects after the fact: gets the retained alarm state
        assert late.wait_for(lambda m: len(m) == 1, timeout=30)
        retained = late.messages[0]
    finally:
        late.close()

    # values: at most one per INTERVAL_S of data time, following the profile
    assert len(values) >= 4
    times = [v["timestamp"] for v in values]
    assert all(b - a >= INTERVAL_S for a, b in itertools.pairwise(times))
    assert all(set(v) == {"ppm", "time", "timestamp", "node", "detected"} for v in values)
    assert values[0]["node"] == "concentration" and values[0]["ppm"] < 700
    assert any(2700 <= v["ppm"] <= 3300 for v in values)
    assert values[-1]["ppm"] < 700

    assert [a["state"] for a in alarms] == ["ON", "OFF"]
    assert alarms[0]["trigger"] == "high_co2" and alarms[0]["threshold"] == 2000.0
    assert alarms[0]["value"] >= 2000.0 and alarms[0]["node"] == "concentration"
    assert retained.retain and retained.json()["state"] == "OFF"
    assert good_status["denied_calls"] == 0 and script["denied"] == 0

    # outside the grant: nothing reaches the broker, every attempt is refused and counted
    assert stray_messages == []
    assert stray_script["values"] == 0 and stray_script["denied"] >= 4
    assert stray_status["denied_calls"] == stray_script["denied"]
    assert "publishing to 'plant/co2' is not granted" in stray_status["last_denied"]
    assert "site/lab1/#" in stray_script["last_denied"]
