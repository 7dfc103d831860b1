"""Nodes built the way the graph builds them, from parameters validated by the config layer,
and frames to feed them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firmware.config.processing import NodeSettings
from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import get_node_type
from firmware.state import ComputingState

FS = 48000
N = 1024


def build(type_name: str, parameters: Mapping[str, Any] | None = None, *, node_id: str = "n",
          input_channels: int = 2, sample_rate: int = FS, frame_size: int = N,
          state: ComputingState | None = None, state_dir: Path = Path("/nonexistent"),
          upstream: Sequence[str] = (), types: Mapping[str, str] | None = None) -> Any:
    """A node of ``type_name`` built from ``parameters`` (validated as a config node's are)."""
    settings = NodeSettings.model_validate({"id": node_id, "type": type_name,
                                            "parameters": dict(parameters or {})})
    ctx = BuildContext(sample_rate=sample_rate, frame_size=frame_size,
                       input_channels=input_channels, state=state or ComputingState(),
                       state_dir=state_dir, upstream_ids=list(upstream),
                       node_types_by_id={**(types or {}), node_id: type_name})
    node_cls = get_node_type(type_name)
    assert node_cls is not None
    node: Node = node_cls(node_id, settings.params, ctx)
    return node


def frame(samples: np.ndarray | None = None, *, sequence: int = 0, timestamp: float = 100.0,
          wall_time: float = 1.7e9, sample_rate: int = FS) -> Frame:
    """A frame holding ``samples`` (stereo zeros by default)."""
    data = np.zeros((2, N)) if samples is None else np.ascontiguousarray(samples, dtype=float)
    return Frame(samples=data, sample_rate=sample_rate, sequence=sequence,
                 timestamp=timestamp, wall_time=wall_time)


def tone(frequency_hz: float, amplitude: float = 1.0, *, n: int = N, start: int = 0,
         sample_rate: int = FS) -> np.ndarray:
    """``amplitude * sin`` at ``frequency_hz`` for samples ``start`` .. ``start + n``."""
    t = (start + np.arange(n)) / sample_rate
    return amplitude * np.sin(2 * np.pi * frequency_hz * t)
