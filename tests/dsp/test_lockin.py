"""Lock-in detector: amplitude/phase after settling, frame-split independence, validation."""

import math

import numpy as np
import pytest

from firmware.dsp.lockin import LockInDetector
from firmware.errors import DspError

FS = 48000


def signal(amplitude, phase, seconds, *, freq=2000.0, noise=0.0, seed=0):
    t = np.arange(int(seconds * FS)) / FS
    x = amplitude * np.sin(2 * np.pi * freq * t + phase)
    if noise:
        x += noise * np.random.default_rng(seed).standard_normal(t.size)
    return x


def run(detector, x, frame):
    result = None
    for start in range(0, len(x), frame):
        result = detector.process(x[start : start + frame])
    return result


@pytest.mark.parametrize("phase", [-2.5, -0.4, 0.0, 0.7, 1.9, 3.0])
@pytest.mark.parametrize("order", [1, 2, 4])
def test_amplitude_and_phase_after_settling(phase, order):
    li = LockInDetector(sample_rate=FS, reference_hz=2000.0, time_constant_s=0.05,
                        filter_order=order)
    result = run(li, signal(0.3, phase, 1.5, noise=0.05), 1024)
    assert abs(result.amplitude / 0.3 - 1) < 0.01
    assert abs(math.remainder(result.phase_rad - phase, 2 * math.pi)) < 0.02
    assert result.in_phase == pytest.approx(0.3 * math.cos(phase), abs=0.005)
    assert result.quadrature == pytest.approx(0.3 * math.sin(phase), abs=0.005)


def test_off_reference_tone_is_rejected():
    li = LockInDetector(sample_rate=FS, reference_hz=2000.0, time_constant_s=0.05)
    result = run(li, signal(0.3, 0.0, 1.0, freq=2200.0), 1024)
    assert result.amplitude < 0.3 * 1e-3


def test_result_does_not_depend_on_frame_split():
    x = signal(0.2, 1.1, 0.5, noise=0.1, seed=4)
    results = [run(LockInDetector(sample_rate=FS, reference_hz=1987.3), x, frame)
               for frame in (1024, 333, 4096, 1)]
    # same total: the last frame of each split ends on the same sample
    for other in results[1:]:
        assert other.in_phase == pytest.approx(results[0].in_phase, abs=1e-9)
        assert other.quadrature == pytest.approx(results[0].quadrature, abs=1e-9)


def test_reference_phase_is_continuous_across_frames():
    li = LockInDetector(sample_rate=FS, reference_hz=1000.0)
    li.process(np.zeros(12))  # 12 samples = a quarter period at 1 kHz
    assert li.reference_phase_rad == pytest.approx(math.pi / 2)
    li.process(np.zeros(36))
    assert li.reference_phase_rad == pytest.approx(0.0, abs=1e-12)
    li.reset()
    assert li.reference_phase_rad == 0.0


def test_reset_restarts_from_zero():
    li = LockInDetector(sample_rate=FS, reference_hz=2000.0)
    x = signal(0.2, 0.5, 0.1)
    first = run(li, x, 1000)
    li.reset()
    again = run(li, x, 1000)
    assert again.amplitude == pytest.approx(first.amplitude, rel=1e-12)


def test_single_row_input():
    li = LockInDetector(sample_rate=FS, reference_hz=2000.0)
    li.process(np.zeros((1, 64)))
    with pytest.raises(DspError, match=r"one channel; got an array of shape \(2, 64\)"):
        li.process(np.zeros((2, 64)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 0.0}, r"sample_rate=0.0 must be a positive"),
        ({"reference_hz": 30000.0}, r"reference_hz=30000.0 must be in \(0, 24000\) Hz"),
        ({"reference_hz": 0.0}, r"reference_hz=0.0 must be in"),
        ({"time_constant_s": 0.0}, r"time_constant_s=0.0 must be a positive"),
        ({"filter_order": 0}, r"filter_order=0 must be an integer from 1 to 8"),
        ({"filter_order": 9}, r"filter_order=9 must be an integer from 1 to 8"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    params = {"sample_rate": FS, "reference_hz": 2000.0}
    params.update(kwargs)
    with pytest.raises(DspError, match=match):
        LockInDetector(**params)
