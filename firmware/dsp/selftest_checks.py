"""The self-test's checks over a few seconds of both microphones' samples.

Each check measures one thing and compares it with a range (``low``..``high``, either open):

- ``mic_a_noise_floor`` / ``mic_b_noise_floor``: the channel's RMS level in dBFS (DC
  removed). Too low: a dead or unplugged microphone; too high: an overloaded one.
- ``mic_a_clipping`` / ``mic_b_clipping``: the fraction of samples at full scale (at or above
  ``clip_level``).
- ``channel_coherence``: the mean magnitude-squared coherence of A and B (Welch) over the
  resonance band. The photoacoustic tone and the ambient noise reach both microphones; a
  dead, swapped-in or disconnected one is not coherent with the other.
- ``resonance_frequency``: the strongest tone of the differential signal A - B in the
  resonance band (Welch, parabolic interpolation of the log spectrum) against the configured
  resonance.
- ``sample_rate``: the rate measured from the frames' arrival times (a paced or real-time
  source), or the rate a file declares, against the configured one; skipped when there is
  nothing to measure (a source running as fast as it can).

Pure functions of their input, numpy only: the app runs them off the DSP thread at every start,
and scipy (tens of MB) stays out of a warm appliance (dsp/design_cache.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Status = Literal["pass", "fail", "skip"]
#: the smallest level reported, for a channel of zeros (log of 0)
FLOOR_DBFS = -200.0


@dataclass(frozen=True)
class SelftestLimits:
    """What the checks compare with (from the ``selftest`` config section)."""

    min_noise_dbfs: float
    max_noise_dbfs: float
    clip_level: float
    max_clipped_fraction: float
    min_coherence: float
    resonance_hz: float
    band_hz: float
    max_resonance_deviation_hz: float
    sample_rate: int
    max_sample_rate_error_percent: float


@dataclass(frozen=True)
class Check:
    """One check: its value, the range it must be in (None: open) and the verdict."""

    name: str
    status: Status
    value: float | None
    unit: str
    low: float | None
    high: float | None
    message: str

    @property
    def failed(self) -> bool:
        """True when the value was measured and is outside its range."""
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN as None)."""
        def clean(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 6)

        return {"name": self.name, "status": self.status, "value": clean(self.value),
                "unit": self.unit, "low": clean(self.low), "high": clean(self.high),
                "message": self.message}


def _range_check(name: str, value: float, unit: str, low: float | None, high: float | None,
                 what: str) -> Check:
    ok = (math.isfinite(value) and (low is None or value >= low)
          and (high is None or value <= high))
    bounds = (f"{low:g}..{high:g}" if low is not None and high is not None
              else f">= {low:g}" if low is not None else f"<= {high:g}")
    verdict = "within" if ok else "outside"
    u = f" {unit}" if unit else ""
    shown = f"{value:.6g}" if unit == "Hz" else f"{value:.4g}"  # 48000 Hz, not 4.8e+04
    return Check(name, "pass" if ok else "fail", value, unit, low, high,
                 f"{what} {shown}{u}, {verdict} {bounds}{u}")


def level_dbfs(channel: np.ndarray) -> float:
    """RMS level of ``channel`` (full scale 1.0), DC removed, in dBFS.

    >>> round(level_dbfs(np.sin(np.linspace(0, 200 * np.pi, 48000))), 2)
    -3.01
    """
    rms = float(np.sqrt(np.mean((channel - np.mean(channel)) ** 2)))
    return 20.0 * math.log10(rms) if rms > 0 else FLOOR_DBFS


def welch_spectra(x: np.ndarray, y: np.ndarray | None, sample_rate: float,
                  nperseg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Welch averages of ``x`` (and ``y``): frequencies, Pxx, Pyy and the cross spectrum Pxy.

    Periodic Hann segments overlapping by half, each with its mean removed, one-sided, as
    ``scipy.signal.welch``/``csd`` compute them up to a common scale factor (which cancels in
    a coherence and does not move a peak). Without ``y``, Pyy and Pxy are empty.

    >>> t = np.arange(48000) / 48000.0
    >>> f, pxx, _, _ = welch_spectra(np.sin(2 * np.pi * 1000.0 * t), None, 48000.0, 4800)
    >>> float(f[np.argmax(pxx)])
    1000.0
    """
    nperseg = max(1, min(int(nperseg), x.shape[0]))
    step = max(1, nperseg // 2)
    count = (x.shape[0] - nperseg) // step + 1
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)
    starts = step * np.arange(count)[:, None] + np.arange(nperseg)[None, :]

    def spectra(z: np.ndarray) -> np.ndarray:
        segments = z[starts]
        segments = segments - segments.mean(axis=1, keepdims=True)
        return np.fft.rfft(segments * window, axis=1)

    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    fx = spectra(x)
    pxx = np.mean(np.abs(fx) ** 2, axis=0)
    if y is None:
        empty = np.empty(0)
        return freqs, pxx, empty, empty.astype(complex)
    fy = spectra(y)
    return freqs, pxx, np.mean(np.abs(fy) ** 2, axis=0), np.mean(fx * np.conj(fy), axis=0)


def band_coherence(a: np.ndarray, b: np.ndarray, sample_rate: float, low_hz: float,
                   high_hz: float) -> float:
    """Mean magnitude-squared coherence of ``a`` and ``b`` between ``low_hz`` and ``high_hz``
    (NaN when no frequency bin lies in the band)."""
    nperseg = int(min(4096, max(256, a.shape[0] // 8)))
    with np.errstate(invalid="ignore", divide="ignore"):  # a silent channel: 0 / 0
        freqs, paa, pbb, pab = welch_spectra(a, b, sample_rate, nperseg)
        coh = np.abs(pab) ** 2 / (paa * pbb)
    coh = np.nan_to_num(coh, nan=0.0)  # nothing in common with silence
    band = (freqs >= low_hz) & (freqs <= high_hz)
    return float(np.mean(coh[band])) if band.any() else math.nan


def strongest_tone(x: np.ndarray, sample_rate: float, low_hz: float, high_hz: float) -> float:
    """Frequency of the largest spectral peak of ``x`` between ``low_hz`` and ``high_hz``,
    interpolated between bins (NaN when the band holds no bin)."""
    nperseg = int(min(16384, max(1024, x.shape[0] // 4)))
    freqs, psd, _, _ = welch_spectra(x, None, sample_rate, nperseg)
    band = np.flatnonzero((freqs >= low_hz) & (freqs <= high_hz))
    if band.shape[0] == 0:
        return math.nan
    i = int(band[np.argmax(psd[band])])
    if 0 < i < psd.shape[0] - 1 and np.all(psd[i - 1:i + 2] > 0):
        y0, y1, y2 = np.log(psd[i - 1:i + 2])
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
        return float(freqs[i] + shift * (freqs[1] - freqs[0]))
    return float(freqs[i])


def _resonance_check(x: np.ndarray, fs: float, limits: SelftestLimits) -> Check:
    f0, half, dev = limits.resonance_hz, limits.band_hz / 2.0, limits.max_resonance_deviation_hz
    found = strongest_tone(x, fs, f0 - half, f0 + half)
    if not math.isfinite(found):
        return Check("resonance_frequency", "fail", None, "Hz", f0 - dev, f0 + dev,
                     f"no spectrum bin in {f0 - half:g}-{f0 + half:g} Hz at {fs:g} Hz")
    check = _range_check("resonance_frequency", found, "Hz", f0 - dev, f0 + dev,
                         "resonance found at")
    return Check(check.name, check.status, check.value, check.unit, check.low, check.high,
                 f"{check.message} (configured {f0:g} Hz, deviation {found - f0:+.2f} Hz)")


def run_checks(samples: np.ndarray, limits: SelftestLimits, *, sample_rate: float,
               measured_rate: float | None, rate_basis: str) -> list[Check]:
    """Every check over ``samples`` (2 x n, both microphones, sampled at ``sample_rate``);
    ``measured_rate`` (None: skip that check) was measured as ``rate_basis`` says and is
    compared with the configured ``limits.sample_rate``."""
    a, b = samples[0], samples[1]
    fs = float(sample_rate)
    checks: list[Check] = []
    for mic, x in (("a", a), ("b", b)):
        checks.append(_range_check(f"mic_{mic}_noise_floor", level_dbfs(x), "dBFS",
                                   limits.min_noise_dbfs, limits.max_noise_dbfs,
                                   f"microphone {mic.upper()} level"))
    for mic, x in (("a", a), ("b", b)):
        fraction = float(np.mean(np.abs(x) >= limits.clip_level))
        checks.append(_range_check(f"mic_{mic}_clipping", fraction, "", None,
                                   limits.max_clipped_fraction,
                                   f"microphone {mic.upper()} samples at full scale:"))
    f0, half = limits.resonance_hz, limits.band_hz / 2.0
    if math.isfinite(f0):
        checks.append(_range_check("channel_coherence", band_coherence(a, b, fs, f0 - half,
                                                                       f0 + half),
                                   "", limits.min_coherence, None,
                                   f"A/B coherence over {f0 - half:g}-{f0 + half:g} Hz"))
        checks.append(_resonance_check(a - b, fs, limits))
    else:
        reason = ("no resonance to check: set selftest.resonance_hz or add a peak_finder or "
                  "lockin node")
        checks += [Check(name, "skip", None, unit, None, None, reason)
                   for name, unit in (("channel_coherence", ""), ("resonance_frequency", "Hz"))]
    if measured_rate is None:
        checks.append(Check("sample_rate", "skip", None, "Hz", None, None,
                            f"sample rate not measured: {rate_basis}"))
    else:
        tol = limits.sample_rate * limits.max_sample_rate_error_percent / 100.0
        check = _range_check("sample_rate", measured_rate, "Hz", limits.sample_rate - tol,
                             limits.sample_rate + tol, f"sample rate ({rate_basis})")
        checks.append(check)
    return checks
