"""Structure checks and walks of the processing graph on plain ids (firmware/config/graph.py):
each problem ``graph_problems`` finds, with the key path, message and value it reports, and the
topological order and upstream chains of a checked graph."""

from __future__ import annotations

import pytest

from firmware.config.graph import (
    did_you_mean,
    graph_problems,
    topological_order,
    upstream_chain,
)

CHAIN = [("input", "input"), ("f", "filter"), ("p", "peak_finder")]
CHAIN_EDGES = [("input", "f"), ("f", "p")]


def test_did_you_mean_names_the_closest_candidate_only_when_close() -> None:
    assert did_you_mean("gian", ["gain", "filter"]) == "; did you mean 'gain'?"
    assert did_you_mean("peak_findr", ["peak_finder", "peak"]) == "; did you mean 'peak_finder'?"
    assert did_you_mean("zzz", ["gain", "filter"]) == ""
    assert did_you_mean("gain", []) == ""


def test_a_well_formed_forest_has_no_problem() -> None:
    assert graph_problems(CHAIN, CHAIN_EDGES) == []
    # two inputs, a node feeding several, a node declared before its parent
    nodes = [("late", "gain"), ("in1", "input"), ("in2", "input"), ("a", "gain"),
             ("b", "gain")]
    edges = [("in1", "a"), ("a", "b"), ("a", "late"), ("in2", "x")]
    assert graph_problems([*nodes, ("x", "record")], edges) == []
    assert graph_problems([("input", "input")], []) == []


def test_duplicate_ids_are_reported_at_the_later_node() -> None:
    problems = graph_problems([*CHAIN, ("f", "gain"), ("f", "gain")], CHAIN_EDGES)
    assert problems == [
        (("nodes", 3, "id"), "duplicate node id 'f' (already used by nodes[1]); node ids must "
         "be unique", "f"),
        (("nodes", 4, "id"), "duplicate node id 'f' (already used by nodes[1]); node ids must "
         "be unique", "f"),
    ]


def test_a_graph_without_input_node() -> None:
    problems = graph_problems([], [])
    assert problems == [(("nodes",), "the graph has no node of type 'input'; one is needed for "
                         "the source's frames to enter the graph", None)]


def test_connections_to_unknown_ids_name_them_with_a_hint() -> None:
    problems = graph_problems(CHAIN, [("input", "f"), ("f", "p"), ("inptu", "nowhere")])
    assert problems == [
        (("connections", 2, "from"), "connection from unknown node id 'inptu'; did you mean "
         "'input'? (node ids: 'input', 'f', 'p')", "inptu"),
        (("connections", 2, "to"), "connection to unknown node id 'nowhere' (node ids: "
         "'input', 'f', 'p')", "nowhere"),
    ]


def test_the_list_of_known_ids_is_shortened() -> None:
    nodes = [("input", "input")] + [(f"n{i:02d}", "gain") for i in range(25)]
    edges = [("input", f"n{i:02d}") for i in range(25)] + [("input", "zz")]
    [(_, message, _)] = graph_problems(nodes, edges)
    assert message.endswith("'n18', ...)")
    assert message.count("'n") == 19  # input and n00..n18: the first 20 ids


def test_a_node_fed_by_an_unknown_node_is_not_also_without_input() -> None:
    """The dangling connection is the one problem: the node it targets does have an input,
    with the wrong name."""
    problems = graph_problems(CHAIN, [("input", "f"), ("ff", "p")])
    assert [path for path, _, _ in problems] == [("connections", 1, "from")]


def test_an_input_node_takes_no_connection() -> None:
    problems = graph_problems([*CHAIN, ("in2", "input")], [*CHAIN_EDGES, ("p", "in2")])
    assert problems == [(("connections", 2, "to"), "node 'in2' is an 'input' node: it reads the "
                         "source's frames and takes no incoming connection (from 'p')", "in2")]


def test_a_node_takes_exactly_one_input() -> None:
    problems = graph_problems([*CHAIN, ("g", "gain")], [*CHAIN_EDGES, ("input", "g"),
                                                        ("p", "g")])
    assert problems == [(("connections", 3, "to"), "node 'g' already takes its input from "
                         "'input' (connections[2]); each node takes exactly one input, so 'p' "
                         "cannot feed it too", "g")]


def test_a_node_without_input_names_the_connection_to_add() -> None:
    problems = graph_problems([*CHAIN, ("orphan", "gain")], CHAIN_EDGES)
    assert problems == [(("nodes", 3), "node 'orphan' (gain) has no input: add a connection "
                         "'from: <node id>' 'to: orphan'; every node except 'input' nodes "
                         "takes exactly one input", "orphan")]


def test_a_cycle_is_reported_once_from_its_first_declared_node() -> None:
    nodes = [("input", "input"), ("a", "gain"), ("b", "gain"), ("c", "gain"), ("d", "gain")]
    # c -> a -> b -> c, and d hangs below the cycle
    edges = [("b", "c"), ("a", "b"), ("c", "a"), ("b", "d")]
    problems = graph_problems(nodes, edges)
    assert problems == [(("connections", 0), "connections form a cycle: a -> b -> c -> a; "
                         "every chain must start at an 'input' node", None)]


def test_a_self_loop_and_two_separate_cycles() -> None:
    nodes = [("input", "input"), ("s", "gain"), ("x", "gain"), ("y", "gain")]
    problems = graph_problems(nodes, [("x", "y"), ("s", "s"), ("y", "x")])
    assert [(path, message.split(";")[0]) for path, message, _ in problems] == [
        (("connections", 1), "connections form a cycle: s -> s"),
        (("connections", 0), "connections form a cycle: x -> y -> x"),
    ]


def test_all_problems_are_reported_together() -> None:
    nodes = [("g", "gain"), ("g", "gain"), ("h", "gain")]
    problems = graph_problems(nodes, [("nope", "g")])
    assert [path for path, _, _ in problems] == [
        ("nodes", 1, "id"), ("nodes",), ("connections", 0, "from"), ("nodes", 2)]


def test_topological_order_puts_parents_first_else_keeps_the_declaration_order() -> None:
    ids = ["peak", "diff", "lock", "input", "rec", "in2", "g"]
    parent_of = {"peak": "diff", "diff": "input", "lock": "diff", "rec": "input", "g": "in2"}
    assert topological_order(ids, parent_of) == ["input", "diff", "peak", "lock", "rec", "in2",
                                                 "g"]
    assert topological_order(["b", "a"], {}) == ["b", "a"]
    assert topological_order([], {}) == []


def test_topological_order_leaves_out_nodes_on_a_cycle() -> None:
    assert topological_order(["input", "a", "b", "c"], {"a": "b", "b": "a", "c": "input"}) \
        == ["input", "c"]


def test_upstream_chain_runs_from_the_input_to_the_parent() -> None:
    parent_of = {"peak": "diff", "diff": "f", "f": "input"}
    assert upstream_chain("peak", parent_of) == ["input", "f", "diff"]
    assert upstream_chain("f", parent_of) == ["input"]
    assert upstream_chain("input", parent_of) == []
    assert upstream_chain("unknown", parent_of) == []


@pytest.mark.timeout(30)
def test_upstream_chain_ends_on_a_cycle() -> None:
    assert upstream_chain("c", {"c": "b", "b": "a", "a": "b"}) == ["a", "b"]
    assert upstream_chain("a", {"a": "a"}) == []
