"""From signal amplitude to gas concentration: calibration polynomial, temperature and pressure
correction.

The photoacoustic amplitude grows with the absorber's concentration, nearly linearly at low
concentration and bending over at high concentration (absorption saturates), so calibration is
a low-degree polynomial ``ppm = c0 + c1 x + ... + c4 x^4`` fitted to reference gases. The cell's
response also drifts with temperature; a linear coefficient referred to a reference temperature
corrects the amplitude before the polynomial is applied, and so does a linear coefficient
referred to a reference pressure: the signal grows with the absorbers' number density, which
at a fixed mole fraction goes with the pressure (``1 / reference_pressure_hpa`` per hPa is the
ideal-gas value).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from firmware.errors import DspError

MAX_COEFFICIENTS = 5
_BISECTION_STEPS = 200


class CalibrationPolynomial:
    """``ppm = c0 + c1 * x + ...`` with 1 to 5 finite coefficients (up to 4th degree).

    >>> p = CalibrationPolynomial([0.0, 5000.0, 200.0])
    >>> p(0.1)
    502.0
    >>> round(p.invert(502.0), 12)
    0.1
    """

    def __init__(self, coefficients: Sequence[float]) -> None:
        values = [float(c) for c in coefficients]
        if not 1 <= len(values) <= MAX_COEFFICIENTS:
            raise DspError(
                f"calibration has {len(values)} coefficients {values}; expected 1 to "
                f"{MAX_COEFFICIENTS} (c0 + c1*x + ... up to 4th degree)"
            )
        bad = [i for i, c in enumerate(values) if not math.isfinite(c)]
        if bad:
            raise DspError(
                f"calibration coefficient c{bad[0]}={values[bad[0]]!r} is not a finite number"
            )
        self.coefficients: tuple[float, ...] = tuple(values)
        # Highest first, for the Horner loop; derivative's real roots split x into monotonic runs.
        self._descending = tuple(reversed(values))
        self._critical_points = self._derivative_roots()

    def _derivative_roots(self) -> tuple[float, ...]:
        """Real, positive roots of p'(x), sorted: where p may turn between rising and falling."""
        derivative = [i * c for i, c in enumerate(self.coefficients)][1:]
        while derivative and derivative[-1] == 0.0:
            derivative.pop()
        if len(derivative) < 2:
            return ()
        roots = np.roots(list(reversed(derivative)))
        real = sorted(float(r.real) for r in roots if abs(r.imag) <= 1e-12 * max(1.0, abs(r)))
        return tuple(r for r in real if r > 0.0)

    @property
    def degree(self) -> int:
        """Number of coefficients minus one."""
        return len(self.coefficients) - 1

    def __call__(self, x: float) -> float:
        """Evaluate the polynomial at ``x`` (Horner's scheme); NaN gives NaN."""
        result = 0.0
        for c in self._descending:
            result = result * x + c
        return result

    def derivative(self, x: float) -> float:
        """Evaluate p'(x)."""
        result = 0.0
        for power in range(len(self.coefficients) - 1, 0, -1):
            result = result * x + power * self.coefficients[power]
        return result

    def invert(self, ppm: float, *, x_max: float = 1.0e3) -> float:
        """The smallest ``x`` in ``[0, x_max]`` with ``p(x) == ppm`` where p is increasing.

        ``[0, x_max]`` is cut at the real roots of p' into runs where p is monotonic; the first
        rising run whose range holds ``ppm`` is searched by bisection to full float precision.
        The simulator uses this to turn a true concentration into a signal amplitude.
        Raises DspError when no rising run reaches ``ppm``.
        """
        if not math.isfinite(ppm):
            raise DspError(f"cannot invert the calibration at ppm={ppm!r}; expected a number")
        if not (math.isfinite(x_max) and x_max > 0):
            raise DspError(f"x_max={x_max!r} must be a positive number")
        edges = [0.0, *(r for r in self._critical_points if r < x_max), float(x_max)]
        for lo, hi in itertools.pairwise(edges):
            p_lo, p_hi = self(lo), self(hi)
            if not p_hi > p_lo:  # falling or flat run
                if p_lo == ppm and self.degree == 0:
                    return lo
                continue
            if p_lo <= ppm <= p_hi:
                return self._bisect(ppm, lo, hi)
        lowest, highest = self(0.0), self(float(x_max))
        raise DspError(
            f"ppm={ppm:g} is not reached by the calibration {list(self.coefficients)} on a "
            f"rising branch in [0, {x_max:g}] (p(0)={lowest:g}, p({x_max:g})={highest:g}); "
            "expected a concentration inside the calibrated range"
        )

    def _bisect(self, ppm: float, lo: float, hi: float) -> float:
        """Bisect a rising run with ``p(lo) <= ppm <= p(hi)`` until the interval stops shrinking."""
        if self(lo) == ppm:
            return lo
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if self(mid) < ppm:
                lo = mid
            else:
                hi = mid
        return hi if abs(self(hi) - ppm) <= abs(self(lo) - ppm) else lo


class ConcentrationCalculator:
    """Amplitude (and optional cell temperature and pressure) to ppm, clamped to a range.

    The amplitude is first referred to ``reference_temperature_c``: ``a / (1 + k * (T - Tref))``
    with ``k = temperature_coefficient_per_c``, when ``k != 0`` and ``T`` is known (finite);
    then to ``reference_pressure_hpa`` the same way with ``pressure_coefficient_per_hpa``.
    The polynomial result is clamped to ``[min_ppm, max_ppm]``; ``last_clamped`` tells whether
    the last ``compute`` had to clamp. NaN in (no detection upstream) gives NaN out, as does a
    temperature or pressure so far off that a correction factor is not positive.

    >>> calc = ConcentrationCalculator(coefficients=[0.0, 10000.0], max_ppm=5000.0)
    >>> calc.compute(0.25), calc.compute(0.9), calc.last_clamped
    (2500.0, 5000.0, True)
    """

    def __init__(
        self,
        *,
        coefficients: Sequence[float],
        temperature_coefficient_per_c: float = 0.0,
        reference_temperature_c: float = 25.0,
        min_ppm: float = 0.0,
        max_ppm: float | None = None,
        pressure_coefficient_per_hpa: float = 0.0,
        reference_pressure_hpa: float = 1013.25,
    ) -> None:
        self.polynomial = CalibrationPolynomial(coefficients)
        if not math.isfinite(temperature_coefficient_per_c):
            raise DspError(
                f"temperature_coefficient_per_c={temperature_coefficient_per_c!r} must be finite"
            )
        if not math.isfinite(reference_temperature_c):
            raise DspError(f"reference_temperature_c={reference_temperature_c!r} must be finite")
        if not math.isfinite(min_ppm):
            raise DspError(f"min_ppm={min_ppm!r} must be a finite number")
        if max_ppm is not None and not (math.isfinite(max_ppm) and max_ppm > min_ppm):
            raise DspError(f"max_ppm={max_ppm!r} must be a finite number above min_ppm={min_ppm}")
        if not math.isfinite(pressure_coefficient_per_hpa):
            raise DspError(
                f"pressure_coefficient_per_hpa={pressure_coefficient_per_hpa!r} must be finite")
        if not (math.isfinite(reference_pressure_hpa) and reference_pressure_hpa > 0):
            raise DspError(f"reference_pressure_hpa={reference_pressure_hpa!r} must be a "
                           "positive number")
        self.pressure_coefficient_per_hpa = float(pressure_coefficient_per_hpa)
        self.reference_pressure_hpa = float(reference_pressure_hpa)
        self.temperature_coefficient_per_c = float(temperature_coefficient_per_c)
        self.reference_temperature_c = float(reference_temperature_c)
        self.min_ppm = float(min_ppm)
        self.max_ppm = math.inf if max_ppm is None else float(max_ppm)
        self.last_clamped = False

    def compensate(self, amplitude: float, temperature_c: float = math.nan,
                   pressure_hpa: float = math.nan) -> float:
        """The amplitude referred to the reference temperature and pressure (each left out
        without a reading).

        >>> calc = ConcentrationCalculator(coefficients=[0.0, 1.0],
        ...                                pressure_coefficient_per_hpa=0.001,
        ...                                reference_pressure_hpa=1000.0)
        >>> calc.compensate(1.1, pressure_hpa=1100.0)
        1.0
        """
        k = self.temperature_coefficient_per_c
        if k != 0.0 and math.isfinite(temperature_c):
            factor = 1.0 + k * (temperature_c - self.reference_temperature_c)
            amplitude = amplitude / factor if factor > 0.0 else math.nan
        kp = self.pressure_coefficient_per_hpa
        if kp != 0.0 and math.isfinite(pressure_hpa):
            factor = 1.0 + kp * (pressure_hpa - self.reference_pressure_hpa)
            amplitude = amplitude / factor if factor > 0.0 else math.nan
        return amplitude

    def compute(self, amplitude: float, temperature_c: float = math.nan,
                pressure_hpa: float = math.nan) -> float:
        """Concentration in ppm for one amplitude; NaN when the amplitude is NaN."""
        self.last_clamped = False
        x = self.compensate(amplitude, temperature_c, pressure_hpa)
        if math.isnan(x):
            return math.nan
        ppm = self.polynomial(x)
        if math.isnan(ppm):
            return math.nan
        if ppm < self.min_ppm:
            self.last_clamped = True
            return self.min_ppm
        if ppm > self.max_ppm:
            self.last_clamped = True
            return self.max_ppm
        return ppm
