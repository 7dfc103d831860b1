"""user_scripts/relay_led_control.py on the real appliance with mock pins: a trigger pulses
the granted relay and blinks the granted LED, the clear switches the LED off; a relay the
node is not granted raises PermissionError in the script and is counted."""

from __future__ import annotations

import json
from typing import Any

from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

STEP_FRAMES = 24
PULSE_S = 0.3
RELAY_PIN, PUMP_PIN, LED_PIN = 17, 22, 27


def nodes() -> list[dict[str, Any]]:
    good = docstring_node("relay_led_control.py")
    good["parameters"]["python_config"].update(pulse_s=PULSE_S, blink_on_s=0.04,
                                               blink_off_s=0.04)
    wrong = docstring_node("relay_led_control.py")  # asks for a relay it was not granted
    wrong["id"] = "pump_outputs"
    wrong["parameters"]["python_config"].update(relay="pump", led=None)
    wrong["parameters"]["capabilities"] = {"relays": [], "leds": []}
    return [good, wrong]


def states(pin: Any) -> list[bool]:
    """Every state of a mock pin, the initial one first (it logs changes only)."""
    return [bool(s.state) for s in pin.states]


def test_pulse_blink_clear_and_denied_relay(tmp_path):
    with example_run(tmp_path, "relay_led_control.py", nodes=nodes(),
                     relays={"pump": {"pin": PUMP_PIN}}, profile={
        "profile": "steps", "levels_ppm": [500.0, 3000.0, 500.0], "step_s": 2.0,
        "repeat": False}) as run:
        factory = run.appliance.hal.factory
        relay, pump, led = (factory.pin(p) for p in (RELAY_PIN, PUMP_PIN, LED_PIN))
        good, wrong = run.handler("alarm_outputs"), run.handler("pump_outputs")
        run.frames(2 * STEP_FRAMES - 3, pace_s=0.02)  # to 3000 ppm
        assert good.triggers == 1
        wait_until(lambda: good.successes == 1 and wrong.failures == 1)
        assert run.appliance.hal.led("status").pattern == "blink"
        # still at 3000 ppm: let it blink three times (the script's call reaches the LED
        # later on a loaded machine; the frames alone no longer leave it enough time)
        wait_until(lambda: states(led).count(True) >= 3)
        run.frames(STEP_FRAMES + 3, pace_s=0.02)  # back to 500 ppm: clear
        wait_until(lambda: good.successes == 2 and wrong.successes == 1)
        wait_until(lambda: not relay.state)  # the pulse has ended
        assert run.appliance.hal.led("status").pattern == "off" and not led.state
        script = run.script_status("alarm_outputs")
        denied_script = run.script_status("pump_outputs")
        good_status, wrong_status = run.status("alarm_outputs"), run.status("pump_outputs")
        # the counters are in api.store: a new worker (restart) still has them
        run.appliance.control.call(good.supervisor.restart()).result(timeout=60)
        after_restart = run.script_status("alarm_outputs")

    # relay: one pulse of PULSE_S (timed by the appliance), released
    assert states(relay) == [False, True, False]
    on_for = relay.states[2].timestamp  # a mock pin logs the time since the last change
    # never cut short; late only by a timer's wake-up (generous: a loaded machine)
    assert 0.9 * PULSE_S <= on_for <= 4 * PULSE_S
    # LED: blinking from the trigger to the clear, then steady off
    assert states(led)[:4] == [False, True, False, True] and states(led)[-1] is False
    assert states(led).count(True) >= 3

    assert script["triggers"] == 1 and script["clears"] == 1
    assert script["pulses"] == 1 and script["blinks"] == 1 and script["led_offs"] == 1
    assert script["denied"] == 0 and good_status["denied_calls"] == 0
    assert after_restart["pulses"] == 1 and after_restart["led_offs"] == 1
    store = json.loads((tmp_path / "state/python_actions/alarm_outputs/store.json")
                       .read_text())
    assert store["counters"]["triggers"] == 1

    # the ungranted relay: PermissionError in the script, counted by script and appliance
    assert states(pump) == [False]
    assert wrong_status["denied_calls"] == 1
    assert "relay 'pump' is not granted" in wrong_status["last_denied"]
    assert denied_script["denied"] == 1 and denied_script["pulses"] == 0
    assert "relay 'pump' is not granted" in denied_script["last_denied"]
    assert wrong_status["failures"] == 1 and wrong_status["worker"]["state"] == "running"
