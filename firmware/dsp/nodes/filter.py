"""Digital filter node: an IIR design (scipy.signal, SOS) run by a stateful numba kernel."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from firmware.dsp.filters import StreamingSosFilter, design_sos
from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import register
from firmware.errors import ConfigError, DspError, NodeParameterError
from firmware.strict_model import StrictModel


class FilterParams(StrictModel):
    """Filter design. Band filters take ``center_frequency`` + ``bandwidth`` or ``low_hz`` +
    ``high_hz``; low/high-pass filters take ``cutoff_hz``."""

    family: Literal["butterworth", "chebyshev1", "chebyshev2", "elliptic", "bessel"] = (
        "butterworth"
    )
    band: Literal["bandpass", "bandstop", "lowpass", "highpass"] = "bandpass"
    order: int = Field(4, ge=1, le=12)
    center_frequency: float | None = Field(None, gt=0)
    bandwidth: float | None = Field(None, gt=0)
    low_hz: float | None = Field(None, gt=0)
    high_hz: float | None = Field(None, gt=0)
    cutoff_hz: float | None = Field(None, gt=0)
    ripple_db: float = Field(
        1.0, gt=0, le=20, description="pass-band ripple (Chebyshev I, elliptic)"
    )
    attenuation_db: float = Field(
        40.0, gt=0, le=200, description="stop-band attenuation (Chebyshev II, elliptic)"
    )

    @model_validator(mode="after")
    def _edges_match_band(self) -> FilterParams:
        if self.band in ("bandpass", "bandstop"):
            by_center = self.center_frequency is not None or self.bandwidth is not None
            by_edges = self.low_hz is not None or self.high_hz is not None
            if by_center and by_edges:
                raise ValueError("give either center_frequency+bandwidth or low_hz+high_hz")
            if by_center and (self.center_frequency is None or self.bandwidth is None):
                raise ValueError("center_frequency and bandwidth go together")
            if by_edges and (self.low_hz is None or self.high_hz is None):
                raise ValueError("low_hz and high_hz go together")
            if not (by_center or by_edges):
                raise ValueError(f"a {self.band} filter needs center_frequency+bandwidth")
            if self.cutoff_hz is not None:
                raise ValueError(f"cutoff_hz is for lowpass/highpass, not {self.band}")
        elif self.cutoff_hz is None:
            raise ValueError(f"a {self.band} filter needs cutoff_hz")
        elif any(v is not None for v in (self.center_frequency, self.bandwidth, self.low_hz,
                                         self.high_hz)):
            raise ValueError(f"a {self.band} filter takes cutoff_hz only")
        return self

    def band_edges(self) -> tuple[float | None, float | None]:
        """(low_hz, high_hz) of a band filter, from either way of giving them."""
        if self.center_frequency is not None and self.bandwidth is not None:
            half = self.bandwidth / 2.0
            return self.center_frequency - half, self.center_frequency + half
        return self.low_hz, self.high_hz


@register
class FilterNode(Node):
    """Band-pass (or other) filter applied to every channel, state carried across frames."""

    type_name = "filter"
    per_channel_linear = True
    Params = FilterParams

    def __init__(self, node_id: str, params: FilterParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        low, high = params.band_edges()
        try:
            sos = design_sos(
                family=params.family,
                band=params.band,
                order=params.order,
                sample_rate=ctx.sample_rate,
                cutoff_hz=params.cutoff_hz,
                low_hz=low,
                high_hz=high,
                ripple_db=params.ripple_db,
                attenuation_db=params.attenuation_db,
            )
        except DspError as exc:
            message = f"node {node_id!r} (filter): {exc}"
            name = str(exc).split("=", 1)[0]  # "high_hz=24200.0 Hz is outside ..."
            if name not in ("low_hz", "high_hz", "cutoff_hz"):
                raise ConfigError(message) from None
            if params.center_frequency is not None:  # the edge comes from centre + width
                name = "center_frequency"
            raise NodeParameterError(message, key=name) from None
        self._filter = StreamingSosFilter(sos, channels=ctx.input_channels,
                                          frame_size=ctx.frame_size)

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        return self._filter.process(signal)

    def get_status(self) -> dict[str, Any]:
        low, high = self.params.band_edges()
        return {"family": self.params.family, "band": self.params.band,
                "order": self.params.order, "low_hz": low, "high_hz": high,
                "cutoff_hz": self.params.cutoff_hz, "form": self._filter.form}
