"""The processing graph: builds nodes in topological order and runs them once per frame.

Every node takes exactly one input (the upstream node's output buffer) and may feed several
nodes; ``input`` nodes read the frame itself. Building allocates every buffer; ``process``
walks a precomputed list of (node, parent index) pairs and records each node's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import get_node_type
from firmware.dsp.timing import TimingStats
from firmware.errors import ConfigError
from firmware.state import ComputingState


@dataclass(frozen=True)
class NodeSpec:
    """What the graph needs to build one node: id, type name, validated params, parent id."""

    node_id: str
    type_name: str
    params: Any
    parent: str | None


class ProcessingGraph:
    """A built, runnable graph of nodes."""

    def __init__(self, nodes: list[Node], parents: list[int], types: list[str]) -> None:
        self.nodes = nodes
        self._parents = parents
        self._types = types
        self._outputs: list[np.ndarray | None] = [None] * len(nodes)
        # a passive or identity node's output is its input: its children read its nearest
        # working ancestor's output (or the frame), and it has no step of its own
        resolved = list(parents)
        for i, parent in enumerate(parents):
            if parent >= 0 and _skipped(nodes[parent]):
                resolved[i] = resolved[parent]
        self.timings = [TimingStats() for _ in nodes]
        self._steps = [(i, node, resolved[i], self.timings[i])
                       for i, node in enumerate(nodes) if not _skipped(node)]
        self.frames = 0
        self.last_frame_ns = 0

    @classmethod
    def build(
        cls,
        specs: Sequence[NodeSpec],
        *,
        sample_rate: int,
        frame_size: int,
        state: ComputingState,
        state_dir: Path,
        locate: Callable[[str, str | None], str] | None = None,
        rehearsal: bool = False,
    ) -> ProcessingGraph:
        """Instantiate ``specs`` (already in topological order: parents first).

        Raises ConfigError naming the node when a node cannot be built with these settings
        (a stereo-only node fed one channel, a filter edge above Nyquist, ...); ``locate``
        turns a node id and the parameter at fault (a ``NodeParameterError``'s key, else
        None) into a "file:line:col: key.path" prefix for that message. ``rehearsal``: a
        throwaway copy whose nodes write nothing outside ``state_dir`` (the warm-up).
        """
        index_of: dict[str, int] = {}
        types_by_id = {s.node_id: s.type_name for s in specs}
        nodes: list[Node] = []
        parents: list[int] = []
        for spec in specs:
            node_cls = get_node_type(spec.type_name)
            if node_cls is None:
                raise ConfigError(f"node {spec.node_id!r}: unknown node type {spec.type_name!r}")
            parent_index = -1 if spec.parent is None else index_of[spec.parent]
            channels = 2 if parent_index < 0 else nodes[parent_index].output_channels
            ctx = BuildContext(
                sample_rate=sample_rate,
                frame_size=frame_size,
                input_channels=channels,
                state=state,
                state_dir=state_dir,
                upstream_ids=_chain(spec.node_id, specs),
                node_types_by_id=types_by_id,
                rehearsal=rehearsal,
            )
            try:
                nodes.append(node_cls(spec.node_id, spec.params, ctx))
            except ConfigError as exc:
                if locate is None:
                    raise
                key = getattr(exc, "key", None)
                raise ConfigError([f"{locate(spec.node_id, key)}: {p}"
                                   for p in exc.problems]) from None
            parents.append(parent_index)
            index_of[spec.node_id] = len(nodes) - 1
        return cls(nodes, parents, [s.type_name for s in specs])

    def process(self, frame: Frame) -> None:
        """Run every node on ``frame`` (DSP thread).

        One clock reading per node: a node's end is the next one's start (the loop's own few
        nanoseconds count to the next node).
        """
        outputs = self._outputs
        clock = time.perf_counter_ns
        start = t0 = clock()
        for i, node, parent, timing in self._steps:
            signal = outputs[parent] if parent >= 0 else frame.samples
            assert signal is not None  # steps run in topological order: parents ran first
            outputs[i] = node.process(signal, frame)
            t1 = clock()
            timing.record(t1 - t0)
            t0 = t1
        self.last_frame_ns = t0 - start
        self.frames += 1

    def reset_timings(self) -> None:
        """Forget timing statistics (after warm-up)."""
        for t in self.timings:
            t.reset()

    def close(self) -> None:
        """Close every node (flush recorders); idempotent."""
        for node in self.nodes:
            node.close()

    def computing_node_ids(self) -> list[str]:
        """Ids of nodes that publish results, in processing order."""
        return [n.node_id for n in self.nodes if n.computing]

    def get_status(self) -> dict[str, Any]:
        """Per-node type, timing and node status; JSON-safe."""
        return {
            "frames": self.frames,
            "nodes": {
                node.node_id: {
                    "type": type_name,
                    "timing": None if _skipped(node) else timing.summary(),
                    **node.get_status(),
                }
                for node, type_name, timing in zip(self.nodes, self._types, self.timings,
                                                   strict=True)
            },
        }


def _skipped(node: Node) -> bool:
    """True for nodes the graph does not call per frame: passive ones (actions) and those
    whose output is always their input (``Node.identity``)."""
    return node.passive or node.identity


def _chain(node_id: str, specs: Sequence[NodeSpec]) -> list[str]:
    """Ids from the graph's input down to ``node_id``'s parent."""
    parent_of = {s.node_id: s.parent for s in specs}
    chain: list[str] = []
    current = parent_of.get(node_id)
    while current is not None:
        chain.append(current)
        current = parent_of.get(current)
    chain.reverse()
    return chain
