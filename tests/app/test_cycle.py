"""The measurement cycle: outputs switched per phase through the HAL on mock pins, phases
stamped on results, averages per measure phase, and a safe stop on every fault.

The first tests feed the runner from a small producer thread that does what the DSP thread
does for it (publish results stamped with the current mark, then call the tap); the last
ones run the whole appliance on the simulator with a real Mosquitto.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import pytest
import yaml

from firmware.actions.event_log import ActionEventLog
from firmware.app.appliance import Appliance
from firmware.app.cycle import CycleRunner
from firmware.config.cycle import CycleSettings
from firmware.config.loader import default_config_text, load_config
from firmware.hal.backend import mock_factory
from firmware.hal.hal import Hal
from firmware.hal.settings import HalSettings
from firmware.state import ComputingResult, ComputingState
from tests.conftest import graph_node
from tests.mqtt_broker import Broker, Subscriber
from tests.waiting import wait_until

PINS = {"pump": 17, "valve_a": 22, "valve_b": 23}
LED_PIN = 27


def make_hal(**relay_options: Any) -> Hal:
    return Hal(HalSettings.model_validate({
        "backend": "mock",
        "relays": {name: {"pin": pin, **relay_options.get(name, {})}
                   for name, pin in PINS.items()},
        "leds": {"busy": {"pin": LED_PIN}},
    }), factory=mock_factory())


def cycle(phases: list[dict[str, Any]], **options: Any) -> CycleSettings:
    return CycleSettings.model_validate({"enabled": True, "phases": phases, **options})


class Producer:
    """Publishes a concentration result every few ms stamped with the current mark, then
    calls the tap: what the DSP thread and its frame hooks do. Keeps what it published."""

    def __init__(self, state: ComputingState, runner: CycleRunner) -> None:
        self.state, self.runner = state, runner
        self.published: list[ComputingResult] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            phase = self.state.marks.phase
            result = ComputingResult("co2", "concentration", time.time(), time.monotonic(),
                                     sequence, True, amplitude=0.01 * (sequence % 7),
                                     concentration_ppm=400.0 + sequence % 5, phase=phase)
            self.state.publish(result)
            self.published.append(result)
            self.runner.tap()
            time.sleep(0.003)

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def runs_of(results: list[ComputingResult], phase: str) -> list[list[ComputingResult]]:
    """The results stamped ``phase``, split at every change of stamp."""
    runs: list[list[ComputingResult]] = []
    previous = None
    for result in results:
        if result.phase == phase:
            if previous != phase:
                runs.append([])
            runs[-1].append(result)
        previous = result.phase
    return runs


def pin_states(hal: Hal, pin: int) -> list[bool]:
    """The pin's driven levels in order, repeats collapsed."""
    states: list[bool] = []
    for entry in hal.factory.pin(pin).states:
        level = bool(entry.state)
        if not states or states[-1] != level:
            states.append(level)
    return states


def switches(hal: Hal, pin: int) -> list[tuple[float, bool]]:
    """The pin's changes: (seconds since the change before, new level); the mock pin logs
    each change with the time since the previous one."""
    return [(entry.timestamp, bool(entry.state)) for entry in hal.factory.pin(pin).states]


PHASES = [
    {"name": "purge", "duration_s": 0.15, "relays": {"pump": True}},
    {"name": "measure", "duration_s": 0.25, "measure": True, "leds": {"busy": "on"}},
    {"name": "idle", "duration_s": 0.1},
]


def test_phases_drive_outputs_per_inlet_stamp_results_and_average_each_measure_phase() -> None:
    state, events = ComputingState(), ActionEventLog()
    averages: list[list[ComputingResult]] = []
    settings = cycle(PHASES, repeat=1, inlets=[{"name": "room", "valve": "valve_a"},
                                               {"name": "outdoor", "valve": "valve_b"}])
    with make_hal() as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             events=events, on_average=averages.append, poll_s=0.01)
        with Producer(state, runner) as producer:
            runner.start()
            wait_until(lambda: runner.get_status()["state"] == "finished", what="the end")
        status = runner.get_status()
        assert status["cycles_completed"] == 1 and status["reason"] is None
        # each inlet's valve open for its own phases only, one after the other
        assert pin_states(hal, PINS["valve_a"]) == [False, True, False]
        assert pin_states(hal, PINS["valve_b"]) == [False, True, False]
        # the pump on in each purge, the LED on in each measure phase
        assert pin_states(hal, PINS["pump"]) == [False, True, False, True, False]
        assert pin_states(hal, LED_PIN) == [False, True, False, True, False]
    # results carry the phases in order; the mark is cleared at the end
    stamps = [r.phase for r in producer.published if r.phase is not None]
    order = [p for i, p in enumerate(stamps) if i == 0 or stamps[i - 1] != p]
    assert order == ["purge", "measure", "idle", "purge", "measure", "idle"]
    assert state.marks.phase is None
    # one average per measure phase, over exactly the results stamped with it
    runs = runs_of(producer.published, "measure")
    assert [a[0].average.inlet for a in averages if a[0].average] == ["room", "outdoor"]
    for (average,), run in zip(averages, runs, strict=True):
        values = [r.concentration_ppm for r in run]
        assert average.kind == "cycle_average" and average.phase == "measure"
        assert average.node_id == f"co2.cycle_average.{average.average.inlet}"
        assert average.source_node_id == "co2"
        assert average.average.n == len(run) > 1
        assert average.concentration_ppm == pytest.approx(fmean(values))
        assert average.average.concentration_std == pytest.approx(stdev(values))
        assert average.amplitude == pytest.approx(fmean(r.amplitude for r in run))
    kinds = [e.kind for e in events.entries() if e.action_id == "cycle"]
    assert kinds == ["cycle_started", "cycle_average", "cycle_average", "cycle_finished"]
    assert set(status["averages"]) == {"co2.cycle_average.room", "co2.cycle_average.outdoor"}


def test_the_status_tells_phase_inlet_and_time_left() -> None:
    state = ComputingState()
    settings = cycle([{"name": "measure", "duration_s": 60, "measure": True},
                      {"name": "idle", "duration_s": 1}],
                     inlets=[{"name": "room", "valve": "valve_a"}])
    with make_hal() as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"})
        runner.start()
        try:
            wait_until(lambda: runner.get_status()["phase"] == "measure", what="measure")
            status = runner.get_status()
            assert status["state"] == "running" and status["inlet"] == "room"
            assert status["measure"] is True and status["cycle"] == 1
            assert 0 < status["time_left_s"] <= 60
            assert status["phases"][0] == {"name": "measure", "duration_s": 60.0,
                                           "measure": True}
            assert state.marks.phase == "measure"
            json.dumps(status, allow_nan=False)
        finally:
            runner.stop()


def test_relays_keep_their_minimum_off_time() -> None:
    state = ComputingState()
    settings = cycle([{"name": "purge", "duration_s": 1.0, "relays": {"pump": True}},
                      {"name": "measure", "duration_s": 0.05, "measure": True}], repeat=2)
    with make_hal(pump={"min_off_s": 0.4}) as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             poll_s=0.01)
        runner.start()
        # the second purge asks for the pump 0.05 s after it went off: the HAL defers it
        # (a deferred switch still happens: the purge lasts longer than min_off_s)
        wait_until(lambda: len(switches(hal, PINS["pump"])) >= 4, what="second switch on")
        changes = switches(hal, PINS["pump"])
        assert [level for _, level in changes[:4]] == [False, True, False, True]
        assert changes[3][0] >= 0.4  # on again no sooner than min_off_s after the off
        assert hal.relay("pump").get_status()["deferred_count"] >= 1
        runner.stop()


def test_stop_puts_every_driven_output_off_at_once_ignoring_minimum_times() -> None:
    state, events = ComputingState(), ActionEventLog()
    settings = cycle([{"name": "measure", "duration_s": 60, "measure": True,
                       "relays": {"pump": True}, "leds": {"busy": "blink"}}])
    with make_hal(pump={"min_on_s": 300}) as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             events=events)
        runner.start()
        wait_until(lambda: hal.relay("pump").is_on, what="the pump on")
        runner.stop("appliance stopping")
        assert not runner.running
        assert not hal.factory.pin(PINS["pump"]).state
        assert not hal.factory.pin(LED_PIN).state and hal.led("busy").pattern == "off"
        status = runner.get_status()
        assert status["state"] == "stopped" and status["reason"] == "appliance stopping"
        assert status["phase"] is None and status["time_left_s"] is None
        assert state.marks.phase is None
        stopped = [e for e in events.entries() if e.kind == "cycle_stopped"]
        assert stopped[-1].data == {"reason": "appliance stopping", "faulted": False}


def test_halt_from_a_fatal_path_stops_without_waiting_and_goes_safe() -> None:
    state = ComputingState()
    settings = cycle([{"name": "measure", "duration_s": 60, "measure": True,
                       "relays": {"pump": True}}])
    with make_hal(pump={"min_on_s": 300}) as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             poll_s=0.01)
        runner.start()
        wait_until(lambda: hal.relay("pump").is_on, what="the pump on")
        runner.halt("safe state (signal or fatal error)")
        wait_until(lambda: runner.get_status()["state"] == "stopped", what="the stop")
        assert runner.get_status()["reason"] == "safe state (signal or fatal error)"
        assert not hal.factory.pin(PINS["pump"]).state


def test_a_relay_that_cannot_be_driven_stops_the_cycle_safely() -> None:
    state, events = ComputingState(), ActionEventLog()
    settings = cycle([{"name": "purge", "duration_s": 0.1, "relays": {"valve_b": True}},
                      {"name": "measure", "duration_s": 60, "measure": True,
                       "relays": {"pump": True, "valve_b": True}}])
    with make_hal() as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             events=events)
        hal.relay("pump").close()  # the pump's pin is gone: switching it raises
        runner.start()
        wait_until(lambda: runner.get_status()["state"] == "faulted", what="the fault")
        status = runner.get_status()
        assert status["reason"] == "relay 'pump' is closed"
        assert not hal.factory.pin(PINS["valve_b"]).state  # on in purge, safe now
        assert state.marks.phase is None
        assert events.entries()[-1].data == {"reason": "relay 'pump' is closed",
                                             "faulted": True}


def test_an_analyzer_fault_stops_the_cycle_safely() -> None:
    state = ComputingState()
    fault: list[str] = []
    settings = cycle([{"name": "measure", "duration_s": 60, "measure": True,
                       "relays": {"pump": True}}])
    with make_hal() as hal:
        runner = CycleRunner(settings, hal=hal, state=state, nodes={"co2": "concentration"},
                             fault=lambda: fault[0] if fault else None, poll_s=0.01)
        runner.start()
        wait_until(lambda: hal.relay("pump").is_on, what="the pump on")
        fault.append("audio source closed")
        wait_until(lambda: runner.get_status()["state"] == "faulted", what="the fault")
        assert runner.get_status()["reason"] == "analyzer fault: audio source closed"
        assert not hal.factory.pin(PINS["pump"]).state


# -- the whole appliance ------------------------------------------------------------------


def with_cycle(broker: Broker):
    def change(data: dict[str, Any]) -> None:
        data["mqtt"].update(enabled=True, host=broker.host, port=broker.port)
        data["hal"]["relays"].update({"pump": {"pin": 24}, "valve_a": {"pin": 22},
                                      "valve_b": {"pin": 23}})
        data["cycle"] = {"enabled": True, "repeat": 1, "phases": [
            {"name": "purge", "duration_s": 0.3, "relays": {"pump": True}},
            {"name": "measure", "duration_s": 0.8, "measure": True},
            {"name": "idle", "duration_s": 0.2},
        ], "inlets": [{"name": "room", "valve": "valve_a"},
                      {"name": "outdoor", "valve": "valve_b"}]}
        mqtt = graph_node(data, "mqtt")["parameters"]
        mqtt["triggers"] = [
            {"type": "threshold", "name": "average_high", "kind": "concentration",
             "above": 1.0, "evaluate": "cycle_average"},
            {"type": "threshold", "name": "measured_high", "kind": "concentration",
             "above": 1.0, "evaluate": "measure_phase"},
        ]
    return change


def test_the_appliance_runs_the_cycle_and_publishes_averages(make_doc, mosquitto) -> None:
    doc = make_doc(with_cycle(mosquitto))
    root = f"pafw/{doc.config.device.id}"
    subscriber = Subscriber(mosquitto, [f"{root}/cycle_average/#", f"{root}/events",
                                        "homeassistant/sensor/#"])
    appliance = Appliance(doc, realtime=True)
    try:
        appliance.start()
        assert appliance.cycle is not None
        wait_until(lambda: appliance.cycle is not None
                   and appliance.cycle.get_status()["state"] == "finished", what="the end")
        assert subscriber.wait_for(lambda m: len([x for x in m if "cycle_average/" in x.topic])
                                   >= 2, timeout=30)
        # one message per inlet on its topic, with mean, std and n
        room = subscriber.on(f"{root}/cycle_average/room")[0].json()
        assert room["inlet"] == "room" and room["phase"] == "measure" and room["cycle"] == 1
        result = room["results"]["concentration"]
        assert result["kind"] == "cycle_average" and result["concentration_ppm"] > 0
        assert result["average"]["n"] >= 2 and result["average"]["inlet"] == "room"
        # Home Assistant is told of one sensor per averaged node and inlet
        config_topic = ("homeassistant/sensor/" + doc.config.device.id
                        + "/concentration_cycle_average_outdoor/config")
        assert subscriber.wait_for(lambda m: any(x.topic == config_topic for x in m), 30)
        sensor = next(x for x in subscriber.messages if x.topic == config_topic).json()
        assert sensor["state_topic"] == f"{root}/cycle_average/outdoor"
        # the trigger on averages fired once per inlet (each its own state), with the inlet;
        # the measure-phase trigger fired on a result captured in the measure phase
        assert subscriber.wait_for(
            lambda m: sum(x.topic == f"{root}/events" and x.json().get("trigger_name")
                          == "average_high" for x in m) >= 2, timeout=30)
        events = [x.json() for x in subscriber.on(f"{root}/events")]
        average = [e for e in events if e.get("trigger_name") == "average_high"]
        assert sorted(e["data"]["inlet"] for e in average) == ["outdoor", "room"]
        assert all(e["data"]["phase"] == "measure" and e["data"]["n"] >= 2 for e in average)
        measured = [e for e in events if e.get("trigger_name") == "measured_high"]
        assert measured and measured[0]["data"]["phase"] == "measure"
        # the action's history keeps the averages whole
        handler = next(h for h in appliance.handlers if h.node_id == "mqtt")
        kept = [e for e in handler.history.recent() if e.kind == "cycle_average"]
        assert {e.data["node_id"] for e in kept} == {"concentration.cycle_average.room",
                                                     "concentration.cycle_average.outdoor"}
        status = appliance.get_status()["cycle"]
        assert status["state"] == "finished" and status["averages_published"] == 2
        json.dumps(appliance.get_status(), allow_nan=False)
    finally:
        appliance.stop()
        subscriber.close()
    assert not appliance.hal or appliance.hal.closed


def test_stopping_the_appliance_stops_the_cycle_with_outputs_safe(make_doc, mosquitto) -> None:
    def long_cycle(data: dict[str, Any]) -> None:
        with_cycle(mosquitto)(data)
        data["cycle"]["phases"][0] = {"name": "purge", "duration_s": 600,
                                      "relays": {"pump": True}}
    appliance = Appliance(make_doc(long_cycle), realtime=True)
    assert appliance.hal is not None
    pin = appliance.hal.factory.pin(24)
    try:
        appliance.start()
        wait_until(lambda: bool(pin.state), what="the purge relay on")
    finally:
        appliance.stop()
    assert not pin.state
    assert appliance.cycle is not None
    status = appliance.cycle.get_status()
    assert status["state"] == "stopped" and status["reason"] == "appliance stopping"


def test_a_config_change_to_the_cycle_stops_it_safely(tmp_path: Path, state_env) -> None:
    data = yaml.safe_load(default_config_text())
    data["mqtt"]["enabled"] = False
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
    graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
    data["hal"]["relays"]["pump"] = {"pin": 24}
    data["cycle"] = {"enabled": True, "phases": [
        {"name": "measure", "duration_s": 600, "measure": True, "relays": {"pump": True}}]}
    path = tmp_path / "pafw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    appliance = Appliance(load_config(path, env=state_env), realtime=True)
    assert appliance.hal is not None and appliance.cycle is not None
    pin = appliance.hal.factory.pin(24)
    try:
        appliance.start()
        wait_until(lambda: bool(pin.state), what="the pump on")
        data["cycle"]["phases"][0]["duration_s"] = 300
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        wait_until(lambda: appliance.cycle is not None
                   and appliance.cycle.get_status()["state"] == "stopped", what="the stop")
        status = appliance.cycle.get_status()
        assert status["reason"] == "config changed the cycle or hal section: restart to " \
            "apply it"
        assert not pin.state
    finally:
        appliance.stop()


PHASES_SCRIPT = '''
class Phases(CustomPythonAction):
    def __init__(self, api):
        super().__init__(api)
        self.phases = []
        self.averages = {}
        self.triggers = []

    def on_update(self, computing_data):
        for node_id, result in computing_data.items():
            if result["kind"] == "cycle_average":
                self.averages[node_id] = {"n": result["average"]["n"],
                                          "phase": result["phase"]}
            elif result["phase"] is not None and result["phase"] not in self.phases:
                self.phases.append(result["phase"])

    def on_trigger(self, trigger_type, data):
        self.triggers.append({"name": data["trigger_name"], "phase": data["data"]["phase"],
                              "n": data["data"].get("n")})
        return True

    def get_status(self):
        return {"phases": self.phases, "averages": self.averages, "triggers": self.triggers}
'''


def test_python_actions_see_the_phase_and_the_averages(make_doc, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "phases.py").write_text(PHASES_SCRIPT)

    def change(data: dict[str, Any]) -> None:
        data["mqtt"]["enabled"] = False
        graph = data["processing"]["default_graph"]
        graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "mqtt_action"]
        graph["connections"] = [c for c in graph["connections"] if c["to"] != "mqtt"]
        graph["nodes"].append({"id": "py", "type": "python_action", "parameters": {
            "python_script_path": "/user_scripts/phases.py", "python_class_name": "Phases",
            "monitored_nodes": ["concentration"], "python_timeout_ms": 5000,
            "triggers": [{"type": "threshold", "name": "average_high",
                          "kind": "concentration", "above": 1.0,
                          "evaluate": "cycle_average"}]}})
        graph["connections"].append({"from": "concentration", "to": "py"})
        data["paths"]["scripts_dir"] = str(scripts)
        data["scripts"]["worker_user"] = None  # the test interpreter is not readable by nobody
        data["cycle"] = {"enabled": True, "repeat": 1, "phases": [
            {"name": "settle", "duration_s": 0.3},
            {"name": "measure", "duration_s": 0.8, "measure": True},
            {"name": "idle", "duration_s": 0.3}]}

    appliance = Appliance(make_doc(change), realtime=True)
    py = next(h for h in appliance.handlers if h.node_id == "py")

    def script_status() -> dict[str, Any]:
        return appliance.control.call(py.supervisor.call("get_status")).result(10)

    try:
        appliance.start()
        wait_until(lambda: appliance.cycle is not None
                   and appliance.cycle.get_status()["state"] == "finished", what="the end")
        wait_until(lambda: script_status()["triggers"] and "idle" in script_status()["phases"],
                   what="the script to see the average's trigger and the idle phase")
        seen = script_status()
        assert seen["phases"] == ["settle", "measure", "idle"]
        average = seen["averages"]["concentration.cycle_average"]
        assert average["phase"] == "measure" and average["n"] >= 2
        assert seen["triggers"] == [{"name": "average_high", "phase": "measure",
                                     "n": average["n"]}]
    finally:
        appliance.stop()
