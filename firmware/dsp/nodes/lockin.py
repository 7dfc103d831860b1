"""Lock-in node: amplitude and phase at a known modulation frequency (digital I/Q)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from firmware.dsp.frame import Frame
from firmware.dsp.lockin import LockInDetector
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import register
from firmware.errors import ConfigError, DspError, NodeParameterError
from firmware.state import ComputingResult
from firmware.strict_model import StrictModel


class LockInParams(StrictModel):
    """Demodulate at ``reference_frequency`` Hz with a low-pass of ``time_constant_s``."""

    reference_frequency: float = Field(2000.0, gt=0)
    time_constant_s: float = Field(0.05, gt=0, le=60)
    filter_order: int = Field(2, ge=1, le=8)
    channel: Literal["A", "B"] = Field("A", description="channel analysed for a stereo input")


@register
class LockInNode(Node):
    """Publishes the amplitude (input units and dB) and phase of the reference component."""

    type_name = "lockin"
    Params = LockInParams
    computing = True
    result_kind = "lockin"

    def __init__(self, node_id: str, params: LockInParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        if params.reference_frequency >= ctx.sample_rate / 2.0:
            raise NodeParameterError(
                f"node {node_id!r} (lockin): reference_frequency {params.reference_frequency} Hz"
                f" must be below the Nyquist frequency {ctx.sample_rate / 2.0} Hz",
                key="reference_frequency")
        try:
            self._detector = LockInDetector(
                sample_rate=ctx.sample_rate,
                reference_hz=params.reference_frequency,
                time_constant_s=params.time_constant_s,
                filter_order=params.filter_order,
            )
        except DspError as exc:
            raise ConfigError(f"node {node_id!r} (lockin): {exc}") from None
        self._row = 1 if (params.channel == "B" and ctx.input_channels == 2) else 0
        self._state = ctx.state

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        res = self._detector.process(signal[self._row])
        amplitude = res.amplitude
        self._state.publish(
            ComputingResult(
                node_id=self.node_id,
                kind=self.result_kind,
                timestamp=frame.wall_time,
                monotonic=frame.timestamp,
                sequence=frame.sequence,
                detected=amplitude > 0.0,
                frequency_hz=self.params.reference_frequency,
                amplitude=amplitude,
                amplitude_db=20.0 * np.log10(amplitude) if amplitude > 0.0 else -np.inf,
                phase_rad=res.phase_rad,
                phase=self._state.marks.phase,
                flags=self._state.marks.flags,
            )
        )
        return signal

    def get_status(self) -> dict[str, Any]:
        return {"reference_frequency": self.params.reference_frequency}
