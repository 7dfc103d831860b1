"""Structure checks and walks of the processing graph, on plain ids (no pydantic here).

The graph is a forest hanging from ``input`` nodes: every other node takes exactly one input
(one incoming connection) and may feed any number of nodes. The checks return
``(key path relative to the graph, message, offending value)`` triples so the config models can
turn them into validation errors that point at the right line, and the loader can run them
on raw data too when some node failed validation (all problems of a file at once).
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Sequence
from typing import Any

from firmware.config.yaml_positions import KeyPath

#: the node type the source's frames enter the graph through
INPUT_TYPE = "input"

GraphProblem = tuple[KeyPath, str, Any]


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _known(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:20])
    return shown + (", ..." if len(ids) > 20 else "") if ids else "none"


def graph_problems(
    nodes: Sequence[tuple[str, str]], connections: Sequence[tuple[str, str]]
) -> list[GraphProblem]:
    """Every structural problem of a graph of ``(id, type)`` nodes and ``(from, to)`` edges.

    Checks: duplicate ids, at least one input node, connections naming unknown ids, an input
    node with an incoming connection, a node with more than one input, non-input nodes without
    an input, and cycles (a cycle is the only way a node with an input can still be unreachable
    from every input node, so nodes downstream of a cycle are covered by the cycle's report).
    """
    problems: list[GraphProblem] = []
    first_index: dict[str, int] = {}
    for index, (node_id, _type) in enumerate(nodes):
        if node_id in first_index:
            problems.append((
                ("nodes", index, "id"),
                f"duplicate node id {node_id!r} (already used by nodes[{first_index[node_id]}]); "
                f"node ids must be unique",
                node_id,
            ))
        else:
            first_index[node_id] = index
    type_of = {node_id: nodes[i][1] for node_id, i in first_index.items()}
    ids = list(first_index)
    if INPUT_TYPE not in type_of.values():
        problems.append((
            ("nodes",),
            f"the graph has no node of type {INPUT_TYPE!r}; one is needed for the source's "
            f"frames to enter the graph",
            None,
        ))

    parent: dict[str, tuple[str, int]] = {}
    targeted: set[str] = set()
    for k, (source, target) in enumerate(connections):
        targeted.add(target)
        known = True
        for end, node_id in (("from", source), ("to", target)):
            if node_id not in type_of:
                known = False
                problems.append((
                    ("connections", k, end),
                    f"connection {end} unknown node id {node_id!r}{did_you_mean(node_id, ids)} "
                    f"(node ids: {_known(ids)})",
                    node_id,
                ))
        if not known:
            continue
        if type_of[target] == INPUT_TYPE:
            problems.append((
                ("connections", k, "to"),
                f"node {target!r} is an {INPUT_TYPE!r} node: it reads the source's frames and "
                f"takes no incoming connection (from {source!r})",
                target,
            ))
        elif target in parent:
            other, j = parent[target]
            problems.append((
                ("connections", k, "to"),
                f"node {target!r} already takes its input from {other!r} (connections[{j}]); "
                f"each node takes exactly one input, so {source!r} cannot feed it too",
                target,
            ))
        else:
            parent[target] = (source, k)

    for node_id, index in first_index.items():
        if type_of[node_id] != INPUT_TYPE and node_id not in parent and node_id not in targeted:
            problems.append((
                ("nodes", index),
                f"node {node_id!r} ({type_of[node_id]}) has no input: add a connection "
                f"'from: <node id>' 'to: {node_id}'; every node except {INPUT_TYPE!r} nodes "
                f"takes exactly one input",
                node_id,
            ))
    problems.extend(_cycle_problems(ids, parent))
    return problems


def _cycle_problems(ids: Sequence[str], parent: dict[str, tuple[str, int]]) -> list[GraphProblem]:
    """One problem per cycle of the parent relation, at its first connection."""
    problems: list[GraphProblem] = []
    order = {node_id: i for i, node_id in enumerate(ids)}
    done: set[str] = set()
    for start in ids:
        walk: list[str] = []
        on_walk: set[str] = set()
        node: str | None = start
        while node is not None and node not in done and node not in on_walk:
            walk.append(node)
            on_walk.add(node)
            node = parent[node][0] if node in parent else None
        if node is not None and node in on_walk:
            cycle = walk[walk.index(node):]  # child -> parent order
            cycle.reverse()  # parent -> child: the direction of the connections
            first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
            cycle = cycle[first:] + cycle[:first]
            edge = min(parent[n][1] for n in cycle)
            problems.append((
                ("connections", edge),
                f"connections form a cycle: {' -> '.join([*cycle, cycle[0]])}; every chain "
                f"must start at an {INPUT_TYPE!r} node",
                None,
            ))
        done.update(walk)
    return problems


def topological_order(ids: Sequence[str], parent_of: dict[str, str]) -> list[str]:
    """Node ids with every node after its input, otherwise in declaration order.

    Assumes a checked graph (no cycles); nodes on a cycle would be left out.
    """
    rank = {node_id: i for i, node_id in enumerate(ids)}
    children: dict[str, list[str]] = {node_id: [] for node_id in ids}
    for child, par in parent_of.items():
        children.setdefault(par, []).append(child)
    ready = [(rank[n], n) for n in ids if n not in parent_of]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for child in children.get(node_id, []):
            heapq.heappush(ready, (rank[child], child))
    return order


def upstream_chain(node_id: str, parent_of: dict[str, str]) -> list[str]:
    """Ids from the input node down to ``node_id``'s parent (``node_id`` excluded)."""
    chain: list[str] = []
    seen = {node_id}
    node = parent_of.get(node_id)
    while node is not None and node not in seen:
        chain.append(node)
        seen.add(node)
        node = parent_of.get(node)
    chain.reverse()
    return chain
