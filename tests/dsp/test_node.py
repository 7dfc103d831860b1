"""The node base class and its build context (firmware/dsp/node.py): what a subclass must
implement, what it inherits (output channels from its input, no-op close, empty status, the
class flags), and that each context gets its own lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.nodes.basic import NoParams
from firmware.state import ComputingState


def context(tmp_path: Path, channels: int = 2) -> BuildContext:
    return BuildContext(sample_rate=48000, frame_size=256, input_channels=channels,
                        state=ComputingState(), state_dir=tmp_path)


class Doubler(Node):
    type_name = "doubler"
    Params = NoParams

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        return signal * 2


def test_a_node_without_process_cannot_be_built(tmp_path: Path) -> None:
    class Incomplete(Node):
        type_name = "incomplete"
        Params = NoParams

    with pytest.raises(TypeError, match="abstract"):
        Incomplete("x", NoParams(), context(tmp_path))  # type: ignore[abstract]


@pytest.mark.parametrize("channels", [1, 2])
def test_what_a_subclass_inherits(tmp_path: Path, channels: int) -> None:
    params = NoParams()
    node = Doubler("d", params, context(tmp_path, channels))
    assert (node.node_id, node.params) == ("d", params)
    assert node.output_channels == channels  # by default as many rows as its input
    assert node.get_status() == {}
    node.close()
    node.close()  # idempotent
    frame = Frame.empty(4, 8000)
    assert node.process(np.ones((channels, 4)), frame).tolist() == [[2.0] * 4] * channels


def test_class_flags_default_to_an_ordinary_active_node() -> None:
    assert (Doubler.computing, Doubler.per_channel_linear, Doubler.channel_combiner,
            Doubler.passive) == (False, False, False, False)


def test_each_context_has_its_own_lists(tmp_path: Path) -> None:
    a, b = context(tmp_path), context(tmp_path)
    a.upstream_ids.append("input")
    a.node_types_by_id["input"] = "input"
    assert b.upstream_ids == [] and b.node_types_by_id == {}
