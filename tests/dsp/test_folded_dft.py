"""The 16-fold band DFT: the same bins as the FFT for any band and record length that folds,
the history slides as the bank's does, and the cost model's bounds hold."""

import numpy as np
import pytest

from firmware.dsp import folded_dft as fd

N = 4096


def folded(x: np.ndarray, first_bin: int, bins: int) -> np.ndarray:
    band = fd.FoldedBand.plan(first_bin, bins, x.size)
    fd.folded_bins(x, band.work, band.bank, band.cbank, band.lanes, band.sign, band.rect)
    return band.rect.copy()


@pytest.mark.parametrize(("length", "first_bin", "bins"), [
    (N, 170, 60),        # the default band
    (N, -5, 40),         # below DC: the DTFT there (conjugate of the mirror bin)
    (N, 2030, 40),       # across N/2
    (N, 0, 300),         # wide: several vectors of lanes per row
    (128 * 3, 11, 23),   # rows of 24 samples
    (128, 0, 65),        # the smallest foldable size, every bin of the half spectrum
])
def test_folded_bins_equal_the_fft(length: int, first_bin: int, bins: int) -> None:
    x = np.random.default_rng(length + bins).standard_normal(length)
    ks = np.arange(first_bin, first_bin + bins)
    expected = np.fft.fft(x)[ks % length]
    got = folded(x, first_bin, bins)
    assert np.max(np.abs(got - expected)) < 1e-12 * np.max(np.abs(expected))


def test_a_pure_tone_lands_in_its_bin_only() -> None:
    n = np.arange(N)
    x = np.cos(2 * np.pi * 181 * n / N + 0.4)
    got = folded(x, 170, 24)
    assert abs(got[11]) == pytest.approx(N / 2, rel=1e-12)
    assert np.angle(got[11]) == pytest.approx(0.4, abs=1e-12)
    assert np.max(np.abs(np.delete(got, 11))) < 1e-9


@pytest.mark.parametrize("frame", [N // 2, N, N + 100])
def test_folded_band_spectrum_keeps_the_newest_samples(frame: int) -> None:
    band = fd.FoldedBand.plan(10, 16, N)
    history = np.zeros(N)
    spectrum = np.zeros(N // 2 + 1, dtype=complex)
    stream = np.random.default_rng(3).standard_normal(3 * frame)
    for start in range(0, stream.size, frame):
        fd.folded_band_spectrum(history, stream[start:start + frame], band.work, band.bank,
                                band.cbank, band.lanes, band.sign, band.rect,
                                np.array([1.0]), 10, 25, spectrum)
    assert np.array_equal(history, stream[-N:])
    expected = np.fft.rfft(stream[-N:])
    assert np.allclose(spectrum[10:26], expected[10:26], rtol=0, atol=1e-10)
    assert not np.any(spectrum[:10]) and not np.any(spectrum[26:])


@pytest.mark.parametrize("size", [4096 + 8, 4096 + 16, 16 * 37, 4000 + 6, 64, 112])
def test_sizes_that_do_not_fold_are_refused(size: int) -> None:
    assert not fd.foldable(size)
    with pytest.raises(ValueError, match="not a multiple of 16 rows"):
        fd.FoldedBand.plan(0, 8, size)


def test_row_width_bounds_every_plan() -> None:
    for bins in (1, 7, 16, 17, 57, 91, 300):
        for first_bin in range(0, 32, 3):
            planned = fd.FoldedBand.plan(first_bin, bins, N).bank.shape[2]
            assert planned <= fd.row_width(bins)
            assert planned % fd.LANE_WIDTH == 0


def test_cost_model_takes_the_fold_up_to_a_few_hundred_bins() -> None:
    assert fd.folded_cheaper(57, 4096) and fd.folded_cheaper(91, 4096)
    assert fd.folded_cheaper(300, 4096)
    assert not fd.folded_cheaper(600, 4096)
    assert not fd.folded_cheaper(2049, 4096)
