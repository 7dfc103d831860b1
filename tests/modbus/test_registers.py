"""The register map of a config: fixed addresses, graph order, the printed forms."""

from __future__ import annotations

import pytest

from firmware.cli import main
from firmware.errors import ConfigError
from firmware.modbus.registers import (
    ACTION_BASE,
    ACTION_BLOCK,
    NODE_BASE,
    NODE_BLOCK,
    ActionEntry,
    RegisterMap,
)
from tests.conftest import graph_node
from tests.paths import REPO


def test_the_default_config_maps_its_computing_nodes_and_actions_in_graph_order(make_doc):
    register_map = RegisterMap.from_config(make_doc().config)
    assert register_map.nodes == [("peak_finder", "peak"), ("concentration", "concentration")]
    assert [a.action_id for a in register_map.actions] == ["mqtt", "alarm_relay",
                                                           "status_led"]
    assert register_map.actions[0].triggers == ("high_gas", "resonance_shift",
                                                "data_timeout_concentration")
    assert register_map.actions[0].timeout_triggers == (("data_timeout_concentration",
                                                          "concentration"),)
    assert register_map.node_address(1) == NODE_BASE + NODE_BLOCK
    assert register_map.input_ranges() == [(0, 16), (NODE_BASE, NODE_BASE + 2 * NODE_BLOCK),
                                           (ACTION_BASE, ACTION_BASE + 3 * ACTION_BLOCK)]
    assert register_map.coil_addresses() == {0, 100, 101, 102, 200, 201, 202}


def test_a_node_added_after_the_others_moves_no_address(make_doc):
    def add(data):
        data["processing"]["default_graph"]["nodes"].append(
            {"id": "second", "type": "concentration",
             "parameters": {**graph_node(data, "concentration")["parameters"]}})
        data["processing"]["default_graph"]["connections"].append(
            {"from": "peak_finder", "to": "second"})

    before = RegisterMap.from_config(make_doc().config)
    after = RegisterMap.from_config(make_doc(add).config)
    assert after.nodes[:2] == before.nodes
    assert after.nodes[2] == ("second", "concentration")
    assert [a.action_id for a in after.actions] == [a.action_id for a in before.actions]


def test_more_nodes_than_the_map_has_room_for_is_a_config_error():
    with pytest.raises(ConfigError, match="room for 64"):
        RegisterMap([], [ActionEntry(f"a{i}", "relay_action", (), ()) for i in range(65)])


def test_pafw_modbus_map_prints_text_and_markdown(capsys, state_env, monkeypatch):
    for key, value in state_env.items():
        monkeypatch.setenv(key, value)
    assert main(["modbus", "map"]) == 0
    text = capsys.readouterr().out
    assert "concentration.concentration_x100" in text
    assert f"{NODE_BASE + NODE_BLOCK:>7}" in text
    assert main(["modbus", "map", "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("| table | address |")
    assert "| coil | 0 | bit | `acknowledge_all` |" in markdown


def test_the_example_map_in_docs_is_the_default_configs(make_doc):
    text = (REPO / "docs" / "modbus.md").read_text(encoding="utf-8")
    start = text.index("keeps it equal -->\n") + len("keeps it equal -->\n")
    end = text.index("<!-- end of the generated map -->")
    expected = RegisterMap.from_config(make_doc().config).format_markdown()
    assert text[start:end] == expected, "regenerate it: pafw modbus map --markdown"
