"""Numba kernels against plain numpy/scipy references."""

import numpy as np
import pytest
import scipy.signal

from firmware.dsp import kernels


def _frames(channels, n, count, seed=0):
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(rng.standard_normal((channels, n))) for _ in range(count)]


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("sections", [1, 2, 3, 6])
def test_sos_filter_matches_sosfilt_with_carried_state(channels, sections):
    sos = np.ascontiguousarray(
        scipy.signal.butter(sections, [1800, 2200], "bandpass", fs=48000, output="sos")
    )
    zi = np.zeros((channels, sos.shape[0], 2))
    zi_ref = np.zeros_like(zi)
    out = np.empty((channels, 512))
    for x in _frames(channels, 512, 6):
        kernels.sos_filter(sos, zi, x, out)
        for c in range(channels):
            expected, zi_ref[c] = scipy.signal.sosfilt(sos, x[c], zi=zi_ref[c])
            assert np.max(np.abs(out[c] - expected)) < 1e-12
    assert np.max(np.abs(zi - zi_ref)) < 1e-12


def test_sos_filter_in_place_equals_out_of_place():
    sos = np.ascontiguousarray(scipy.signal.cheby1(5, 1.0, 3000, fs=48000, output="sos"))
    x = _frames(2, 256, 1, seed=3)[0]
    out = np.empty_like(x)
    zi_a = np.zeros((2, sos.shape[0], 2))
    zi_b = zi_a.copy()
    kernels.sos_filter(sos, zi_a, x, out)
    kernels.sos_filter(sos, zi_b, x, x)  # out aliases x
    np.testing.assert_array_equal(out, x)


def test_gain_and_mixers():
    x = _frames(2, 64, 1, seed=1)[0]
    out = np.empty_like(x)
    kernels.scale(x, 2.5, out)
    np.testing.assert_allclose(out, 2.5 * x)
    one = np.empty((1, 64))
    kernels.differential(x, one)
    np.testing.assert_allclose(one[0], x[0] - x[1])
    kernels.mix(x, 0.5, 0.5, one)
    np.testing.assert_allclose(one[0], 0.5 * (x[0] + x[1]))
    kernels.mix(x, 0.3, -1.2, one)
    np.testing.assert_allclose(one[0], 0.3 * x[0] - 1.2 * x[1])
    kernels.select_channel(x, 1, one)
    np.testing.assert_array_equal(one[0], x[1])


def test_push_history_keeps_newest_samples():
    history = np.zeros(8)
    kernels.push_history(history, np.arange(3.0))
    np.testing.assert_array_equal(history, [0, 0, 0, 0, 0, 0, 1, 2])
    kernels.push_history(history, np.arange(3.0, 9.0))
    np.testing.assert_array_equal(history, [1, 2, 3, 4, 5, 6, 7, 8])
    kernels.push_history(history, np.arange(100.0, 120.0))  # longer than the history
    np.testing.assert_array_equal(history, np.arange(112.0, 120.0))


@pytest.mark.parametrize("count", [1, 2, 3, 10, 11, 50])
def test_median_excluding_matches_numpy(count):
    rng = np.random.default_rng(count)
    values = rng.random(200)
    lo, hi = 20, 20 + count + 2
    scratch = np.empty(200)
    kept = [values[k] for k in range(lo, hi + 1) if not 25 <= k <= 27]
    assert kernels.median_excluding(values, lo, hi, 25, 27, scratch) == pytest.approx(
        np.median(kept)
    )


def test_median_excluding_everything_is_nan():
    assert np.isnan(kernels.median_excluding(np.ones(10), 2, 4, 0, 9, np.empty(10)))


def test_window_response_is_the_dtft_magnitude():
    window = scipy.signal.get_window("hann", 256)
    n = np.arange(256)
    for delta in (0.0, 0.3, -0.45, 1.2):
        expected = abs(np.sum(window * np.exp(-2j * np.pi * delta * n / 256)))
        assert kernels.window_response(window, delta) == pytest.approx(expected, rel=1e-11)


def test_interpolate_table_is_linear_and_clamped():
    xs = np.array([0.0, 1.0, 3.0])
    ys = np.array([10.0, 20.0, 0.0])
    assert kernels.interpolate_table(xs, ys, 0.5) == pytest.approx(15.0)
    assert kernels.interpolate_table(xs, ys, 2.0) == pytest.approx(10.0)
    assert kernels.interpolate_table(xs, ys, -1.0) == 10.0
    assert kernels.interpolate_table(xs, ys, 9.0) == 0.0


def test_jacobsen_offset_is_nearly_exact_for_a_complex_tone():
    n = 1024
    for delta in (-0.4, 0.0, 0.17, 0.49):
        tone = np.exp(2j * np.pi * (100 + delta) * np.arange(n) / n)
        spectrum = np.fft.fft(tone)
        factor = np.tan(np.pi / n) / (np.pi / n)
        assert kernels.jacobsen_offset(spectrum, 100, factor) == pytest.approx(delta, abs=1e-6)
