"""Signal-routing nodes: input, channel selector, channel mixer, differential, gain."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from firmware.dsp import kernels
from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import register
from firmware.errors import ConfigError
from firmware.strict_model import StrictModel


def require_stereo(node: Node, ctx: BuildContext) -> None:
    """Raise a ConfigError when a node that needs two channels is fed one."""
    if ctx.input_channels != 2:
        raise ConfigError(
            f"node {node.node_id!r} ({node.type_name}) needs a stereo input, but its input "
            f"{ctx.upstream_ids[0] if ctx.upstream_ids else '?'!r} gives "
            f"{ctx.input_channels} channel"
        )


class NoParams(StrictModel):
    """A node without parameters."""


@register
class InputNode(Node):
    """The graph's entry: the source's stereo frame, channel A on row 0, B on row 1."""

    type_name = "input"
    Params: ClassVar[type[StrictModel]] = NoParams
    identity = True  # the graph hands its children the frame itself

    def __init__(self, node_id: str, params: Any, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        self.output_channels = 2

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        return frame.samples


class ChannelSelectorParams(StrictModel):
    """``channel``: which microphone to keep."""

    channel: Literal["A", "B"] = "A"


@register
class ChannelSelectorNode(Node):
    """Keep one channel of a stereo signal."""

    type_name = "channel_selector"
    channel_combiner = True
    Params = ChannelSelectorParams

    def __init__(self, node_id: str, params: ChannelSelectorParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        require_stereo(self, ctx)
        self.output_channels = 1
        self._index = 0 if params.channel == "A" else 1
        self._out = np.zeros((1, ctx.frame_size))

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        kernels.select_channel(signal, self._index, self._out)
        return self._out


class ChannelMixerParams(StrictModel):
    """``strategy`` combines A and B; ``weighted`` uses ``weight_a``*A + ``weight_b``*B."""

    strategy: Literal["add", "subtract", "average", "weighted"] = "average"
    weight_a: float = Field(0.5, ge=-100, le=100)
    weight_b: float = Field(0.5, ge=-100, le=100)


_MIX_WEIGHTS = {"add": (1.0, 1.0), "subtract": (1.0, -1.0), "average": (0.5, 0.5)}


@register
class ChannelMixerNode(Node):
    """Mix a stereo signal down to one channel."""

    type_name = "channel_mixer"
    channel_combiner = True
    Params = ChannelMixerParams

    def __init__(self, node_id: str, params: ChannelMixerParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        require_stereo(self, ctx)
        self.output_channels = 1
        self._wa, self._wb = _MIX_WEIGHTS.get(params.strategy, (params.weight_a, params.weight_b))
        self._out = np.zeros((1, ctx.frame_size))

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        kernels.mix(signal, self._wa, self._wb, self._out)
        return self._out


@register
class DifferentialNode(Node):
    """A - B: the photoacoustic signal (antiphase) adds up, common-mode noise cancels."""

    type_name = "differential"
    channel_combiner = True
    Params = NoParams

    def __init__(self, node_id: str, params: Any, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        require_stereo(self, ctx)
        self.output_channels = 1
        self._out = np.zeros((1, ctx.frame_size))

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        kernels.differential(signal, self._out)
        return self._out


class GainParams(StrictModel):
    """``gain_db``: amplification in decibels (negative attenuates)."""

    gain_db: float = Field(0.0, ge=-120, le=120)


@register
class GainNode(Node):
    """Multiply every channel by a fixed gain given in dB."""

    type_name = "gain"
    per_channel_linear = True
    Params = GainParams

    def __init__(self, node_id: str, params: GainParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        self._gain = float(10.0 ** (params.gain_db / 20.0))
        self._out = np.zeros((ctx.input_channels, ctx.frame_size))
        self.identity = self._gain == 1.0  # 0 dB: the graph skips it

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        if self._gain == 1.0:  # 0 dB: pass the buffer on instead of copying it
            return signal
        kernels.scale(signal, self._gain, self._out)
        return self._out
