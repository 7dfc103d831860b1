"""Every field of the results the peak finder and concentration nodes publish, by name.

Both nodes build their ``ComputingResult`` positionally (a keyword call costs 0.3 us per frame
on the DSP thread), so a value landing in the wrong field would otherwise pass unnoticed:
each field here gets a value no other field holds, and is checked by its name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from firmware.dsp.peaks import PeakFinder
from firmware.state import ComputingResult, ComputingState
from tests.dsp.nodes.building import FS, N, build, frame, tone

PEAK_PARAMS = {"fft_size": N, "frequency_min": 1500.0, "frequency_max": 2500.0,
               "coherence_frames": 3}


def _run(state: ComputingState, frames: int,
         concentration: dict[str, Any] | None = None) -> tuple[ComputingResult, ComputingResult]:
    """Feed a 2000 Hz tone on channel A through a peak finder and a concentration node (its
    parameters ``concentration``, by default ppm = 10 + 50000 A)."""
    peak_node = build("peak_finder", PEAK_PARAMS, node_id="pk", state=state)
    ppm_node = build("concentration",
                     concentration or {"polynomial_coefficients": [10.0, 50000.0]},
                     node_id="ppm", state=state, upstream=["pk"], types={"pk": "peak_finder"})
    for i in range(frames):
        samples = np.stack([tone(2000.0, 0.02, start=i * N), np.zeros(N)])
        f = frame(samples, sequence=70 + i, timestamp=300.0 + i, wall_time=1.8e9 + i)
        peak_node.process(samples, f)
        ppm_node.process(samples, f)
    peak_result, ppm_result = state.get("pk"), state.get("ppm")
    assert peak_result is not None and ppm_result is not None
    return peak_result, ppm_result


def test_peak_finder_result_fields() -> None:
    state = ComputingState()
    state.marks.phase = "measure"
    state.marks.set_flags("selftest", ["mic_b_clipping"])
    result, _ = _run(state, 3)
    assert result.node_id == "pk"
    assert result.kind == "peak"
    assert result.timestamp == 1.8e9 + 2
    assert result.monotonic == 302.0
    assert result.sequence == 72
    assert result.detected is True
    assert abs(result.frequency_hz - 2000.0) < 1.0
    assert abs(result.amplitude - 0.02) < 2e-4
    assert result.amplitude_db == 20 * math.log10(result.amplitude)
    assert result.snr_db > 40.0
    assert result.coherence == 1.0
    assert math.isnan(result.phase_rad)
    assert math.isnan(result.concentration_ppm)
    assert result.source_node_id is None
    assert result.clamped is False
    assert result.phase == "measure"
    assert result.flags == ("mic_b_clipping",)
    assert result.average is None


def test_peak_finder_result_equals_the_bare_finder() -> None:
    state = ComputingState()
    result, _ = _run(state, 3)
    reference = PeakFinder(sample_rate=FS, fft_size=N, frequency_min_hz=1500.0,
                           frequency_max_hz=2500.0, coherence_frames=3)
    for i in range(3):
        expected = reference.process(tone(2000.0, 0.02, start=i * N))
    assert expected.detected
    assert (result.frequency_hz, result.amplitude, result.amplitude_db, result.snr_db,
            result.coherence) == (expected.frequency_hz, expected.amplitude,
                                  expected.amplitude_db, expected.snr_db, expected.coherence)


def test_concentration_result_fields() -> None:
    state = ComputingState()
    state.marks.phase = "zero"
    state.marks.set_flags("calibration", ["calibration_overdue"])
    source, result = _run(state, 3)
    assert result.node_id == "ppm"
    assert result.kind == "concentration"
    # the measurement's own time, sequence and peak figures are the source's
    assert result.timestamp == source.timestamp == 1.8e9 + 2
    assert result.monotonic == source.monotonic == 302.0
    assert result.sequence == source.sequence == 72
    assert result.detected is True
    assert result.frequency_hz == source.frequency_hz
    assert result.amplitude == source.amplitude
    assert result.amplitude_db == source.amplitude_db
    assert result.snr_db == source.snr_db
    assert result.coherence == source.coherence
    assert math.isnan(result.phase_rad)
    assert result.concentration_ppm == 10.0 + 50000.0 * source.amplitude
    assert result.source_node_id == "pk"
    assert result.clamped is False
    assert result.phase == "zero"
    assert result.flags == ("calibration_overdue",)
    assert result.average is None


def test_concentration_clamped_field() -> None:
    _, result = _run(ComputingState(), 2, {"polynomial_coefficients": [0.0, 50000.0],
                                           "max_ppm": 500.0})
    assert result.clamped is True
    assert result.concentration_ppm == 500.0
