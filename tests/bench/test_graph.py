"""`pafw bench` (dsp) parts: the floor filters what the graph's band-pass filters, and both
peak-finder spectrum paths are the configured peak finder. (The whole bench runs in
tests/test_cli.py.)"""

from __future__ import annotations

import numpy as np
import scipy.signal

from firmware.bench.graph import (
    FloorPipeline,
    ReferencePipeline,
    SourceBuffer,
    _peak_finders,
    format_report,
    simulated_frames,
)
from firmware.config.loader import load_config


def test_floor_is_the_band_pass_over_the_differential() -> None:
    doc = load_config(None)
    frames = simulated_frames(doc, 3)
    reference = ReferencePipeline(doc)
    floor = FloorPipeline(reference.sos, frames)
    assert reference.sos.shape[0] == 4  # the default band-pass: four biquads
    per_frame: list[int] = []
    assert floor.run(per_frame) > 0 and len(per_frame) == len(frames)
    diff = np.concatenate([f.samples[0] - f.samples[1] for f in frames])
    expected = scipy.signal.sosfilt(reference.sos, diff)[-frames[0].frame_size:]
    np.testing.assert_allclose(floor.out[0], expected, rtol=0, atol=1e-12)


def test_the_lane_pipeline_filters_what_the_floor_filters() -> None:
    doc = load_config(None)
    frames = simulated_frames(doc, 3)
    reference = ReferencePipeline(doc)
    lanes = FloorPipeline(reference.sos, frames, lanes=True)
    assert lanes.lanes is not None
    assert lanes.run() > 0
    diff = np.concatenate([f.samples[0] - f.samples[1] for f in frames])
    expected = scipy.signal.sosfilt(reference.sos, diff)[-frames[0].frame_size:]
    np.testing.assert_allclose(lanes.out[0], expected, rtol=0, atol=1e-12)


def test_peak_finder_paths_are_the_split_the_bank_and_the_fft() -> None:
    finders = _peak_finders(load_config(None))
    assert {name: (f.spectrum_method, f.band_form) for name, f in finders.items()} == {
        "band": ("band", "folded"), "bank": ("band", "bank"), "fft": ("fft", None)}


def test_report_names_the_floor_and_the_ratios() -> None:
    figures = {
        "frames": 10, "frame_size": 4096, "sample_rate": 48000, "rounds": 3,
        "ours_us_per_frame": 40.0, "realtime_factor": 2133.0,
        "reference_us_per_frame": 280.0, "reference_realtime_factor": 305.0,
        "floor_sections": 4, "floor_us_per_frame": 15.0, "floor_realtime_factor": 5689.0,
        "lanes_us_per_frame": 7.5, "floor_over_lanes": 2.0,
        "speedup_vs_reference": 7.0, "graph_over_floor": 2.67,
        "cold_us_per_frame": {"graph": 45.0, "reference": 290.0},
        "cold_speedup_vs_reference": 6.44,
        "peak_finder_us": {"band": 18.0, "bank": 25.0, "fft": 29.0},
        "peak_finder_fft_over_band": 1.61, "peak_finder_bank_over_band": 1.39,
        "p50_us_per_frame": {"graph": 38.0, "reference": 270.0, "floor": 14.0},
        "p50_speedup_vs_reference": 7.11, "p50_graph_over_floor": 2.71,
        "first_result_s": 2.0, "per_node_us": {"bandpass": 15.0},
    }
    report = format_report(figures)
    assert "floor (4-section biquad)" in report and "graph / floor" in report
    assert "(Goertzel bank 25.0: 1.39x; full FFT path 29.0: 1.61x)" in report
    assert "1.61x" in report and "7.11x the reference, 2.71x the floor" in report
    assert "from a cache-cold array:    graph 45.0, reference 290.0 us/frame: 6.44x" in report
    assert "band-pass in four lanes:" in report and "(2.00x under the floor)" in report
    figures.update(lanes_us_per_frame=None, floor_over_lanes=None)  # a filter not in lanes
    assert "four lanes" not in format_report(figures)


def test_the_source_buffer_hands_each_frame_in_one_reused_buffer() -> None:
    frames = simulated_frames(load_config(None), 3)
    buffer = SourceBuffer(frames)
    loaded = [buffer.load(f) for f in frames[:2]]
    assert loaded[0] is loaded[1] is buffer.frame
    assert np.array_equal(buffer.frame.samples, frames[1].samples)
    assert buffer.frame.samples is not frames[1].samples
    assert buffer.frame.sequence == frames[1].sequence
