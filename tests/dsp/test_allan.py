"""The overlapping Allan deviation (firmware/dsp/allan.py) against series whose deviation is
known: white noise falls as tau^-1/2 with sigma(tau0) = its standard deviation, a random walk
rises as tau^+1/2, white noise plus drift has its minimum where the two meet; gaps (NaN) are
left out of the sums instead of spoiling them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.dsp.allan import allan_deviation, averaging_factors, regular_series


def white(n: int, sigma: float = 2.0, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, sigma, n)


def test_white_noise_falls_as_the_inverse_square_root_of_tau() -> None:
    adev = allan_deviation(white(50_000), dt_s=0.1)
    assert adev.tau_s[0] == pytest.approx(0.1)
    assert adev.sigma[0] == pytest.approx(2.0, rel=0.02)
    expected = 2.0 * np.sqrt(0.1 / adev.tau_s)
    # the estimate's relative error grows as the number of independent windows falls
    ok = adev.tau_s <= 50.0
    np.testing.assert_allclose(adev.sigma[ok], expected[ok], rtol=0.15)
    assert adev.slope(0.1, 100.0) == pytest.approx(-0.5, abs=0.03)


def test_a_random_walk_rises_as_the_square_root_of_tau() -> None:
    walk = np.cumsum(white(20_000, sigma=1.0) - 100.0)
    adev = allan_deviation(walk, dt_s=1.0)
    assert adev.slope(1.0, 1000.0) == pytest.approx(0.5, abs=0.06)
    tau_opt, _sigma = adev.optimum()
    assert tau_opt == adev.tau_s[0]  # no averaging helps a walk


def test_the_optimum_is_where_white_noise_meets_the_drift() -> None:
    n, dt = 20_000, 1.0
    drift = 0.002 * np.arange(n)  # ppm per second
    adev = allan_deviation(white(n, sigma=1.0) + drift, dt_s=dt)
    tau_opt, sigma_opt = adev.optimum()
    # white: 1/sqrt(tau); linear drift a: a*tau/sqrt(2); minimum near (sqrt(2)/a)^(2/3)/...
    taus = np.logspace(0, 3.8, 400)
    model = np.sqrt(1.0 / taus + (0.002 * taus) ** 2 / 2.0)
    assert tau_opt == pytest.approx(taus[np.argmin(model)], rel=0.5)
    assert sigma_opt == pytest.approx(model.min(), rel=0.2)
    assert adev.sigma[-1] > 2 * sigma_opt  # the curve turns up again


def test_averaging_times_run_from_one_sample_to_a_third_of_the_record() -> None:
    factors = averaging_factors(3000)
    assert factors[0] == 1 and factors[-1] == 1000
    assert np.all(np.diff(factors) > 0)
    assert allan_deviation(np.ones(2), 1.0).empty
    assert averaging_factors(2).shape == (0,)
    # one fixed grid: a longer record keeps the shorter one's points and adds longer ones
    shorter, longer = averaging_factors(2900), averaging_factors(3100)
    assert np.array_equal(longer[:shorter.shape[0] - 1], shorter[:-1])
    assert (shorter[-1], longer[-1]) == (966, 1033)


def test_gaps_are_left_out_not_spread() -> None:
    y = white(30_000)
    holed = y.copy()
    holed[10_000:10_500] = np.nan
    full, gapped = allan_deviation(y, 1.0), allan_deviation(holed, 1.0)
    # a window pair is used only when whole: none is at the longest averaging time
    assert np.all(np.isfinite(gapped.sigma[gapped.pairs > 0]))
    assert gapped.pairs[-1] == 0 and math.isnan(gapped.sigma[-1])
    assert np.all(gapped.pairs < full.pairs)
    np.testing.assert_allclose(gapped.sigma[:10], full.sigma[:10], rtol=0.05)


def test_sigma_at_interpolates_log_log_and_is_nan_outside() -> None:
    adev = allan_deviation(white(10_000), dt_s=0.25)
    assert adev.sigma_at(1.0) == pytest.approx(2.0 * math.sqrt(0.25), rel=0.1)
    assert math.isnan(adev.sigma_at(0.1))
    assert math.isnan(adev.sigma_at(1e6))
    np.testing.assert_allclose(adev.white_sigma(adev.tau_s[:1]), adev.sigma[:1])


def test_a_bad_sample_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="dt_s must be > 0"):
        allan_deviation(white(100), 0.0)


def test_regular_series_puts_values_on_the_grid() -> None:
    out = regular_series(np.array([5.5, 6.5, 9.5]), np.array([1.0, 2.0, 3.0]), 1.0)
    np.testing.assert_array_equal(np.isnan(out), [False, False, True, True, False])
    assert regular_series(np.empty(0), np.empty(0), 1.0).shape == (0,)
