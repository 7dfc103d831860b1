"""The calibration fit (firmware/calibration/fit.py): the lowest passing degree, through zero,
uncertainties, and the refusals: too few points, residuals beyond tolerance, not monotonic."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.calibration.errors import CalibrationError
from firmware.calibration.fit import Tolerance, fit_calibration, fit_degree, rising_problem

TIGHT = Tolerance(ppm=1.0, percent=0.5)


def test_the_lowest_degree_that_meets_the_tolerance_wins() -> None:
    x = np.array([0.0, 0.01, 0.02, 0.03, 0.04])
    y = 40000 * x + 100000 * x**2
    fit = fit_calibration(x, y, degree=None, max_degree=4, through_zero=False,
                          tolerance=TIGHT)
    assert fit.degree == 2
    assert fit.coefficients == pytest.approx([0.0, 40000.0, 100000.0], abs=1e-6)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.uncertainties is not None and max(fit.uncertainties) < 1e-3
    assert fit.amplitude_range == (0.0, 0.04) and fit.concentration_range == (0.0, y[-1])


def test_uncertainties_grow_with_the_scatter_and_are_null_without_spare_points() -> None:
    x = np.array([0.0, 0.01, 0.02, 0.03])
    y = 50000 * x + np.array([0.0, 3.0, -3.0, 2.0])
    fit = fit_degree(x, y, 1, through_zero=False, tolerance=Tolerance(10.0, 0.0))
    assert fit.uncertainties is not None and fit.uncertainties[1] > 50
    assert [round(r, 9) for r in fit.residuals_ppm] == [
        round(v, 9) for v in y - np.polynomial.polynomial.polyval(x, fit.coefficients)]
    exact = fit_degree(x[:2], y[:2], 1, through_zero=False, tolerance=Tolerance(10.0, 0.0))
    assert exact.uncertainties is None


def test_through_zero_fixes_c0() -> None:
    x = np.array([0.01, 0.02, 0.04])
    fit = fit_degree(x, 50000 * x + 5.0, 1, through_zero=True, tolerance=Tolerance(10, 0))
    assert fit.coefficients[0] == 0.0 and fit.through_zero
    assert fit.uncertainties is not None and fit.uncertainties[0] == 0.0


@pytest.mark.parametrize(("degree", "through_zero", "points", "message"), [
    (2, False, 2, "a degree-2 fit needs at least 3 points; 2 measured"),
    (3, True, 2, "a degree-3 fit through zero needs at least 3 points; 2 measured"),
])
def test_too_few_points_are_refused(degree: int, through_zero: bool, points: int,
                                    message: str) -> None:
    x = np.linspace(0.01, 0.03, points)
    with pytest.raises(CalibrationError, match=message):
        fit_degree(x, 50000 * x, degree, through_zero=through_zero, tolerance=TIGHT)


def test_residuals_beyond_the_tolerance_are_refused_naming_the_point() -> None:
    x = np.array([0.0, 0.01, 0.02, 0.03])
    y = np.array([0.0, 500.0, 1060.0, 1500.0])
    with pytest.raises(CalibrationError, match=r"misses the 1060 ppm point by \+\d"):
        fit_degree(x, y, 1, through_zero=False, tolerance=Tolerance(10.0, 1.0))
    with pytest.raises(CalibrationError, match="no fit of degree 1 to 1 passes"):
        fit_calibration(x, y, degree=None, max_degree=1, through_zero=False,
                        tolerance=Tolerance(10.0, 1.0))


def test_a_fit_that_turns_back_inside_the_range_is_refused() -> None:
    x = np.array([0.0, 0.01, 0.02, 0.03])
    y = np.array([0.0, 800.0, 1000.0, 900.0])  # the signal rises while the gas falls back
    with pytest.raises(CalibrationError, match="not monotonic"):
        fit_degree(x, y, 3, through_zero=False, tolerance=Tolerance(1000.0, 0.0))
    assert rising_problem([0.0, 1.0], 0.0, 1.0) is None
    assert "does not rise" in (rising_problem([0.0, -1.0], 0.0, 1.0) or "")


def test_points_sharing_one_amplitude_cannot_determine_a_fit() -> None:
    with pytest.raises(CalibrationError, match="undetermined"):
        fit_degree([0.02, 0.02, 0.02], [0.0, 500.0, 1000.0], 2, through_zero=False,
                   tolerance=Tolerance(1e6, 0.0))
