"""Concentration node: peak amplitude -> ppm through the calibration polynomial."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from firmware.dsp.concentration import ConcentrationCalculator
from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import register
from firmware.errors import ConfigError, DspError
from firmware.state import ComputingResult
from firmware.strict_model import StrictModel

#: node types whose results carry an amplitude a concentration can be computed from
AMPLITUDE_SOURCES = ("peak_finder", "lockin")


class ConcentrationParams(StrictModel):
    """ppm = c0 + c1*a + c2*a^2 + ... of the source node's amplitude ``a``."""

    source_node: str | None = Field(
        None, description="peak_finder/lockin node id; null = the nearest upstream one"
    )
    polynomial_coefficients: list[float] = Field(
        default_factory=lambda: [0.0, 50000.0], min_length=1, max_length=5
    )
    amplitude_unit: Literal["linear", "db"] = "linear"
    temperature_coefficient_per_c: float = Field(
        0.0, ge=-1, le=1, description="relative amplitude change per degree C"
    )
    reference_temperature_c: float = 25.0
    temperature_c: float | None = Field(
        None, description="fixed cell temperature when the source reports none"
    )
    min_ppm: float = 0.0
    max_ppm: float | None = None
    max_input_age_s: float = Field(2.0, gt=0, description="ignore source results older than this")

    @model_validator(mode="after")
    def _range_ordered(self) -> ConcentrationParams:
        if self.max_ppm is not None and self.max_ppm <= self.min_ppm:
            raise ValueError(f"max_ppm ({self.max_ppm}) must be above min_ppm ({self.min_ppm})")
        if not all(math.isfinite(c) for c in self.polynomial_coefficients):
            raise ValueError("polynomial_coefficients must be finite numbers")
        return self


def resolve_source_node(node_id: str, params: ConcentrationParams, ctx: BuildContext) -> str:
    """The amplitude source of a concentration node, checked against the graph."""
    if params.source_node is not None:
        kind = ctx.node_types_by_id.get(params.source_node)
        if kind is None:
            raise ConfigError(
                f"node {node_id!r} (concentration): source_node {params.source_node!r} is not a "
                f"node of the graph"
            )
        if kind not in AMPLITUDE_SOURCES:
            raise ConfigError(
                f"node {node_id!r} (concentration): source_node {params.source_node!r} is a "
                f"{kind} node; expected one of {', '.join(AMPLITUDE_SOURCES)}"
            )
        return params.source_node
    for upstream in reversed(ctx.upstream_ids):
        if ctx.node_types_by_id.get(upstream) in AMPLITUDE_SOURCES:
            return upstream
    raise ConfigError(
        f"node {node_id!r} (concentration): no peak_finder or lockin node upstream; "
        f"connect one before it or set source_node"
    )


@register
class ConcentrationNode(Node):
    """Publishes the gas concentration computed from a peak finder's latest result."""

    type_name = "concentration"
    Params = ConcentrationParams
    computing = True
    result_kind = "concentration"

    def __init__(self, node_id: str, params: ConcentrationParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        self.source_node = resolve_source_node(node_id, params, ctx)
        try:
            self._calculator = ConcentrationCalculator(
                coefficients=list(params.polynomial_coefficients),
                temperature_coefficient_per_c=params.temperature_coefficient_per_c,
                reference_temperature_c=params.reference_temperature_c,
                min_ppm=params.min_ppm,
                max_ppm=params.max_ppm,
            )
        except DspError as exc:
            raise ConfigError(f"node {node_id!r} (concentration): {exc}") from None
        self._state = ctx.state
        self._fixed_temperature = (
            math.nan if params.temperature_c is None else params.temperature_c
        )
        self.stale_inputs = 0
        self.clamped = 0

    @property
    def calibration(self) -> list[float]:
        """The polynomial coefficients (c0 first); the simulator inverts them."""
        return list(self.params.polynomial_coefficients)

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        source = self._state.get(self.source_node)
        if source is None or frame.timestamp - source.monotonic > self.params.max_input_age_s:
            self.stale_inputs += 1
            return signal
        ppm = math.nan
        if source.detected:
            x = source.amplitude_db if self.params.amplitude_unit == "db" else source.amplitude
            temperature = frame.temperature_c
            if math.isnan(temperature):
                temperature = self._fixed_temperature
            ppm = self._calculator.compute(x, temperature)
            self.clamped += self._calculator.last_clamped
        self._state.publish(
            ComputingResult(
                node_id=self.node_id,
                kind=self.result_kind,
                timestamp=source.timestamp,
                monotonic=source.monotonic,
                sequence=source.sequence,
                detected=source.detected,
                frequency_hz=source.frequency_hz,
                amplitude=source.amplitude,
                amplitude_db=source.amplitude_db,
                snr_db=source.snr_db,
                coherence=source.coherence,
                concentration_ppm=ppm,
                source_node_id=self.source_node,
                clamped=bool(self._calculator.last_clamped) if source.detected else False,
                phase=self._state.marks.phase,
                flags=self._state.marks.flags,
            )
        )
        return signal

    def get_status(self) -> dict[str, Any]:
        return {"source_node": self.source_node, "stale_inputs": self.stale_inputs,
                "clamped": self.clamped}
