"""estimate_peak: one dispatch gives what the peak finder's steps gave, detection included."""

import math

import numpy as np

from firmware.dsp import peak_kernels as pk
from firmware.dsp.peaks import PeakFinder

N = 4096
FS = 48000


def test_estimate_peak_detects_and_refines_a_tone() -> None:
    pf = PeakFinder(sample_rate=FS, frequency_min_hz=1700.0, frequency_max_hz=2300.0)
    x = 0.2 * np.sin(2 * np.pi * 2004.4 * np.arange(N) / FS)
    pf.process(x)  # fills the spectrum and history the kernel reads
    k, offset, window_amp, matched_amp, floor, snr, detected = pk.estimate_peak(
        pf._spectrum, pf._magnitude, pf._scratch, pf._tables, pf._history, pf._lanes,
        pf._layout, pf._params, True)
    assert detected and abs((k + offset) * FS / N - 2004.4) < 1e-4
    assert abs(window_amp - 0.2) < 1e-6 and abs(matched_amp - 0.2) < 1e-9
    assert snr > 80.0 and floor >= 0.0  # a noiseless tone: only its side lobes are "noise"
    # the same spectrum with the history not yet full is not a detection, and has no
    # matched amplitude (it is only computed for detections)
    *_, matched_amp, _, _, detected = pk.estimate_peak(
        pf._spectrum, pf._magnitude, pf._scratch, pf._tables, pf._history, pf._lanes,
        pf._layout, pf._params, False)
    assert not detected and math.isnan(matched_amp)


def test_estimate_peak_on_silence_has_no_peak() -> None:
    pf = PeakFinder(sample_rate=FS, frequency_min_hz=1700.0, frequency_max_hz=2300.0)
    pf.process(np.zeros(N))
    *_, floor, snr, detected = pk.estimate_peak(
        pf._spectrum, pf._magnitude, pf._scratch, pf._tables, pf._history, pf._lanes,
        pf._layout, pf._params, True)
    assert not detected and snr == -math.inf and floor == 0.0
