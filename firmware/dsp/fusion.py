"""Graph rewrite: move a channel combiner ahead of the linear per-channel nodes feeding it.

A differential (or mixer, or selector) is a memoryless linear combination of channels; a
filter or a gain applies the same linear time-invariant operation to each channel. The two
commute: ``filter(A) - filter(B) == filter(A - B)`` exactly in real arithmetic (the filters
start from zero state), and to rounding in floating point. So when a chain of per-channel
linear nodes feeds nothing but a combiner, running the combiner first gives the same signal
while filtering one channel instead of two. Node ids, parameters and results are unchanged;
per-node timings show the work actually done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from firmware.dsp.graph import NodeSpec
from firmware.dsp.registry import get_node_type


def _is(spec: NodeSpec, attribute: str) -> bool:
    node_cls = get_node_type(spec.type_name)
    return bool(node_cls is not None and getattr(node_cls, attribute, False))


def fuse_linear_chains(specs: Sequence[NodeSpec]) -> tuple[list[NodeSpec], list[str]]:
    """Rewritten specs (parents first) and one human-readable line per rewrite."""
    by_id = {s.node_id: s for s in specs}
    children: dict[str | None, list[str]] = {}
    for spec in specs:
        children.setdefault(spec.parent, []).append(spec.node_id)
    parent = {s.node_id: s.parent for s in specs}
    notes: list[str] = []
    for spec in specs:
        if not _is(spec, "channel_combiner"):
            continue
        chain: list[str] = []
        current = parent[spec.node_id]
        while (
            current is not None
            and _is(by_id[current], "per_channel_linear")
            and children.get(current) == [chain[-1] if chain else spec.node_id]
        ):
            chain.append(current)
            current = parent[current]
        if not chain:
            continue
        chain.reverse()  # head first: input -> chain[0] -> ... -> chain[-1] -> combiner
        head_parent = parent[chain[0]]
        downstream = children.get(spec.node_id, [])
        parent[spec.node_id] = head_parent
        parent[chain[0]] = spec.node_id
        for child in downstream:
            parent[child] = chain[-1]
        children[head_parent] = [spec.node_id if c == chain[0] else c
                                 for c in children.get(head_parent, [])]
        children[spec.node_id] = [chain[0]]
        children[chain[-1]] = list(downstream)
        notes.append(f"{spec.node_id} moved before {', '.join(chain)}")
    return _ordered([replace(s, parent=parent[s.node_id]) for s in specs]), notes


def _ordered(specs: list[NodeSpec]) -> list[NodeSpec]:
    """Parents before children, otherwise in the given order."""
    done: set[str] = set()
    ordered: list[NodeSpec] = []
    pending = list(specs)
    while pending:
        rest = []
        for spec in pending:
            if spec.parent is None or spec.parent in done:
                ordered.append(spec)
                done.add(spec.node_id)
            else:
                rest.append(spec)
        if len(rest) == len(pending):
            raise ValueError("graph has a cycle after fusion")  # impossible: specs are a tree
        pending = rest
    return ordered
