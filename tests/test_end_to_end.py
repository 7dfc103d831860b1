"""The whole analyzer on the simulator: reported concentration against the ground truth."""

from __future__ import annotations

import math

import numpy as np

from firmware.app.analyzer import Analyzer


def run_collect(doc, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Process ``frames`` frames; return (truth ppm, reported ppm) per frame."""
    analyzer = Analyzer(doc, realtime=False)
    analyzer.warm_up()
    truth, reported = [], []
    analyzer.source.open()
    try:
        for _ in range(frames):
            frame = analyzer.source.read()
            assert frame is not None
            analyzer.process_frame(frame)
            result = analyzer.state.get("concentration")
            assert result is not None and result.sequence == frame.sequence
            truth.append(frame.truth_ppm)
            reported.append(result.concentration_ppm)
    finally:
        analyzer.stop()
    return np.asarray(truth), np.asarray(reported)


def test_ramp_tracked_within_two_percent_at_default_noise(make_doc):
    def ramp(data):
        data["acquisition"]["simulator"]["concentration"] = {
            "profile": "ramp", "start_ppm": 500.0, "end_ppm": 5000.0, "duration_s": 40.0,
        }

    truth, reported = run_collect(make_doc(ramp), frames=460)
    assert np.all(np.isfinite(reported)), "every frame of a clear signal gives a value"
    relative = np.abs(reported - truth) / truth
    assert np.median(relative) < 0.02
    assert np.percentile(relative, 95) < 0.05


def test_steps_tracked_within_three_frames_of_settling(make_doc):
    levels = [500.0, 3000.0, 1000.0, 4000.0]

    def steps(data):
        data["acquisition"]["simulator"]["concentration"] = {
            "profile": "steps", "levels_ppm": levels, "step_s": 3.0, "repeat": False,
        }

    truth, reported = run_collect(make_doc(steps), frames=140)
    # a step lands inside a frame; the truth has settled from the first frame at the new level
    settled = [i for i in range(1, len(truth))
               if truth[i] != truth[i - 1] and truth[i] in levels]
    assert len(settled) == 3
    for start in settled:
        level = truth[start]
        window = reported[start + 3 : start + 30]
        assert np.all(np.abs(window - level) / level < 0.05), (level, window[:5])


def test_no_concentration_without_signal(make_doc):
    def silent(data):
        data["acquisition"]["simulator"]["concentration"] = {"profile": "constant",
                                                             "value_ppm": 0.0}

    _, reported = run_collect(make_doc(silent), frames=40)
    assert np.mean([math.isnan(v) for v in reported]) > 0.9
