"""Band kernels: Goertzel bins equal the FFT's, the tone DFT and least-squares amplitude are
exact, the cost model picks the band for narrow ranges only."""

import math

import numpy as np
import pytest

from firmware.dsp import band_kernels as bk

N = 4096


def bins(x: np.ndarray, ks: np.ndarray) -> np.ndarray:
    omega = 2 * np.pi * ks / x.size
    out = np.zeros(ks.size, dtype=complex)
    keep = np.zeros_like(x)
    bk.goertzel_bins(x, 2 * np.cos(omega), np.exp(1j * omega), np.zeros(ks.size),
                     np.zeros(ks.size), out, keep)
    assert np.array_equal(keep, x)
    return out


@pytest.mark.parametrize("length", [N, N - 1, N - 2, N - 3, 64])
def test_goertzel_bins_equal_the_fft(length: int) -> None:
    x = np.random.default_rng(length).standard_normal(length)
    ks = np.arange(-3, 40) + length // 30  # negative bins are the DTFT there too
    expected = np.fft.fft(x)[ks % length]
    assert np.max(np.abs(bins(x, ks) - expected)) < 1e-11 * np.max(np.abs(expected))


def test_window_bins_are_the_windowed_fft() -> None:
    x = np.random.default_rng(1).standard_normal(N)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N) / N)  # periodic Hann
    kernel = np.array([-0.25, 0.5, -0.25])
    rect = bins(x, np.arange(99, 152))
    out = np.zeros(N // 2 + 1, dtype=complex)
    bk.window_bins(rect, kernel, 1, 100, 150, 99, out)
    expected = np.fft.rfft(x * window)
    assert np.allclose(out[100:151], expected[100:151], rtol=0, atol=1e-10)
    assert not np.any(out[:100]) and not np.any(out[151:])  # nothing outside lo..hi


@pytest.mark.parametrize("length", [N, N - 5, 40])
def test_tone_dft_is_the_dtft_at_any_frequency(length: int) -> None:
    x = np.random.default_rng(2).standard_normal(length)
    lanes = np.zeros((4, bk.BLOCK))
    for omega in (0.0, 0.013, 0.2618, 1.7, math.pi):
        expected = np.sum(x * np.exp(-1j * omega * np.arange(length)))
        assert abs(bk.tone_dft(x, omega, lanes) - expected) < 1e-11 * length


@pytest.mark.parametrize("omega", [0.004, 0.05, 0.2618, 2.5, 3.1])
def test_sinusoid_amplitude_is_exact_for_a_tone_at_any_frequency(omega: float) -> None:
    t = np.arange(N)
    x = 0.37 * np.cos(omega * t + 1.1)
    lanes = np.zeros((4, bk.BLOCK))
    # a plain |DFT| would be biased by the negative-frequency image near DC and Nyquist
    assert bk.matched_amplitude(x, omega, lanes) == pytest.approx(0.37, rel=1e-9)


def test_sinusoid_amplitude_falls_back_at_dc() -> None:
    x = np.full(N, 0.25)
    assert bk.matched_amplitude(x, 0.0, np.zeros((4, bk.BLOCK))) == pytest.approx(0.5)


def test_cost_model_takes_the_band_only_when_narrow() -> None:
    assert bk.band_dft_cheaper(57, 4096)
    assert not bk.band_dft_cheaper(200, 4096)
    assert not bk.band_dft_cheaper(2049, 4096)


@pytest.mark.parametrize("frame", [N // 2, N, N + 100])
def test_band_spectrum_keeps_the_newest_samples(frame: int) -> None:
    history = np.zeros(N)
    rng = np.random.default_rng(3)
    ks = np.arange(10, 26)
    omega = 2 * np.pi * ks / N
    bank = np.zeros((3, ks.size))
    bank[0] = 2 * np.cos(omega)
    cbank = np.zeros((2, ks.size), dtype=complex)
    cbank[0] = np.exp(1j * omega)
    spectrum = np.zeros(N // 2 + 1, dtype=complex)
    stream = rng.standard_normal(3 * frame)
    for start in range(0, stream.size, frame):
        bk.band_spectrum(history, stream[start:start + frame], bank, cbank, np.array([1.0]),
                         10, 25, spectrum)
    assert np.array_equal(history, stream[-N:])
    expected = np.fft.rfft(stream[-N:])
    assert np.allclose(spectrum[10:26], expected[10:26], rtol=0, atol=1e-9)
