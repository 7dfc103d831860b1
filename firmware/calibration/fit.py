"""The calibration fit: ``ppm = c0 + c1 x + ... + cd x^d`` (d = 1..4) by least squares.

``x`` is the concentration node's input amplitude after its temperature and pressure
compensation, averaged at each point. A fit is accepted only when it has enough points for
its degree, every residual is within the tolerance and it rises over the whole calibrated
amplitude range (a fit that turns back would map one signal to two concentrations); with no
degree given, the lowest degree that passes wins. Coefficient uncertainties are one standard
deviation from the residual variance (none without a spare degree of freedom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware.calibration.errors import CalibrationError

MAX_DEGREE = 4
_MONOTONIC_SAMPLES = 512


@dataclass(frozen=True)
class Tolerance:
    """A point's residual may reach ``ppm`` or ``percent`` of its concentration, the larger."""

    ppm: float
    percent: float

    def at(self, concentration_ppm: float) -> float:
        """The allowed residual at ``concentration_ppm``."""
        return max(self.ppm, self.percent / 100.0 * abs(concentration_ppm))


@dataclass(frozen=True)
class FitResult:
    """An accepted fit: coefficients c0..cd (c0 = 0 when through zero), their standard
    uncertainties (None without spare points), residuals (measured - fitted, ppm, per point
    in the order given), R² and the calibrated ranges."""

    degree: int
    through_zero: bool
    coefficients: tuple[float, ...]
    uncertainties: tuple[float, ...] | None
    residuals_ppm: tuple[float, ...]
    r_squared: float | None
    amplitude_range: tuple[float, float]
    concentration_range: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form kept in a calibration record."""
        return {
            "degree": self.degree,
            "through_zero": self.through_zero,
            "coefficients": list(self.coefficients),
            "uncertainties": None if self.uncertainties is None else list(self.uncertainties),
            "residuals_ppm": list(self.residuals_ppm),
            "r_squared": self.r_squared,
            "amplitude_range": list(self.amplitude_range),
            "concentration_range": list(self.concentration_range),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitResult:
        """Inverse of ``to_dict`` (KeyError/TypeError/ValueError on a malformed dict)."""
        unc = data["uncertainties"]
        r2 = data["r_squared"]
        return cls(
            degree=int(data["degree"]),
            through_zero=bool(data["through_zero"]),
            coefficients=tuple(float(c) for c in data["coefficients"]),
            uncertainties=None if unc is None else tuple(float(u) for u in unc),
            residuals_ppm=tuple(float(r) for r in data["residuals_ppm"]),
            r_squared=None if r2 is None else float(r2),
            amplitude_range=(float(data["amplitude_range"][0]),
                             float(data["amplitude_range"][1])),
            concentration_range=(float(data["concentration_range"][0]),
                                 float(data["concentration_range"][1])),
        )


def points_needed(degree: int, through_zero: bool) -> int:
    """The fewest points that determine a fit of ``degree``."""
    return degree if through_zero else degree + 1


def _solve(x: np.ndarray, y: np.ndarray, degree: int, through_zero: bool
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Least-squares coefficients c0..cd and their standard uncertainties (or None)."""
    first = 1 if through_zero else 0
    powers = np.arange(first, degree + 1)
    design = x[:, None] ** powers[None, :]
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0.0] = 1.0
    scaled = design / norms
    solution, _, rank, _ = np.linalg.lstsq(scaled, y, rcond=None)
    if rank < len(powers):
        raise CalibrationError(
            f"a degree-{degree} fit is undetermined: the points' amplitudes do not tell its "
            f"{len(powers)} coefficients apart (several points share one amplitude)")
    coefficients = np.zeros(degree + 1)
    coefficients[first:] = solution / norms
    dof = len(x) - len(powers)
    uncertainties: np.ndarray | None = None
    if dof > 0:
        residual = y - scaled @ solution
        variance = float(residual @ residual) / dof
        covariance = variance * np.linalg.pinv(scaled.T @ scaled)
        full = np.zeros(degree + 1)
        full[first:] = np.sqrt(np.clip(np.diag(covariance), 0.0, None)) / norms
        uncertainties = full
    return coefficients, uncertainties


def _evaluate(coefficients: Sequence[float] | np.ndarray, x: np.ndarray) -> np.ndarray:
    values: np.ndarray = np.polynomial.polynomial.polyval(x, np.asarray(coefficients))
    return values


def rising_problem(coefficients: Sequence[float] | np.ndarray, lo: float, hi: float
                   ) -> str | None:
    """Why the polynomial does not rise over ``[lo, hi]``, or None when it does."""
    derivative = np.polynomial.polynomial.polyder(np.asarray(coefficients, dtype=float))
    grid = np.linspace(lo, hi, _MONOTONIC_SAMPLES)
    slopes = np.polynomial.polynomial.polyval(grid, derivative)
    roots: np.ndarray = (np.polynomial.polynomial.polyroots(derivative) if len(derivative) > 1
                         else np.zeros(0))
    turning = sorted(float(r.real) for r in np.atleast_1d(roots)
                     if abs(r.imag) <= 1e-9 * max(1.0, abs(r)) and lo < r.real < hi)
    if turning:
        return (f"it turns at amplitude {turning[0]:.6g} inside the calibrated range "
                f"[{lo:.6g}, {hi:.6g}]: not monotonic")
    if not np.all(slopes > 0.0):
        return f"it does not rise over the calibrated range [{lo:.6g}, {hi:.6g}]"
    return None


def fit_degree(amplitudes: Sequence[float], concentrations: Sequence[float], degree: int,
               *, through_zero: bool, tolerance: Tolerance) -> FitResult:
    """Fit exactly ``degree`` and check it; CalibrationError says what failed."""
    if not 1 <= degree <= MAX_DEGREE:
        raise CalibrationError(f"degree {degree}: expected 1 to {MAX_DEGREE}")
    x = np.asarray(amplitudes, dtype=float)
    y = np.asarray(concentrations, dtype=float)
    if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise CalibrationError("every point needs a finite amplitude and concentration")
    need = points_needed(degree, through_zero)
    if len(x) < need:
        raise CalibrationError(
            f"a degree-{degree} fit{' through zero' if through_zero else ''} needs at least "
            f"{need} points; {len(x)} measured")
    coefficients, uncertainties = _solve(x, y, degree, through_zero)
    fitted = _evaluate(coefficients, x)
    residuals = y - fitted
    bad = [(c, r) for c, r in zip(y, residuals, strict=True) if abs(r) > tolerance.at(c)]
    if bad:
        c, r = max(bad, key=lambda item: abs(item[1]) / max(tolerance.at(item[0]), 1e-300))
        raise CalibrationError(
            f"a degree-{degree} fit misses the {c:g} ppm point by {r:+.4g} ppm, more than the "
            f"tolerance of {tolerance.at(c):.4g} ppm (residual_tolerance_ppm "
            f"{tolerance.ppm:g}, residual_tolerance_percent {tolerance.percent:g})")
    lo, hi = float(x.min()), float(x.max())
    problem = rising_problem(coefficients, lo, hi)
    if problem is not None:
        raise CalibrationError(f"the degree-{degree} fit is refused: {problem}")
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(residuals @ residuals) / total if total > 0 else None
    return FitResult(
        degree=degree,
        through_zero=through_zero,
        coefficients=tuple(float(c) for c in coefficients),
        uncertainties=None if uncertainties is None else tuple(float(u) for u in uncertainties),
        residuals_ppm=tuple(float(r) for r in residuals),
        r_squared=r_squared,
        amplitude_range=(lo, hi),
        concentration_range=(float(y.min()), float(y.max())),
    )


def fit_calibration(amplitudes: Sequence[float], concentrations: Sequence[float], *,
                    degree: int | None, max_degree: int, through_zero: bool,
                    tolerance: Tolerance) -> FitResult:
    """The fit of ``degree``, or the lowest degree up to ``max_degree`` that passes.

    >>> fit = fit_calibration([0.0, 0.01, 0.02, 0.04], [0.0, 500.0, 1000.0, 2000.0],
    ...                       degree=None, max_degree=2, through_zero=False,
    ...                       tolerance=Tolerance(ppm=1.0, percent=0.0))
    >>> fit.degree, [round(c, 6) for c in fit.coefficients]
    (1, [0.0, 50000.0])
    """
    if degree is not None:
        return fit_degree(amplitudes, concentrations, degree, through_zero=through_zero,
                          tolerance=tolerance)
    reasons: list[str] = []
    for candidate in range(1, max_degree + 1):
        try:
            return fit_degree(amplitudes, concentrations, candidate,
                              through_zero=through_zero, tolerance=tolerance)
        except CalibrationError as exc:
            reasons.append(str(exc))
    raise CalibrationError(f"no fit of degree 1 to {max_degree} passes: " + "; ".join(reasons))

