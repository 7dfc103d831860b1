"""The cycle section: valid cycles load, every mistake is an error at its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config.cycle import CycleSettings
from firmware.config.loader import default_config_text, load_config
from firmware.errors import ConfigError

ENV = {"PAFW_STATE_DIR": "/tmp/pafw-test/state", "PAFW_SCRIPTS_DIR": "/tmp/pafw-test/scripts",
       "PAFW_CACHE_DIR": "/tmp/pafw-test/cache"}

HAL = """\
hal:
  backend: mock
  relays:
    alarm: {pin: 5}
    pump: {pin: 17}
    valve_a: {pin: 22}
    valve_b: {pin: 23}
  leds:
    status: {pin: 26}
    busy: {pin: 27}
"""

CYCLE = """\
cycle:
  enabled: true
  repeat: 2
  phases:
    - {name: purge, duration_s: 30, relays: {pump: true}}
    - {name: settle, duration_s: 10}
    - {name: measure, duration_s: 60, measure: true, leds: {busy: blink}}
    - {name: idle, duration_s: 5}
  inlets:
    - {name: room, valve: valve_a}
    - {name: outdoor, valve: valve_b}
"""
RELAYS = "(known: alarm, pump, valve_a, valve_b)"


def config_text(cycle: str) -> str:
    """The default config with the hal section above and ``cycle`` for its (last) one."""
    head, _, rest = default_config_text().partition("\nhal:\n")
    _, _, tail = rest.partition("\nmqtt:")
    tail, _, _ = tail.partition("\ncycle:")
    return f"{head}\n{HAL}\nmqtt:{tail}\n{cycle}"


def load(tmp_path: Path, cycle: str):
    return load_config(tmp_path / "cycle.yaml", text=config_text(cycle), env=ENV)


def problems(tmp_path: Path, cycle: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, cycle)
    return caught.value.problems


def line_of(cycle: str, needle: str) -> int:
    return next(i for i, t in enumerate(config_text(cycle).splitlines(), 1) if needle in t)


def test_a_full_cycle_loads(tmp_path: Path) -> None:
    doc = load(tmp_path, CYCLE)
    cycle = doc.config.cycle
    assert [p.name for p in cycle.phases] == ["purge", "settle", "measure", "idle"]
    assert cycle.measure_phases == frozenset({"measure"})
    assert cycle.phases[2].leds == {"busy": "blink"}
    on_off = load(tmp_path, CYCLE.replace("busy: blink", "busy: on")).config.cycle
    assert on_off.phases[2].leds == {"busy": "on"}  # YAML's boolean ``on``
    assert cycle.driven_relays() == ["pump", "valve_a", "valve_b"]
    assert cycle.driven_leds() == ["busy"]
    assert cycle.repeat == 2


def test_off_by_default_and_a_disabled_cycle_is_not_checked() -> None:
    assert load_config(None, env=ENV).config.cycle.enabled is False
    # a disabled draft may name outputs that do not exist yet
    CycleSettings.model_validate({"phases": [{"name": "m", "duration_s": 1,
                                              "relays": {"nothing": True}}]})


@pytest.mark.parametrize(("edit", "needle", "message"), [
    (("pump: true", "pmp: true"), "pmp: true",
     "cycle.phases[0].relays.pmp: no relay 'pmp' in hal.relays " + RELAYS),
    (("busy: blink", "bsy: blink"), "bsy: blink",
     "cycle.phases[2].leds.bsy: no LED 'bsy' in hal.leds (known: busy, status)"),
    (("valve: valve_b", "valve: valve_c"), "valve: valve_c",
     "cycle.inlets[1].valve: no relay 'valve_c' in hal.relays " + RELAYS),
    (("{pump: true}", "{valve_a: true}"), "valve_a: true}",
     "cycle.phases[0].relays.valve_a: relay 'valve_a' is the valve of inlet 'room': the "
     "cycle opens it for that inlet's phases, a phase may not set it too"),
    (("duration_s: 10", "duration_s: 0"), "duration_s: 0",
     "cycle.phases[1].duration_s: Input should be greater than 0"),
    (("busy: blink", "busy: fast"), "busy: fast",
     "cycle.phases[2].leds.busy: Input should be 'on', 'off', 'blink' or 'heartbeat' "
     "(got 'fast')"),
    (("duration_s: 5}", "duration_s: 5, colour: red}"), "colour: red",
     "cycle.phases[3].colour"),
    (("repeat: 2", "repeat: 0"), "repeat: 0",
     "cycle.repeat: Input should be greater than or equal to 1"),
])
def test_mistakes_are_located(tmp_path: Path, edit: tuple[str, str], needle: str,
                              message: str) -> None:
    cycle = CYCLE.replace(*edit)
    found = problems(tmp_path, cycle)
    line = line_of(cycle, needle)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'cycle.yaml'}:{line}:"), found
    assert message in found[0]


def test_a_cycle_needs_a_measure_phase(tmp_path: Path) -> None:
    found = problems(tmp_path, CYCLE.replace(", measure: true", ""))
    assert len(found) == 1
    assert "cycle: " in found[0]
    assert ("an enabled cycle needs a phase with 'measure: true' (phases: purge, settle, "
            "measure, idle)") in found[0]


def test_phase_and_inlet_names_are_unique(tmp_path: Path) -> None:
    found = problems(tmp_path, CYCLE.replace("name: idle", "name: settle"))
    assert any("phase names must be unique, settle appear" in p for p in found), found
    found = problems(tmp_path, CYCLE.replace("name: outdoor", "name: room"))
    assert any("inlet names must be unique, room appear" in p for p in found), found


def test_averaged_nodes_must_be_computing_nodes(tmp_path: Path) -> None:
    cycle = CYCLE.replace("  repeat: 2\n", "  repeat: 2\n  nodes: [concentration, bandpass]\n")
    found = problems(tmp_path, cycle)
    assert len(found) == 1
    assert found[0].startswith(
        f"{tmp_path / 'cycle.yaml'}:{line_of(cycle, 'nodes: [concentration, bandpass]')}:"), found
    assert "cycle.nodes[1]: node 'bandpass' is a filter node" in found[0], found
    assert "a cycle averages concentration, peak or lockin nodes (concentration, " \
        "peak_finder) (got 'bandpass')" in found[0]
    doc = load(tmp_path, CYCLE.replace("  repeat: 2\n", "  repeat: 2\n  nodes: [peak_finder]\n"))
    assert doc.config.cycle.nodes == ["peak_finder"]


def test_an_action_may_not_switch_an_output_the_cycle_drives(tmp_path: Path) -> None:
    cycle = CYCLE.replace("{pump: true}", "{pump: true, alarm: true}").replace(
        "{busy: blink}", "{status: on}")
    found = problems(tmp_path, cycle)
    text = config_text(cycle)
    relay_line = next(i for i, t in enumerate(text.splitlines(), 1) if "relay: alarm" in t)
    led_line = next(i for i, t in enumerate(text.splitlines(), 1) if "led: status" in t)
    assert found == [
        f"{tmp_path / 'cycle.yaml'}:{relay_line}:11: processing.default_graph.nodes"
        "[alarm_relay].parameters.relay: relay 'alarm' is driven by the measurement cycle "
        "(cycle section): an action may not switch it too (got 'alarm')",
        f"{tmp_path / 'cycle.yaml'}:{led_line}:11: processing.default_graph.nodes"
        "[status_led].parameters.led: LED 'status' is driven by the measurement cycle "
        "(cycle section): an action may not switch it too (got 'status')",
    ]
