"""Peak finder node: the resonance's frequency and amplitude from a windowed FFT."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.peaks import PeakFinder
from firmware.dsp.registry import register
from firmware.dsp.spectrum_tap import SpectrumTap
from firmware.errors import ConfigError, DspError, NodeParameterError
from firmware.state import ComputingResult
from firmware.strict_model import StrictModel


class PeakFinderParams(StrictModel):
    """Search ``frequency_min``..``frequency_max`` Hz of an ``fft_size``-point spectrum, or
    ``center_frequency`` +/- ``bandwidth``/2 (like a filter: the resonance set once, e.g. with
    a shared value, and the same for both)."""

    fft_size: int = Field(4096, ge=64, le=65536)
    frequency_min: float = Field(1500.0, ge=0)
    frequency_max: float = Field(2500.0, gt=0)
    center_frequency: float | None = Field(
        None, gt=0, description="search band centre (with bandwidth, instead of min/max)")
    bandwidth: float | None = Field(None, gt=0, description="search band width in Hz")
    window: Literal["hann", "blackmanharris", "flattop", "rectangular"] = "hann"
    detection_threshold_db: float = Field(
        12.0, ge=0, le=120, description="peak over noise floor needed to report a detection"
    )
    coherence_frames: int = Field(5, ge=1, le=1000)
    smoothing: float = Field(
        1.0, gt=0, le=1, description="EMA weight of each new value (1 = no smoothing)"
    )
    channel: Literal["A", "B"] = Field("A", description="channel analysed for a stereo input")
    amplitude_estimator: Literal["matched", "window"] = Field(
        "matched", description="matched: least-squares sinusoid at the refined frequency "
        "(at the Cramer-Rao bound); window: the windowed bin (robust to strong tones outside "
        "the band)")
    spectrum: Literal["auto", "fft", "band"] = Field(
        "auto", description="band: only the searched and noise bins (16-fold split, or a "
        "Goertzel bank when fft_size is not a multiple of 128); fft: full FFT; auto: whichever "
        "the cost model says is cheaper (same result)")

    @model_validator(mode="after")
    def _range_ordered(self) -> PeakFinderParams:
        by_center = self.center_frequency is not None or self.bandwidth is not None
        if by_center:
            if self.center_frequency is None or self.bandwidth is None:
                raise ValueError("center_frequency and bandwidth go together")
            given = {"frequency_min", "frequency_max"} & self.model_fields_set
            if given:
                raise ValueError(f"give either center_frequency+bandwidth or frequency_min+"
                                 f"frequency_max, not both (got {', '.join(sorted(given))} "
                                 f"too)")
            if self.bandwidth / 2 >= self.center_frequency:
                raise ValueError(f"bandwidth {self.bandwidth:g} Hz reaches below 0 Hz around "
                                 f"center_frequency {self.center_frequency:g} Hz")
            half = self.bandwidth / 2
            # frozen model: set the derived band once, here, as validation does
            self.__dict__["frequency_min"] = self.center_frequency - half
            self.__dict__["frequency_max"] = self.center_frequency + half
        if self.frequency_max <= self.frequency_min:
            raise ValueError(
                f"frequency_max ({self.frequency_max}) must be above frequency_min "
                f"({self.frequency_min})"
            )
        return self


@register
class PeakFinderNode(Node):
    """Publishes frequency, amplitude (input units and dB), SNR and coherence every frame.

    Pass-through: its output is its input, so filters or recorders can follow it.
    """

    type_name = "peak_finder"
    Params = PeakFinderParams
    computing = True
    result_kind = "peak"

    def __init__(self, node_id: str, params: PeakFinderParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        nyquist = ctx.sample_rate / 2.0
        if params.frequency_max > nyquist:
            raise NodeParameterError(
                f"node {node_id!r} (peak_finder): frequency_max {params.frequency_max} Hz is "
                f"above the Nyquist frequency {nyquist} Hz of a {ctx.sample_rate} Hz stream",
                key="center_frequency" if params.center_frequency is not None
                else "frequency_max")
        try:
            self._finder = PeakFinder(
                sample_rate=ctx.sample_rate,
                fft_size=params.fft_size,
                frequency_min_hz=params.frequency_min,
                frequency_max_hz=params.frequency_max,
                window=params.window,
                detection_threshold_db=params.detection_threshold_db,
                coherence_frames=params.coherence_frames,
                smoothing=params.smoothing,
                spectrum=params.spectrum,
                amplitude_estimator=params.amplitude_estimator,
            )
        except DspError as exc:
            raise ConfigError(f"node {node_id!r} (peak_finder): {exc}") from None
        self._row = 1 if (params.channel == "B" and ctx.input_channels == 2) else 0
        self._state = ctx.state
        self.detections = 0
        finder = self._finder
        #: the recent spectrum around the resonance, for the dashboard (copied only on demand)
        self.spectrum_tap = SpectrumTap(
            finder.magnitude_view, first_bin=finder.magnitude_first_bin, bin_hz=finder.bin_hz,
            scale=finder.amplitude_scale, search_hz=(params.frequency_min, params.frequency_max))

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        peak = self._finder.process(signal[self._row])
        self.detections += peak.detected
        if frame.timestamp <= self.spectrum_tap.wanted_until:  # someone looks at it
            self.spectrum_tap.offer(frame.sequence, frame.wall_time)
        marks = self._state.marks
        # positional, in field order: a keyword call of a NamedTuple costs 0.3 us more, per
        # frame (tests/dsp/nodes/test_result_fields.py checks every field by name)
        self._state.publish(ComputingResult(
            self.node_id, self.result_kind, frame.wall_time, frame.timestamp, frame.sequence,
            peak.detected, peak.frequency_hz, peak.amplitude, peak.amplitude_db, peak.snr_db,
            peak.coherence, math.nan, math.nan, None, False, marks.phase, marks.flags))
        return signal

    def get_status(self) -> dict[str, Any]:
        return {"detections": self.detections,
                "spectrum_method": self._finder.spectrum_method,
                "band_form": self._finder.band_form}
