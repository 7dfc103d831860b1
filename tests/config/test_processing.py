"""The processing section's models (firmware/config/processing.py): a node's id, type and
parameters validated against its registered type, connections by their ``from``/``to`` keys,
graph problems as located validation errors, the graph helpers, and the default graph."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from firmware.config.processing import (
    DEFAULT_GRAPH,
    ConnectionSettings,
    GraphSettings,
    NodeSettings,
    ProcessingSettings,
)
from firmware.dsp.nodes.basic import GainParams
from firmware.dsp.nodes.filter import FilterParams
from firmware.dsp.registry import node_types


def errors(model: Any, data: Any) -> list[tuple[str, tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(e["type"], e["loc"], e["msg"]) for e in info.value.errors()]


def test_importing_it_registers_every_node_type() -> None:
    assert set(node_types()) >= {
        "input", "filter", "gain", "differential", "channel_mixer", "channel_selector",
        "peak_finder", "lockin", "concentration", "record",
        "mqtt_action", "relay_action", "led_action", "http_action", "python_action"}


def test_a_node_keeps_its_raw_parameters_and_their_validated_model() -> None:
    node = NodeSettings.model_validate({"id": "bp", "type": "filter", "parameters": {
        "band": "lowpass", "cutoff_hz": 3000}})
    assert node.parameters == {"band": "lowpass", "cutoff_hz": 3000}
    assert isinstance(node.params, FilterParams)
    assert node.params.cutoff_hz == 3000.0 and node.params.order == 4  # defaults filled in
    with pytest.raises(ValidationError):
        node.id = "other"  # type: ignore[misc]  # settings are frozen


@pytest.mark.parametrize("parameters", [None, {}])
def test_missing_or_empty_parameters_are_the_defaults(parameters: Any) -> None:
    node = NodeSettings.model_validate({"id": "g", "type": "gain", "parameters": parameters})
    assert node.parameters == {} and node.params == GainParams()
    assert NodeSettings.model_validate({"id": "g", "type": "gain"}).params == GainParams()


@pytest.mark.parametrize("node_id", ["a b", "", "x" * 65, "g\n", "nodes[0]", "é"])
def test_node_ids_are_short_plain_names(node_id: str) -> None:
    assert [(t, loc) for t, loc, _ in errors(NodeSettings, {"id": node_id, "type": "gain"})] \
        == [("string_pattern_mismatch", ("id",))]


@pytest.mark.parametrize("node_id", ["co2.peak", "A-1_b", "x" * 64, "7"])
def test_node_ids_that_are_accepted(node_id: str) -> None:
    assert NodeSettings.model_validate({"id": node_id, "type": "gain"}).id == node_id


def test_an_unknown_type_names_the_closest_and_every_registered_type() -> None:
    [(kind, loc, message)] = errors(NodeSettings, {"id": "g", "type": "gian",
                                                   "parameters": {"gain_db": 500}})
    assert (kind, loc) == ("unknown_node_type", ("type",))
    assert message == (f"unknown node type 'gian'; did you mean 'gain'? (registered types: "
                       f"{', '.join(sorted(node_types()))})")
    [(_, _, message)] = errors(NodeSettings, {"id": "g", "type": "zzzzzz"})
    assert message.startswith("unknown node type 'zzzzzz' (registered types: ")


def test_parameters_are_validated_by_the_type_and_located_under_parameters() -> None:
    assert errors(NodeSettings, {"id": "g", "type": "gain", "parameters": {"gain_db": 500}}) == [
        ("less_than_equal", ("parameters", "gain_db"), "Input should be less than or equal to "
                                                       "120")]
    assert errors(NodeSettings, {"id": "g", "type": "gain", "parameters": {"gian_db": 1}}) == [
        ("extra_forbidden", ("parameters", "gian_db"), "Extra inputs are not permitted")]
    assert errors(NodeSettings, {"id": "g", "type": "gain", "parameters": [1]})[0][:2] == (
        "dict_type", ("parameters",))
    assert errors(NodeSettings, {"id": "g"}) == [("missing", ("type",), "Field required")]


def test_config_submodel_tells_the_messages_which_params_model_applies() -> None:
    assert NodeSettings.config_submodel("parameters", {"type": "filter"}) is FilterParams
    assert NodeSettings.config_submodel("parameters", {"type": "nope"}) is None
    assert NodeSettings.config_submodel("parameters", {"type": 3}) is None
    assert NodeSettings.config_submodel("parameters", "not a mapping") is None
    assert NodeSettings.config_submodel("id", {"type": "filter"}) is None


def test_a_connection_is_written_with_from_and_to() -> None:
    edge = ConnectionSettings.model_validate({"from": "a", "to": "b"})
    assert (edge.from_, edge.to) == ("a", "b")
    assert edge.model_dump(by_alias=True) == {"from": "a", "to": "b"}
    assert [(t, loc) for t, loc, _ in errors(ConnectionSettings, {"from_": "a", "to": "b"})] == [
        ("missing", ("from",)), ("extra_forbidden", ("from_",))]


def test_graph_problems_are_validation_errors_at_the_node_or_connection() -> None:
    data = {"nodes": [{"id": "input", "type": "input"}, {"id": "g", "type": "gain"},
                      {"id": "g", "type": "gain"}, {"id": "lost", "type": "gain"}],
            "connections": [{"from": "input", "to": "g"}, {"from": "g", "to": "nope"}]}
    found = errors(GraphSettings, data)
    assert [(kind, loc) for kind, loc, _ in found] == [
        ("graph", ("nodes", 2, "id")), ("graph", ("connections", 1, "to")),
        ("graph", ("nodes", 3))]
    assert found[0][2].startswith("duplicate node id 'g'")
    assert found[1][2].startswith("connection to unknown node id 'nope'")
    assert found[2][2].startswith("node 'lost' (gain) has no input")


def test_a_node_error_stops_the_graph_check() -> None:
    """A node that fails validation is no node of the graph: no graph problem on top."""
    data = {"nodes": [{"id": "input", "type": "input"}, {"id": "g", "type": "gian"}],
            "connections": [{"from": "input", "to": "g"}]}
    assert [kind for kind, _, _ in errors(GraphSettings, data)] == ["unknown_node_type"]


GRAPH = {
    "nodes": [{"id": "peak", "type": "peak_finder"}, {"id": "diff", "type": "differential"},
              {"id": "input", "type": "input"}, {"id": "rec", "type": "record"}],
    "connections": [{"from": "diff", "to": "peak"}, {"from": "input", "to": "diff"},
                    {"from": "input", "to": "rec"}],
}


def test_graph_helpers() -> None:
    graph = GraphSettings.model_validate(GRAPH)
    assert graph.node("diff").type == "differential"
    with pytest.raises(KeyError, match="no node 'nope' in the graph"):
        graph.node("nope")
    assert graph.parent_map() == {"peak": "diff", "diff": "input", "rec": "input"}
    assert graph.topological_order() == ["input", "diff", "peak", "rec"]
    assert graph.upstream_chain("peak") == ["input", "diff"]
    assert graph.upstream_chain("input") == []
    with pytest.raises(KeyError, match="no node 'nope'"):
        graph.upstream_chain("nope")


def test_connections_default_to_none() -> None:
    graph = GraphSettings.model_validate({"nodes": [{"id": "input", "type": "input"}]})
    assert graph.connections == [] and graph.topological_order() == ["input"]


def test_processing_defaults_and_limits() -> None:
    settings = ProcessingSettings()
    assert settings.status_interval_s == 5.0 and settings.fuse_linear_chains is True
    assert settings.default_graph == GraphSettings.model_validate(DEFAULT_GRAPH)
    assert settings.default_graph.topological_order() == [n["id"] for n in DEFAULT_GRAPH["nodes"]]
    for bad in (0, -1, float("inf"), float("nan"), "soon"):
        with pytest.raises(ValidationError):
            ProcessingSettings(status_interval_s=bad)

