"""Pydantic errors worded as config problems (firmware/config/messages.py): key paths cleaned of
union tags, the bad value rendered, "did you mean" hints against the right model's keys, and
one (path, message) per error of a real ``Config`` validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from firmware.config.messages import clean_loc, describe_value, keys_at, validation_problems
from firmware.config.models import Config

INPUT = {"id": "input", "type": "input"}


def problems(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    return validation_problems(info.value, data, Config)


def graph(*nodes: dict[str, Any], connections: list[dict[str, str]] | None = None) -> Any:
    node_list = [INPUT, *nodes]
    edges = connections if connections is not None else [
        {"from": "input", "to": n["id"]} for n in nodes]
    return {"processing": {"default_graph": {"nodes": node_list, "connections": edges}}}


NODE = ("processing", "default_graph", "nodes")


@pytest.mark.parametrize(("value", "text"), [
    (None, "null"), (True, "true"), (False, "false"), ({"a": 1}, "a mapping"),
    ([1, 2], "a list"), ("abc", "'abc'"), (20, "20"), (1.5, "1.5"),
    ("x" * 100, "'" + "x" * 56 + "..."), (10 ** 5000, "a very long number"),
], ids=lambda v: type(v).__name__)
def test_describe_value(value: Any, text: str) -> None:
    assert describe_value(value) == text
    assert len(describe_value(value)) <= 60


def test_clean_loc_drops_what_is_not_a_key_of_the_data() -> None:
    data = {"acquisition": {"simulator": {"concentration": {"profile": "steps",
                                                            "levels_ppm": [1, -5]}}}}
    loc = ("acquisition", "simulator", "concentration", "steps", "levels_ppm", 1)
    assert clean_loc(loc, data) == ("acquisition", "simulator", "concentration", "levels_ppm", 1)
    # a missing key is kept when it is the last part (what is missing), an index out of range
    # and a non-key in a list are dropped
    assert clean_loc(("device", "id"), {"device": {}}) == ("device", "id")
    assert clean_loc(("a", 5), {"a": [1]}) == ("a",)
    assert clean_loc(("a", "x"), {"a": [1]}) == ("a",)
    assert clean_loc(("a", 0, "b"), {"a": [{"b": 1}]}) == ("a", 0, "b")
    assert clean_loc((), {"a": 1}) == ()


def test_keys_at_walks_the_models_along_the_data() -> None:
    assert keys_at(Config, {}, ()) == list(Config.model_fields)
    assert keys_at(Config, {}, ("device",)) == ["id", "name", "gas"]
    # aliases: a connection's keys are from/to
    assert keys_at(Config, {}, (*NODE[:2], "connections", 0)) == ["from", "to"]
    # a node's parameters: the Params model of the node's type
    data = graph({"id": "g", "type": "gain"})
    assert keys_at(Config, data, (*NODE, 1, "parameters")) == ["gain_db"]
    assert keys_at(Config, data, (*NODE, 0, "parameters")) == []
    # a union picks the member the data fits (the profile tag decides)
    ramp = {"acquisition": {"simulator": {"concentration": {"profile": "ramp"}}}}
    assert keys_at(Config, ramp, ("acquisition", "simulator", "concentration")) == [
        "profile", "start_ppm", "end_ppm", "duration_s", "repeat"]
    # dict values: the value model (a relay)
    assert "pin" in (keys_at(Config, {}, ("hal", "relays", "alarm")) or [])


@pytest.mark.parametrize("path", [("nope",), ("values",), ("device", "id"),
                                  (*NODE, 0, "parameters")])
def test_keys_at_is_none_where_no_model_applies(path: tuple[str | int, ...]) -> None:
    data = graph({"id": "x", "type": "no_such_type"})
    data["processing"]["default_graph"]["nodes"][0] = {"id": "input", "type": "unknown"}
    assert keys_at(Config, data, path) is None


def test_unknown_key_with_hint_and_the_allowed_keys() -> None:
    assert problems({"devce": {}}) == [(("devce",), (
        "unknown key 'devce'; did you mean 'device'? (expected one of: device, acquisition, "
        "processing, paths, logging, hal, mqtt, scripts, web, modbus, selftest, values)"))]
    assert problems({"device": {"zzz": 1}}) == [(("device", "zzz"), (
        "unknown key 'zzz' (expected one of: id, name, gas)"))]


def test_unknown_key_in_a_node_parameters_and_in_a_mapping_taking_none() -> None:
    assert problems(graph({"id": "g", "type": "gain", "parameters": {"gain": 3}})) == [
        ((*NODE, 1, "parameters", "gain"),
         "unknown key 'gain'; did you mean 'gain_db'? (expected one of: gain_db)")]
    data = graph()
    data["processing"]["default_graph"]["nodes"][0] = {**INPUT, "parameters": {"x": 1}}
    assert problems(data) == [((*NODE, 0, "parameters", "x"),
                               "unknown key 'x': this mapping takes no keys")]


def test_missing_key_and_unknown_connection_key() -> None:
    data = graph({"id": "g", "type": "gain"}, connections=[{"form": "input", "to": "g"}])
    assert problems(data) == [
        (("processing", "default_graph", "connections", 0, "from"),
         "missing required key 'from'"),
        (("processing", "default_graph", "connections", 0, "form"),
         "unknown key 'form'; did you mean 'from'? (expected one of: from, to)"),
    ]


@pytest.mark.parametrize(("data", "path", "message"), [
    ({"logging": "verbose"}, ("logging",), "expected a mapping (got 'verbose')"),
    ([1, 2], (), "expected a mapping (got a list)"),
    (None, (), "expected a mapping (got null)"),
    ({"hal": {"relays": 5}}, ("hal", "relays"), "expected a mapping (got 5)"),
    ({"acquisition": {"simulator": {"concentration": "x"}}},
     ("acquisition", "simulator", "concentration"), "expected a mapping (got 'x')"),
    ({"web": {"allowed_hosts": "x"}}, ("web", "allowed_hosts"), "expected a list (got 'x')"),
    ({"processing": {"default_graph": {"nodes": {}}}}, NODE, "expected a list (got a mapping)"),
])
def test_wrong_container_types(data: Any, path: tuple[str | int, ...], message: str) -> None:
    assert problems(data) == [(path, message)]


def test_a_literal_gets_the_value_and_a_hint() -> None:
    assert problems({"logging": {"level": "warn"}}) == [(("logging", "level"), (
        "Input should be 'debug', 'info', 'warning' or 'error' (got 'warn'); did you mean "
        "'warning'?"))]
    assert problems({"logging": {"level": 3}}) == [(("logging", "level"), (
        "Input should be 'debug', 'info', 'warning' or 'error' (got 3)"))]
    node = {"id": "p", "type": "peak_finder", "parameters": {"window": "han"}}
    [(path, message)] = problems(graph(node))
    assert path == (*NODE, 1, "parameters", "window")
    assert message.endswith("(got 'han'); did you mean 'hann'?")


def test_a_discriminated_union_names_its_tag() -> None:
    where = ("acquisition", "simulator", "concentration")

    def concentration(value: Any) -> Any:
        return {"acquisition": {"simulator": {"concentration": value}}}

    assert problems(concentration({"profile": "ramps"})) == [((*where, "profile"), (
        "unknown profile 'ramps'; did you mean 'ramp'? (expected one of: 'constant', 'steps', "
        "'ramp', 'csv')"))]
    assert problems(concentration({"profile": 5})) == [((*where, "profile"), (
        "unknown profile '5' (expected one of: 'constant', 'steps', 'ramp', 'csv')"))]
    assert problems(concentration({"value_ppm": 3})) == [(where, (
        "missing key 'profile', which selects the kind of this mapping"))]
    # below the tag, the branch name is no part of the path
    assert problems(concentration({"profile": "steps"})) == [(
        (*where, "levels_ppm"), "missing required key 'levels_ppm'")]
    assert problems(concentration({"profile": "steps", "levels_ppm": [1, -5]})) == [(
        (*where, "levels_ppm", 1), "Input should be greater than or equal to 0 (got -5)")]


def test_constraint_messages_get_the_value_unless_it_is_a_container() -> None:
    assert problems({"acquisition": {"frame_size": 10}}) == [(("acquisition", "frame_size"), (
        "Input should be greater than or equal to 64 (got 10)"))]
    assert problems({"acquisition": {"sample_rate": 10 ** 5000}}) == [(
        ("acquisition", "sample_rate"),
        "Input should be less than or equal to 384000 (got a very long number)")]
    # a model validator's ValueError on a mapping: its own words, without "Value error, "
    node = {"id": "f", "type": "filter", "parameters": {"band": "lowpass"}}
    assert problems(graph(node)) == [((*NODE, 1, "parameters"),
                                      "a lowpass filter needs cutoff_hz")]


def test_own_error_types_keep_their_message_as_is() -> None:
    [(path, message)] = problems(graph({"id": "g", "type": "gian"}))
    assert path == (*NODE, 1, "type")
    assert message.startswith("unknown node type 'gian'; did you mean 'gain'? (registered "
                              "types: ")
    assert "(got" not in message
    found = problems({"processing": {"default_graph": {"nodes": [{"id": "g", "type": "gain"}]}}})
    assert found == [
        (NODE, "the graph has no node of type 'input'; one is needed for the source's frames "
               "to enter the graph"),
        ((*NODE, 0), "node 'g' (gain) has no input: add a connection 'from: <node id>' "
                     "'to: g'; every node except 'input' nodes takes exactly one input"),
    ]


def test_every_error_of_a_validation_is_one_problem() -> None:
    data = {"logging": {"level": "x", "format": "y"}, "devce": 1,
            "acquisition": {"frame_size": 1}}
    found = problems(data)
    assert sorted(path for path, _ in found) == [
        ("acquisition", "frame_size"), ("devce",), ("logging", "format"), ("logging", "level")]
