"""Calibration polynomial, its inversion, and the concentration calculator."""

import math

import pytest

from firmware.dsp.concentration import CalibrationPolynomial, ConcentrationCalculator
from firmware.errors import DspError


def test_polynomial_evaluates_c0_first():
    p = CalibrationPolynomial([1.0, 2.0, 3.0, 4.0, 5.0])
    x = 0.7
    assert p(x) == pytest.approx(1 + 2 * x + 3 * x**2 + 4 * x**3 + 5 * x**4)
    assert p.degree == 4
    assert p.derivative(x) == pytest.approx(2 + 6 * x + 12 * x**2 + 20 * x**3)
    assert CalibrationPolynomial([42.0])(123.0) == 42.0


@pytest.mark.parametrize(
    "coefficients",
    [[0.0, 5000.0], [10.0, 4000.0, 800.0], [0.0, 6000.0, -1500.0], [5.0, 3000.0, 0.0, 0.0, 50.0]],
)
@pytest.mark.parametrize("x", [0.0, 1e-6, 0.01, 0.3, 1.2])
def test_inversion_round_trip(coefficients, x):
    p = CalibrationPolynomial(coefficients)
    assert p.invert(p(x), x_max=1.5) == pytest.approx(x, abs=1e-12)


def test_inversion_takes_the_smallest_rising_solution():
    # rises, falls, rises: p' = 3 - 9x + 4.5x^2 is zero at about 0.42 and 1.58
    p = CalibrationPolynomial([0.0, 3.0, -4.5, 1.5])
    target = p(0.2)
    x = p.invert(target, x_max=5.0)
    assert x == pytest.approx(0.2, abs=1e-12)
    # a level only reached after the dip is found on the second rising branch
    high = p(3.0)
    x_high = p.invert(high, x_max=5.0)
    assert p(x_high) == pytest.approx(high) and x_high > 1.58


def test_inversion_out_of_reach_raises():
    p = CalibrationPolynomial([100.0, 1000.0])
    with pytest.raises(DspError, match=r"ppm=50 is not reached .* in \[0, 1\]"):
        p.invert(50.0, x_max=1.0)
    with pytest.raises(DspError, match=r"ppm=5000 is not reached"):
        p.invert(5000.0, x_max=1.0)
    with pytest.raises(DspError, match=r"ppm=nan"):
        p.invert(math.nan)
    with pytest.raises(DspError, match=r"x_max=-1.0 must be a positive"):
        p.invert(200.0, x_max=-1.0)
    falling = CalibrationPolynomial([100.0, -50.0])
    with pytest.raises(DspError, match=r"rising branch"):
        falling.invert(80.0, x_max=1.0)


@pytest.mark.parametrize("coefficients", [[], [1.0] * 6])
def test_bad_coefficient_count_raises(coefficients):
    with pytest.raises(DspError, match=rf"has {len(coefficients)} coefficients .* expected 1 to 5"):
        CalibrationPolynomial(coefficients)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_coefficient_raises(bad):
    with pytest.raises(DspError, match=r"coefficient c1=(nan|inf) is not a finite number"):
        CalibrationPolynomial([0.0, bad])


def test_compute_applies_polynomial_and_clamps():
    calc = ConcentrationCalculator(coefficients=[-20.0, 10000.0], min_ppm=0.0, max_ppm=5000.0)
    assert calc.compute(0.25) == pytest.approx(2480.0)
    assert calc.last_clamped is False
    assert calc.compute(0.001) == 0.0
    assert calc.last_clamped is True
    assert calc.compute(0.9) == 5000.0
    assert calc.last_clamped is True
    assert calc.compute(0.1) == pytest.approx(980.0)
    assert calc.last_clamped is False


def test_no_upper_clamp_by_default():
    calc = ConcentrationCalculator(coefficients=[0.0, 1e6])
    assert calc.compute(10.0) == 1e7 and not calc.last_clamped


def test_temperature_compensation():
    calc = ConcentrationCalculator(coefficients=[0.0, 1000.0], temperature_coefficient_per_c=0.01,
                                   reference_temperature_c=25.0)
    # at 35 C the cell reads 10 % high: the amplitude is divided by 1.1
    assert calc.compute(1.1, 35.0) == pytest.approx(1000.0)
    assert calc.compute(0.9, 15.0) == pytest.approx(1000.0)
    assert calc.compute(1.0, 25.0) == pytest.approx(1000.0)
    assert calc.compute(1.0) == pytest.approx(1000.0)  # unknown temperature: no correction
    assert calc.compute(1.0, math.nan) == pytest.approx(1000.0)
    assert math.isnan(calc.compute(1.0, -100.0))  # factor 1 + 0.01 * -125 < 0: meaningless
    uncompensated = ConcentrationCalculator(coefficients=[0.0, 1000.0])
    assert uncompensated.compute(1.1, 35.0) == pytest.approx(1100.0)


def test_nan_in_gives_nan_out():
    calc = ConcentrationCalculator(coefficients=[5.0, 1000.0], min_ppm=0.0, max_ppm=100.0)
    assert math.isnan(calc.compute(math.nan))
    assert math.isnan(calc.compute(math.nan, 30.0))
    assert calc.last_clamped is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_ppm": -1.0}, r"max_ppm=-1.0 must be a finite number above min_ppm=0.0"),
        ({"min_ppm": math.nan}, r"min_ppm=nan must be a finite number"),
        ({"temperature_coefficient_per_c": math.inf}, r"temperature_coefficient_per_c=inf"),
        ({"reference_temperature_c": math.nan}, r"reference_temperature_c=nan must be finite"),
        ({"coefficients": [1.0] * 7}, r"has 7 coefficients"),
    ],
)
def test_bad_calculator_parameters_raise(kwargs, match):
    params = {"coefficients": [0.0, 1.0]}
    params.update(kwargs)
    with pytest.raises(DspError, match=match):
        ConcentrationCalculator(**params)


def test_pressure_compensation_refers_the_amplitude_to_the_reference_pressure() -> None:
    from firmware.dsp.concentration import ConcentrationCalculator

    calc = ConcentrationCalculator(coefficients=[0.0, 1000.0],
                                   pressure_coefficient_per_hpa=1 / 1000.0,
                                   reference_pressure_hpa=1000.0,
                                   temperature_coefficient_per_c=0.01,
                                   reference_temperature_c=20.0)
    assert calc.compute(1.0) == 1000.0  # no readings: nothing compensated
    assert calc.compute(1.1, pressure_hpa=1100.0) == pytest.approx(1000.0)
    assert calc.compute(1.1 * 1.1, 30.0, 1100.0) == pytest.approx(1000.0)
    assert math.isnan(calc.compute(1.0, pressure_hpa=-1e6))  # factor not positive


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"pressure_coefficient_per_hpa": math.nan}, "pressure_coefficient_per_hpa=nan must be"),
    ({"reference_pressure_hpa": 0.0}, "reference_pressure_hpa=0.0 must be a positive number"),
])
def test_bad_pressure_settings(kwargs: dict[str, float], message: str) -> None:
    from firmware.dsp.concentration import ConcentrationCalculator
    from firmware.errors import DspError

    with pytest.raises(DspError, match=message):
        ConcentrationCalculator(coefficients=[0.0, 1.0], **kwargs)
