"""Base class of processing nodes and the context they are built in.

A node is built once from its validated ``Params`` and a ``BuildContext`` (sample rate, frame
size, channel count of its input, shared state) and allocates every buffer it needs there.
``process`` is then called once per frame on the DSP thread with the upstream node's output
buffer and returns its own output buffer: no allocation, no I/O, no waiting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from firmware.strict_model import StrictModel

if TYPE_CHECKING:
    from firmware.dsp.frame import Frame
    from firmware.state import ComputingState

#: result kinds of detectors (an amplitude and a frequency); "concentration" carries ppm
DETECTOR_KINDS = frozenset({"peak", "lockin"})


@dataclass
class BuildContext:
    """What a node needs to know to allocate its buffers and find its peers."""

    sample_rate: int
    frame_size: int
    input_channels: int
    state: ComputingState
    state_dir: Path
    upstream_ids: list[str] = field(default_factory=list)
    node_types_by_id: dict[str, str] = field(default_factory=dict)
    #: a throwaway copy of the graph (the warm-up): it must touch no file outside state_dir
    rehearsal: bool = False


class Node(ABC):
    """One step of the processing graph.

    Subclasses set ``type_name`` and ``Params`` and implement ``process``. ``output_channels``
    tells downstream nodes how many rows the output buffer has (1 or 2).
    """

    type_name: ClassVar[str]
    Params: ClassVar[type[StrictModel]]
    #: True for nodes that publish a result into ComputingState (peak finder, concentration)
    computing: ClassVar[bool] = False
    #: the ``kind`` of the results a computing node publishes ("peak", "lockin",
    #: "concentration"); what dashboards, Home Assistant and dry runs go by
    result_kind: ClassVar[str | None] = None
    #: True for nodes applying one linear time-invariant operation to each channel alike
    #: (filter, gain): they commute with channel combiners (see dsp/fusion.py)
    per_channel_linear: ClassVar[bool] = False
    #: True for memoryless linear combinations of channels (differential, mixer, selector)
    channel_combiner: ClassVar[bool] = False
    #: True for nodes with no per-frame work (action nodes: a pass-through whose output is
    #: its input); the graph does not call them on the DSP thread
    passive: ClassVar[bool] = False
    #: True when this node's output is always its input buffer (the graph's input node, a
    #: 0 dB gain; an instance may set it at build time): the graph routes around it instead
    #: of calling it every frame, and reports no timing for it
    identity: bool = False

    def __init__(self, node_id: str, params: Any, ctx: BuildContext) -> None:
        self.node_id = node_id
        self.params = params
        self.output_channels = ctx.input_channels

    @abstractmethod
    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        """Consume ``signal`` (shape (channels, n)) for ``frame`` and return the output buffer."""

    def close(self) -> None:  # noqa: B027 - optional hook, most nodes hold nothing to release
        """Release files or threads; idempotent."""

    def get_status(self) -> dict[str, Any]:
        """Node-specific status (JSON-safe); the graph adds timing statistics."""
        return {}
