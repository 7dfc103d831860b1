"""Digital lock-in amplifier: amplitude and phase of the signal at one known frequency.

Where the peak finder looks for the resonance, a lock-in measures at the modulation frequency
the source is driven with, and rejects everything else with a bandwidth set by its time
constant: the input is multiplied by an internally generated reference ``sin`` and ``cos``
(I/Q demodulation), which moves the component at the reference frequency to DC and everything
else to non-zero frequencies; a cascade of first-order low-pass stages then keeps the DC part.

For an input ``a * sin(2 pi f t + phi)`` at the reference frequency ``f``, after settling,
``in_phase = a cos(phi)``, ``quadrature = a sin(phi)``, ``amplitude = a`` and
``phase_rad = phi`` (the input's phase relative to the reference sine). The reference phase
is continuous across frames, so results do not depend on how the signal is cut into frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware.dsp import kernels
from firmware.errors import DspError

MAX_FILTER_ORDER = 8
_TWO_PI = 2.0 * math.pi


@dataclass(slots=True)
class LockInResult:
    """The low-pass outputs at the last sample of a frame, in input units and radians."""

    amplitude: float
    phase_rad: float
    in_phase: float
    quadrature: float


class LockInDetector:
    """I/Q demodulation at ``reference_hz`` with a ``filter_order``-stage low-pass.

    ``time_constant_s`` is the time constant of each first-order stage (as on a bench lock-in:
    more stages give a steeper roll-off, 6 dB/octave each, and a longer settling time, roughly
    ``(filter_order + 4) * time_constant_s`` to 1 %). State and reference phase carry across
    frames; ``reset()`` zeroes both.

    >>> import numpy as np
    >>> li = LockInDetector(sample_rate=48000, reference_hz=2000.0, time_constant_s=0.01)
    >>> t = np.arange(48000) / 48000
    >>> r = li.process(0.2 * np.sin(2 * np.pi * 2000.0 * t + 0.5))
    >>> round(r.amplitude, 4), round(r.phase_rad, 3)
    (0.2, 0.5)
    """

    def __init__(
        self,
        *,
        sample_rate: float,
        reference_hz: float,
        time_constant_s: float = 0.05,
        filter_order: int = 2,
    ) -> None:
        if not math.isfinite(sample_rate) or sample_rate <= 0:
            raise DspError(f"sample_rate={sample_rate!r} must be a positive number of Hz")
        nyquist = sample_rate / 2.0
        if not (math.isfinite(reference_hz) and 0.0 < reference_hz < nyquist):
            raise DspError(f"reference_hz={reference_hz!r} must be in (0, {nyquist:g}) Hz")
        if not (math.isfinite(time_constant_s) and time_constant_s > 0):
            raise DspError(f"time_constant_s={time_constant_s!r} must be a positive number of s")
        if isinstance(filter_order, bool) or not isinstance(filter_order, int) or not (
            1 <= filter_order <= MAX_FILTER_ORDER
        ):
            raise DspError(
                f"filter_order={filter_order!r} must be an integer from 1 to {MAX_FILTER_ORDER}"
            )
        self.sample_rate = float(sample_rate)
        self.reference_hz = float(reference_hz)
        self.time_constant_s = float(time_constant_s)
        self.filter_order = filter_order
        self._phase_step = _TWO_PI * self.reference_hz / self.sample_rate
        self._alpha = -math.expm1(-1.0 / (self.time_constant_s * self.sample_rate))
        self._state_i = np.zeros(filter_order, dtype=np.float64)
        self._state_q = np.zeros(filter_order, dtype=np.float64)
        self._phase = 0.0

    @property
    def reference_phase_rad(self) -> float:
        """Phase of the reference at the next sample to arrive, in [0, 2 pi)."""
        return self._phase

    def reset(self) -> None:
        """Zero the filter state and restart the reference at phase 0."""
        self._state_i.fill(0.0)
        self._state_q.fill(0.0)
        self._phase = 0.0

    def process(self, x: np.ndarray) -> LockInResult:
        """Demodulate one frame (1-D, or a single row ``(1, n)``) of any length."""
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1:
            raise DspError(f"lock-in takes one channel; got an array of shape {x.shape}")
        n = x.shape[0]
        kernels.demodulate(
            x, self._phase, self._phase_step, self._alpha, self._state_i, self._state_q
        )
        self._phase = math.fmod(self._phase + n * self._phase_step, _TWO_PI)
        in_phase = float(self._state_i[-1])
        quadrature = float(self._state_q[-1])
        return LockInResult(
            amplitude=math.hypot(in_phase, quadrature),
            phase_rad=math.atan2(quadrature, in_phase),
            in_phase=in_phase,
            quadrature=quadrature,
        )
