"""Peak finder: accuracy between bins, noise rejection, smoothing, coherence, validation.

SNR in these tests is defined as the tone's power (a^2 / 2) over the white noise's total power
(sigma^2) over the full band 0 .. fs/2.
"""

import math
import tracemalloc

import numpy as np
import pytest

from firmware.dsp.peaks import WINDOWS, PeakFinder
from firmware.errors import DspError

FS = 48000
N = 4096
BIN = FS / N


def tone(freq, amplitude, samples, *, snr_db=None, seed=0, phase=0.3, start=0):
    rng = np.random.default_rng(seed)
    n = np.arange(start, start + samples)
    x = amplitude * np.sin(2 * np.pi * freq * n / FS + phase)
    if snr_db is not None:
        sigma = math.sqrt(amplitude**2 / 2 / 10 ** (snr_db / 10))
        x += sigma * rng.standard_normal(samples)
    return x


def finder(**kwargs):
    params = {"sample_rate": FS, "fft_size": N, "frequency_min_hz": 1500.0,
              "frequency_max_hz": 2500.0}
    params.update(kwargs)
    return PeakFinder(**params)


def feed(pf, x, frame=1024):
    result = None
    for start in range(0, len(x), frame):
        result = pf.process(x[start : start + frame])
    return result


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hann_accuracy_between_bins_at_40_db(fraction, seed):
    freq = (170 + fraction) * BIN  # about 2 kHz
    amplitude = 0.25
    pf = finder()
    result = feed(pf, tone(freq, amplitude, 2 * N, snr_db=40.0, seed=seed, phase=seed))
    assert result.detected
    assert abs(result.frequency_hz - freq) < 0.05
    assert abs(result.amplitude / amplitude - 1) < 0.005
    assert result.amplitude_db == pytest.approx(20 * math.log10(result.amplitude))
    assert result.snr_db > 60.0  # 40 dB in the full band + ~33 dB processing gain - window loss


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_every_window_is_accurate_at_40_db(window, fraction):
    freq = (171 + fraction) * BIN
    result = feed(finder(window=window), tone(freq, 0.1, 2 * N, snr_db=40.0, seed=7))
    assert result.detected
    assert abs(result.frequency_hz - freq) < 0.05
    assert abs(result.amplitude / 0.1 - 1) < 0.005


def test_noise_free_estimate_is_nearly_exact():
    for fraction in np.linspace(-0.5, 0.5, 11):
        freq = (180 + fraction) * BIN
        result = finder().process(tone(freq, 0.5, N, snr_db=200.0))
        assert result.raw_frequency_hz == pytest.approx(freq, abs=1e-5)
        assert result.raw_amplitude == pytest.approx(0.5, rel=1e-6)


def test_noise_alone_is_never_detected():
    for seed in range(200):
        pf = finder()
        result = pf.process(np.random.default_rng(seed).standard_normal(N))
        assert not result.detected, f"seed {seed}: snr {result.snr_db:.1f} dB"
        assert math.isnan(result.frequency_hz) and math.isnan(result.amplitude)
        assert result.coherence == 0.0
        assert result.snr_db < 12.0


def test_noise_floor_is_in_amplitude_units():
    # white noise sigma: RMS bin magnitude sigma * sqrt(sum w^2); as a sinusoid amplitude
    # that is 2 * sigma * sqrt(sum w^2) / sum w = 2 * sigma * sqrt(ENBW / N).
    sigma = 0.01
    floors = [finder().process(sigma * np.random.default_rng(s).standard_normal(N)).noise_floor
              for s in range(20)]
    expected = 2 * sigma * math.sqrt(1.5 / N)  # Hann ENBW = 1.5 bins
    assert np.mean(floors) == pytest.approx(expected, rel=0.05)


def test_detection_threshold_gates():
    x = tone(2000.0, 1.0, N, snr_db=-15.0, seed=3)  # weak tone: peak SNR in the 15-25 dB range
    snr = finder().process(x).snr_db
    assert 14.0 < snr < 30.0
    assert finder(detection_threshold_db=snr - 1.0).process(x).detected
    assert not finder(detection_threshold_db=snr + 1.0).process(x).detected


def test_no_detection_until_history_is_full():
    pf = finder()
    x = tone(2000.0, 0.3, N)
    assert not pf.process(x[:1024]).detected
    assert not pf.process(x[1024:3072]).detected
    assert pf.process(x[3072:]).detected
    pf.reset()
    assert not pf.process(x[:1024]).detected


def test_peak_outside_range_is_ignored():
    result = finder().process(tone(3000.0, 0.5, N, snr_db=60.0))  # skirt only, no local max
    assert not result.detected


def test_smoothing_is_an_ema_of_detected_values():
    pf = finder(smoothing=0.25)
    first = pf.process(tone(2000.0, 0.2, N, snr_db=80.0))
    assert first.amplitude == pytest.approx(first.raw_amplitude)
    second = pf.process(tone(2000.0, 0.4, N, snr_db=80.0))
    assert second.raw_amplitude == pytest.approx(0.4, rel=1e-3)
    expected = first.amplitude + 0.25 * (second.raw_amplitude - first.amplitude)
    assert second.amplitude == pytest.approx(expected)
    assert second.frequency_hz == pytest.approx(
        first.frequency_hz + 0.25 * (second.raw_frequency_hz - first.frequency_hz)
    )


def test_coherence_builds_up_and_drops_on_a_jump():
    pf = finder(coherence_frames=4)
    values = [pf.process(tone(2000.0, 0.2, N, snr_db=60.0, seed=s)).coherence for s in range(6)]
    assert values == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    jumped = pf.process(tone(2300.0, 0.2, N, snr_db=60.0))
    assert jumped.detected and jumped.coherence == 0.25
    back = pf.process(tone(2000.0, 0.2, N, snr_db=60.0))
    assert back.coherence == 0.75  # 3 of the last 4 detections near 2000 Hz (itself included)


def test_accepts_a_single_row_and_long_frames():
    x = tone(2010.0, 0.2, 3 * N)
    a = finder().process(x.reshape(1, -1))
    b = finder().process(x[-N:])
    assert a.raw_frequency_hz == pytest.approx(b.raw_frequency_hz)
    with pytest.raises(DspError, match=r"one channel; got an array of shape \(2, 10\)"):
        finder().process(np.zeros((2, 10)))


@pytest.mark.parametrize("spectrum", ["fft", "band"])
def test_process_allocates_no_large_arrays(spectrum):
    pf = finder(spectrum=spectrum)
    frame = tone(2000.0, 0.2, 1024)
    for _ in range(8):
        pf.process(frame)
    tracemalloc.start()
    try:
        for _ in range(20):
            pf.process(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096  # a few small Python objects, never a buffer (32 KiB)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": -1.0}, r"sample_rate=-1.0 must be a positive"),
        ({"fft_size": 8}, r"fft_size=8 must be an integer of at least 16"),
        ({"frequency_min_hz": -5.0}, r"frequency_min_hz=-5.0 must be in \[0, 24000\)"),
        ({"frequency_max_hz": 1000.0}, r"frequency_max_hz=1000.0 must be above"),
        ({"frequency_min_hz": 2000.0, "frequency_max_hz": 2002.0}, r"holds no usable FFT bin"),
        ({"window": "kaiser"}, r"window='kaiser' is not supported; expected one of"),
        ({"coherence_frames": 0}, r"coherence_frames=0 must be an integer >= 1"),
        ({"coherence_tolerance_hz": 0.0}, r"coherence_tolerance_hz=0.0 must be a positive"),
        ({"smoothing": 0.0}, r"smoothing=0.0 must be in \(0, 1\]"),
        ({"smoothing": 1.5}, r"smoothing=1.5 must be in \(0, 1\]"),
        ({"detection_threshold_db": math.nan}, r"detection_threshold_db=nan must be finite"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(DspError, match=match):
        finder(**kwargs)


def test_narrow_range_widens_the_noise_band():
    pf = finder(frequency_min_hz=1990.0, frequency_max_hz=2030.0)
    lo, hi = pf.noise_bins
    assert hi - lo + 1 >= 32
    result = feed(pf, tone(2003.0, 0.1, 2 * N, snr_db=40.0))
    assert result.detected and abs(result.frequency_hz - 2003.0) < 0.05


def test_nan_and_silence_are_not_detected():
    pf = finder()
    silent = pf.process(np.zeros(N))
    assert not silent.detected and silent.noise_floor == 0.0
    poisoned = pf.process(np.full(N, np.nan))
    assert not poisoned.detected and math.isnan(poisoned.snr_db)


# ---------------------------------------------------------------- band path against the FFT


def paired(**kwargs):
    return finder(spectrum="fft", **kwargs), finder(spectrum="band", **kwargs)


def assert_same(a, b):
    """The tolerances the band path is held to (both compute the same bins to ~1e-12)."""
    assert a.detected == b.detected
    assert b.noise_floor == pytest.approx(a.noise_floor, rel=1e-9, abs=1e-300)
    assert b.snr_db == pytest.approx(a.snr_db, abs=1e-7)
    if a.detected:
        assert abs(b.raw_frequency_hz - a.raw_frequency_hz) < 1e-6  # Hz
        assert b.raw_amplitude == pytest.approx(a.raw_amplitude, rel=1e-9)
        assert b.coherence == a.coherence


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("estimator", ["matched", "window"])
def test_band_path_equals_the_fft_path_on_tones_in_noise(window, estimator):
    fft, band = paired(window=window, amplitude_estimator=estimator)
    assert (fft.spectrum_method, band.spectrum_method) == ("fft", "band")
    for seed, fraction in enumerate(np.linspace(-0.5, 0.5, 7)):
        x = tone((172 + fraction) * BIN, 0.2, N, snr_db=10.0 - 4 * seed, seed=seed)
        assert_same(fft.process(x), band.process(x))


@pytest.mark.parametrize("window", list(WINDOWS))
def test_band_path_equals_the_fft_path_on_noise_and_odd_frames(window):
    fft, band = paired(window=window)
    rng = np.random.default_rng(11)
    for size in (1000, 4096, 333, 5000, 17):  # the history slides the same way
        x = rng.standard_normal(size) * 10.0 ** rng.uniform(-3, 1)
        assert_same(fft.process(x), band.process(x))
    # a strong tone just outside the range: its skirt fills the band the same way
    x = tone(2560.0, 1.0, N, snr_db=60.0)
    assert_same(fft.process(x), band.process(x))


def test_band_path_spectrum_view_equals_the_fft_path():
    fft, band = paired()
    x = tone(2003.0, 0.1, N, snr_db=20.0)
    fft.process(x)
    band.process(x)
    assert fft.magnitude_first_bin == band.magnitude_first_bin
    scale = np.max(fft.magnitude_view)
    assert np.allclose(band.magnitude_view, fft.magnitude_view, rtol=0, atol=1e-11 * scale)


def test_auto_takes_the_band_when_narrow_and_the_fft_when_wide():
    # the default graph's 1700..2300 Hz: 57 bins of 2049, and 1500..2500 Hz: 91, are well
    # inside the folded band path's range; 100 Hz .. 20 kHz is not
    assert finder(frequency_min_hz=1700.0, frequency_max_hz=2300.0).spectrum_method == "band"
    assert finder().spectrum_method == "band"
    assert finder().band_form == "folded"
    wide = finder(frequency_min_hz=100.0, frequency_max_hz=20000.0)
    assert wide.spectrum_method == "fft" and wide.band_form is None
    result = wide.process(tone(12345.0, 0.3, N, snr_db=40.0))
    assert result.detected and abs(result.frequency_hz - 12345.0) < 0.1
    with pytest.raises(DspError, match=r"spectrum='dct' is not supported"):
        finder(spectrum="dct")
    with pytest.raises(DspError, match=r"amplitude_estimator='peak' is not supported"):
        finder(amplitude_estimator="peak")


@pytest.mark.parametrize("fft_size", [4090, 4000 + 8])
def test_sizes_that_do_not_fold_take_the_bank_with_the_same_result(fft_size):
    fft, band = paired(fft_size=fft_size)
    assert fft_size % 16 and band.band_form == "bank"
    for seed in range(3):
        x = tone((172 + 0.3 * seed) * FS / fft_size, 0.2, fft_size, snr_db=10.0, seed=seed)
        assert_same(fft.process(x), band.process(x))


def test_matched_amplitude_varies_less_than_the_window_estimate():
    """Same records, both estimators: the matched one's variance is near 2 sigma^2 / N."""
    matched, window = finder(), finder(amplitude_estimator="window")
    a_m, a_w = [], []
    sigma = 0.05
    for seed in range(150):
        noise = sigma * np.random.default_rng(seed).standard_normal(N)
        x = tone(2003.7, 0.05, N, seed=seed) + noise
        a_m.append(matched.process(x).raw_amplitude)
        a_w.append(window.process(x).raw_amplitude)
    crb = 2 * sigma**2 / N
    assert np.var(a_m) / crb < 1.3  # 1.0 expected; 150 trials leave ~12 % spread
    assert np.var(a_m) < 0.85 * np.var(a_w)  # Hann: 1.5 times the bound
    assert np.mean(a_m) == pytest.approx(0.05, rel=0.01)
