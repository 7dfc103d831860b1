"""SimulatedSource: a differential Helmholtz photoacoustic cell with known ground truth.

Model (per sample, in a numba kernel):

* The photoacoustic tone sits at the modulation frequency: fixed ``modulation_hz``, or the
  resonance when that is null. The resonance drifts with temperature,
  ``f(T) = f0 * sqrt((T + 273.15) / (mean_c + 273.15))``, T a slow sinusoid. The phase is
  integrated from the frequency, so it is continuous across frames.
* Its amplitude in the difference signal A - B is ``amplitude_for_ppm(ppm)`` times the
  resonator's normalised magnitude at the modulation frequency,
  ``1 / sqrt(1 + Q^2 (f/f0 - f0/f)^2)`` (1 when tracking), and follows changes with the ring-up
  time constant ``tau = Q / (pi f0)``. Mic A carries +amp/2, mic B -amp/2 (antiphase).
* Noise is sized from ``noise.snr_db`` at ``noise.reference_ppm``: per-mic uncorrelated noise
  with ``(A_ref / sqrt 2) / rms(nA - nB) = 10^(snr_db / 20)``, ``pink_fraction`` of its power
  1/f (Paul Kellet's filter, normalised to unit variance); common-mode noise ``common_mode_db``
  above it, identical on both mics; mains hum with two harmonics, mic B scaled by
  ``1 - hum_imbalance``.
* ``quantize_bits=16`` clips to [-1, 1) and rounds to 16-bit steps.

The gas in the cell follows the configured concentration profile until ``set_gas`` puts a
constant one in (a calibration cylinder, from the CLI or the HTTP API while running);
``set_gas(None)`` gives it back to the profile.

Random numbers come from one seeded ``numpy.random.Generator``: same seed and frame size give
identical samples, paced or not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from firmware.dsp.frame import Frame
from firmware.dsp.sources.base import AudioSource
from firmware.dsp.sources.profiles import build_profile
from firmware.dsp.sources.settings import SimulatorSettings
from firmware.errors import DspError, SourceError

# Paul Kellet's refined pink-noise filter: six one-pole sections plus a direct term and a
# one-sample-delayed term (b6).
_PINK_POLES = np.array([0.99886, 0.99332, 0.96900, 0.86650, 0.55000, -0.7616])
_PINK_GAINS = np.array([0.0555179, 0.0750759, 0.1538520, 0.3104856, 0.5329522, -0.0168980])
_PINK_DIRECT = 0.5362
_PINK_DELAYED = 0.115926
_HUM_HARMONICS = np.array([1.0, 0.3, 0.15])  # relative amplitudes of f, 2f, 3f


def _pink_rms() -> float:
    """RMS of Kellet's filter output for unit-variance white input (from its impulse response)."""
    m = np.arange(20000, dtype=np.float64)
    h = (_PINK_GAINS[:, None] * _PINK_POLES[:, None] ** m[None, :]).sum(axis=0)
    h[0] += _PINK_DIRECT
    h[1] += _PINK_DELAYED
    return float(np.sqrt(np.sum(h * h)))


_PINK_NORM = 1.0 / _pink_rms()


def resonator_gain(f_hz: float, f0_hz: float, q: float) -> float:
    """Normalised magnitude response (1 at resonance) of a resonator at ``f_hz``."""
    ratio = f_hz / f0_hz - f0_hz / f_hz
    return 1.0 / math.sqrt(1.0 + (q * ratio) ** 2)


@njit(cache=True, nogil=True, inline="always")
def _kellet(ps: np.ndarray, ch: int, w: float) -> float:
    """One step of Kellet's pink filter for channel ``ch`` (state row ``ps[ch]``)."""
    ps[ch, 0] = 0.99886 * ps[ch, 0] + w * 0.0555179
    ps[ch, 1] = 0.99332 * ps[ch, 1] + w * 0.0750759
    ps[ch, 2] = 0.96900 * ps[ch, 2] + w * 0.1538520
    ps[ch, 3] = 0.86650 * ps[ch, 3] + w * 0.3104856
    ps[ch, 4] = 0.55000 * ps[ch, 4] + w * 0.5329522
    ps[ch, 5] = -0.7616 * ps[ch, 5] - w * 0.0168980
    p = ps[ch, 0] + ps[ch, 1] + ps[ch, 2] + ps[ch, 3] + ps[ch, 4] + ps[ch, 5] + ps[ch, 6]
    ps[ch, 6] = w * 0.115926
    return float(p + w * 0.5362)


@njit(cache=True, nogil=True)
def _synthesize(
    out: np.ndarray,
    rnd: np.ndarray,
    pink_state: np.ndarray,
    state: np.ndarray,
    f_start: float,
    f_end: float,
    target_amp: float,
    alpha: float,
    sigma_white: float,
    sigma_pink: float,
    sigma_cm: float,
    hum_step: float,
    hum_levels: np.ndarray,
    hum_gain_b: float,
    quantize: bool,
    inv_fs: float,
) -> None:
    """Fill ``out`` (2, n) with one block. ``state`` = [tone phase (cycles), envelope,
    hum phase (cycles)], ``pink_state`` (2, 7) the Kellet states of mics A and B, ``rnd``
    (5, n) standard normals: white A, white B, pink drive A, pink drive B, common mode."""
    n = out.shape[1]
    phase, env, hum_phase = state[0], state[1], state[2]
    df = (f_end - f_start) / n
    two_pi = 2.0 * np.pi
    for i in range(n):
        phase += (f_start + df * (i + 0.5)) * inv_fs
        if phase >= 1.0:
            phase -= math.floor(phase)
        env += alpha * (target_amp - env)
        tone = 0.5 * env * math.sin(two_pi * phase)
        hum = 0.0
        if hum_step > 0.0:
            hum_phase += hum_step
            if hum_phase >= 1.0:
                hum_phase -= math.floor(hum_phase)
            for k in range(hum_levels.shape[0]):
                hum += hum_levels[k] * math.sin(two_pi * (k + 1) * hum_phase)
        pink_a = _kellet(pink_state, 0, rnd[2, i])
        pink_b = _kellet(pink_state, 1, rnd[3, i])
        cm = sigma_cm * rnd[4, i]
        a = tone + cm + hum + sigma_white * rnd[0, i] + sigma_pink * pink_a
        b = -tone + cm + hum * hum_gain_b + sigma_white * rnd[1, i] + sigma_pink * pink_b
        if quantize:
            a = min(max(math.floor(a * 32768.0 + 0.5), -32768.0), 32767.0) / 32768.0
            b = min(max(math.floor(b * 32768.0 + 0.5), -32768.0), 32767.0) / 32768.0
        out[0, i] = a
        out[1, i] = b
    state[0], state[1], state[2] = phase, env, hum_phase


class SimulatedSource(AudioSource):
    """A photoacoustic cell in software; frames carry ``truth_ppm`` and ``temperature_c``.

    ``amplitude_for_ppm`` maps a concentration to the tone's peak amplitude in the difference
    signal (full-scale units); the caller derives it from the inverse calibration.

    >>> from firmware.dsp.sources.settings import SimulatorSettings
    >>> src = SimulatedSource(SimulatorSettings(), sample_rate=48000, frame_size=4096,
    ...                       realtime=False, amplitude_for_ppm=lambda ppm: ppm * 1e-5)
    >>> with src:
    ...     frame = src.read()
    >>> frame.truth_ppm
    1000.0
    """

    kind = "simulator"

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        sample_rate: int,
        frame_size: int,
        realtime: bool,
        amplitude_for_ppm: Callable[[float], float],
    ) -> None:
        super().__init__(sample_rate=sample_rate, frame_size=frame_size, realtime=realtime)
        self.settings = settings
        self._amplitude_for_ppm = amplitude_for_ppm
        self._profile = build_profile(settings.concentration)
        noise = settings.noise
        a_ref = self._amplitude(noise.reference_ppm)
        sigma_diff = (a_ref / math.sqrt(2.0)) / 10.0 ** (noise.snr_db / 20.0)
        sigma_u = sigma_diff / math.sqrt(2.0)  # per mic: rms(nA - nB) = sqrt(2) * sigma_u
        self.sigma_uncorrelated = sigma_u
        self._sigma_white = sigma_u * math.sqrt(1.0 - noise.pink_fraction)
        self._sigma_pink = sigma_u * math.sqrt(noise.pink_fraction) * _PINK_NORM
        self._sigma_cm = sigma_u * 10.0 ** (noise.common_mode_db / 20.0)
        self._hum_step = noise.hum_hz / sample_rate if noise.hum_level > 0 else 0.0
        below_nyquist = [k for k in range(len(_HUM_HARMONICS)) if
                         (k + 1) * noise.hum_hz < sample_rate / 2]  # fmt: skip
        self._hum_levels = _HUM_HARMONICS[below_nyquist] * noise.hum_level
        self._hum_gain_b = 1.0 - noise.hum_imbalance
        self._rnd = np.empty((5, frame_size), dtype=np.float64)
        self._pink_state = np.zeros((2, 7), dtype=np.float64)
        self._state = np.zeros(3, dtype=np.float64)
        self._rng = np.random.default_rng(settings.seed)
        self._block = 0
        self._extra: dict[str, float] = {}
        #: the gas put in by ``set_gas`` (None: the profile); one reference, read per frame
        self._gas_ppm: float | None = None

    def set_gas(self, ppm: float | None) -> None:
        """Fill the cell with a gas of ``ppm`` from the next frame on (None: the profile).

        SourceError when the concentration is negative or beyond what the cell can produce.
        """
        if ppm is not None:
            if not (math.isfinite(ppm) and ppm >= 0.0):
                raise SourceError(f"simulator gas {ppm!r} ppm: expected a number >= 0")
            try:
                self._amplitude(ppm)
            except DspError as exc:
                raise SourceError(f"simulator gas {ppm:g} ppm: {exc}") from None
            ppm = float(ppm)
        self._gas_ppm = ppm

    @property
    def gas_ppm(self) -> float | None:
        """The gas put in by ``set_gas`` (None: the profile runs)."""
        return self._gas_ppm

    def _amplitude(self, ppm: float) -> float:
        amp = float(self._amplitude_for_ppm(ppm))
        if not math.isfinite(amp):
            raise SourceError(
                f"simulator: amplitude_for_ppm({ppm}) returned {amp}; expected a finite number"
            )
        return max(amp, 0.0)

    def temperature_at(self, t_s: float) -> float:
        """Cell temperature (°C) at ``t_s``: a slow sinusoid around ``mean_c``."""
        temp = self.settings.temperature
        return temp.mean_c + temp.swing_c * math.sin(2.0 * math.pi * t_s / temp.period_s)

    def resonance_at(self, t_s: float) -> float:
        """Acoustic resonance (Hz) at ``t_s``; the speed of sound goes with sqrt(T)."""
        mean_k = self.settings.temperature.mean_c + 273.15
        return self.settings.resonance_hz * math.sqrt((self.temperature_at(t_s) + 273.15) / mean_k)

    def _modulation_at(self, t_s: float) -> float:
        mod = self.settings.modulation_hz
        return self.resonance_at(t_s) if mod is None else mod

    def _target(self, ppm: float, t_s: float) -> float:
        q = self.settings.q_factor
        gain = resonator_gain(self._modulation_at(t_s), self.resonance_at(t_s), q)
        return self._amplitude(ppm) * gain

    def _open(self, frame: Frame) -> None:
        self._rng = np.random.default_rng(self.settings.seed)
        self._pink_state[:] = 0.0
        self._block = 0
        # start at steady state: the cell has been running before the firmware started
        self._state[:] = (0.0, self._target(self._profile.value_at(0.0), 0.0), 0.0)
        self._extra = frame.extra

    def _fill(self, frame: Frame) -> bool:
        n, fs = self._frame_size, self._sample_rate
        t0 = self._block * n / fs
        t1 = (self._block + 1) * n / fs
        t_mid = 0.5 * (t0 + t1)
        gas = self._gas_ppm
        truth = self._profile.mean_over(t0, t1) if gas is None else gas
        f0 = self.resonance_at(t_mid)
        tau = self.settings.q_factor / (math.pi * f0)
        alpha = -math.expm1(-1.0 / (tau * fs))
        self._rng.standard_normal(out=self._rnd)
        _synthesize(
            frame.samples, self._rnd, self._pink_state, self._state,
            self._modulation_at(t0), self._modulation_at(t1), self._target(truth, t_mid), alpha,
            self._sigma_white, self._sigma_pink, self._sigma_cm,
            self._hum_step, self._hum_levels, self._hum_gain_b,
            self.settings.quantize_bits == 16, 1.0 / fs,
        )  # fmt: skip
        frame.truth_ppm = truth
        frame.temperature_c = self.temperature_at(t_mid)
        self._extra["resonance_hz"] = f0
        self._extra["modulation_hz"] = self._modulation_at(t_mid)
        self._extra["amplitude"] = float(self._state[1])
        self._block += 1
        return True

    def warm_up(self) -> None:
        """Compile ``_synthesize`` for the arguments ``_fill`` passes it, on scratch copies of
        its buffers (the stream's phase, noise state and random generator stay untouched)."""
        n = 8
        _synthesize(
            np.zeros((2, n)), np.zeros((5, n)), self._pink_state.copy(), self._state.copy(),
            self._modulation_at(0.0), self._modulation_at(0.0), 0.0, 0.5,
            self._sigma_white, self._sigma_pink, self._sigma_cm,
            self._hum_step, self._hum_levels.copy(), self._hum_gain_b,
            self.settings.quantize_bits == 16, 1.0 / self._sample_rate,
        )  # fmt: skip

    def _close(self) -> None:
        pass

    def _extra_status(self) -> dict[str, Any]:
        return {
            "seed": self.settings.seed,
            "simulated_s": self._block * self._frame_size / self._sample_rate,
            "resonance_hz": self._extra.get("resonance_hz"),
            "gas_ppm": self._gas_ppm,
        }
