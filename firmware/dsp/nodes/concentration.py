"""Concentration node: peak amplitude -> ppm through the calibration polynomial.

The polynomial is the YAML's ``polynomial_coefficients`` until a calibration record is made
active (firmware/calibration): ``use_calibration`` builds the new calculator on the caller's
thread and replaces one reference, which the DSP thread reads once per frame, so a swap is
atomic and costs the hot path nothing. Results beyond the active record's calibrated range
carry the ``outside_calibrated_range`` flag next to the appliance-wide flags.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

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
#: the flag on a result whose concentration lies outside the active calibration's range
OUTSIDE_CALIBRATED_RANGE = "outside_calibrated_range"


class ActiveCalibration(NamedTuple):
    """What the node computes with: replaced whole, never mutated (read by the DSP thread).

    ``record_id`` None means the YAML coefficients; results below ``lower_ppm`` or above
    ``upper_ppm`` are flagged outside the calibrated range (infinite bounds: never).
    """

    calculator: ConcentrationCalculator
    record_id: str | None
    lower_ppm: float
    upper_ppm: float


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
    pressure_coefficient_per_hpa: float = Field(
        0.0, ge=-1, le=1, description="relative amplitude change per hPa (1/reference: ideal gas)"
    )
    reference_pressure_hpa: float = Field(1013.25, gt=0)
    pressure_hpa: float | None = Field(
        None, gt=0, description="ambient pressure when nothing supplies one (null: none)"
    )

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
            yaml_calculator = self.make_calculator(params.polynomial_coefficients)
        except DspError as exc:
            raise ConfigError(f"node {node_id!r} (concentration): {exc}") from None
        self._yaml = ActiveCalibration(yaml_calculator, None, -math.inf, math.inf)
        self._active = self._yaml
        self._state = ctx.state
        self._fixed_temperature = (
            math.nan if params.temperature_c is None else params.temperature_c
        )
        self._configured_pressure = (
            math.nan if params.pressure_hpa is None else params.pressure_hpa
        )
        #: the ambient pressure (hPa) compensated for; NaN: none known
        self.pressure_hpa = self._configured_pressure
        #: the cell temperature of the last frame (what the calibration records)
        self.last_temperature_c = math.nan
        self._flag_base: tuple[str, ...] = ()
        self._flag_outside: tuple[str, ...] = (OUTSIDE_CALIBRATED_RANGE,)
        self.stale_inputs = 0
        self.clamped = 0
        self.outside_range = 0

    def make_calculator(self, coefficients: list[float] | tuple[float, ...]
                        ) -> ConcentrationCalculator:
        """A calculator with ``coefficients`` and this node's compensation and clamping."""
        params = self.params
        return ConcentrationCalculator(
            coefficients=list(coefficients),
            temperature_coefficient_per_c=params.temperature_coefficient_per_c,
            reference_temperature_c=params.reference_temperature_c,
            min_ppm=params.min_ppm,
            max_ppm=params.max_ppm,
            pressure_coefficient_per_hpa=params.pressure_coefficient_per_hpa,
            reference_pressure_hpa=params.reference_pressure_hpa,
        )

    @property
    def active(self) -> ActiveCalibration:
        """The calibration computed with now."""
        return self._active

    def prepare(self, coefficients: list[float] | tuple[float, ...], *, record_id: str,
                lower_ppm: float, upper_ppm: float) -> ActiveCalibration:
        """Build what ``apply`` swaps in (DspError if the coefficients are invalid)."""
        return ActiveCalibration(self.make_calculator(coefficients), record_id,
                                 float(lower_ppm), float(upper_ppm))

    def apply(self, active: ActiveCalibration) -> None:
        """Compute with ``active`` from the next frame on."""
        self._active = active  # one reference: the DSP thread sees the old or the new

    def use_calibration(self, coefficients: list[float] | tuple[float, ...], *,
                        record_id: str, lower_ppm: float, upper_ppm: float) -> None:
        """Compute with ``coefficients`` from the next frame on (DspError if invalid; the
        current calibration then stays)."""
        self.apply(self.prepare(coefficients, record_id=record_id, lower_ppm=lower_ppm,
                                upper_ppm=upper_ppm))

    def use_yaml(self) -> None:
        """Compute with the YAML coefficients again."""
        self._active = self._yaml

    def set_pressure(self, hpa: float | None) -> None:
        """The ambient pressure to compensate for (None: back to the configured one)."""
        if hpa is not None and not (math.isfinite(hpa) and hpa > 0):
            raise DspError(f"pressure {hpa!r} hPa: expected a positive number")
        self.pressure_hpa = self._configured_pressure if hpa is None else float(hpa)

    def compensated(self, amplitude: float, temperature_c: float) -> float:
        """``amplitude`` (in the node's unit) referred to the reference temperature and
        pressure, as the polynomial sees it (what a calibration fits)."""
        return self._active.calculator.compensate(amplitude, temperature_c, self.pressure_hpa)

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
        active = self._active
        calculator = active.calculator
        temperature = frame.temperature_c
        if math.isnan(temperature):
            temperature = self._fixed_temperature
        self.last_temperature_c = temperature
        flags = self._state.marks.flags
        if source.detected:
            x = source.amplitude_db if self.params.amplitude_unit == "db" else source.amplitude
            ppm = calculator.compute(x, temperature, self.pressure_hpa)
            self.clamped += calculator.last_clamped
            if ppm > active.upper_ppm or ppm < active.lower_ppm:
                self.outside_range += 1
                if flags is not self._flag_base:  # the appliance's flags changed: merge once
                    self._flag_base = flags
                    self._flag_outside = tuple(sorted({*flags, OUTSIDE_CALIBRATED_RANGE}))
                flags = self._flag_outside
        # positional, in field order: a keyword call of a NamedTuple costs 0.3 us more, per
        # frame (tests/dsp/nodes/test_result_fields.py checks every field by name)
        self._state.publish(ComputingResult(
            self.node_id, self.result_kind, source.timestamp, source.monotonic,
            source.sequence, source.detected, source.frequency_hz, source.amplitude,
            source.amplitude_db, source.snr_db, source.coherence, math.nan, ppm,
            self.source_node, bool(calculator.last_clamped) if source.detected else False,
            self._state.marks.phase, flags))
        return signal

    def get_status(self) -> dict[str, Any]:
        active = self._active
        return {"source_node": self.source_node, "stale_inputs": self.stale_inputs,
                "clamped": self.clamped, "calibration_record": active.record_id,
                "coefficients": list(active.calculator.polynomial.coefficients),
                "outside_calibrated_range": self.outside_range,
                "pressure_hpa": self.pressure_hpa if math.isfinite(self.pressure_hpa)
                else None}
