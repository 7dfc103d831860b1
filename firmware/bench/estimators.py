"""`pafw bench estimators`: how close the amplitude estimators come to the Cramer-Rao bound.

Simulated records: a tone ``A cos(2 pi f t + phi)`` with a random phase, between FFT bins,
in white Gaussian noise of variance ``sigma^2``, at several per-sample SNRs
``A^2 / (2 sigma^2)``. The same records go to the peak finder (as configured, with the
matched and with the window amplitude estimator) and to a lock-in at the tone's frequency.

The bound. For ``x[n] = A cos(w n + phi) + e[n]``, ``n < N``, with ``A``, ``w``, ``phi``
unknown, the Fisher information about ``A`` is ``sum cos^2(w n + phi) / sigma^2 ~ N / (2
sigma^2)``, and its cross terms with ``w`` and ``phi`` are sums of ``sin * cos`` that vanish
(to O(1) against O(N)) away from DC and Nyquist, so ``var(A_hat) >= CRB = 2 sigma^2 / N``
(Kay, Fundamentals of Statistical Signal Processing I, example 3.14). A Hann-windowed bin
reaches ``N sum(w^2) / sum(w)^2 = 1.5`` times it; the least-squares fit of a sinusoid at the
estimated frequency reaches it (the frequency error costs only second order).

The peak finder sees the last ``fft_size`` samples, so its ``N`` is ``fft_size``. The lock-in
weighs samples by its low-pass impulse response ``h`` (sum 1); its amplitude variance is
``2 sigma^2 sum(h^2)``, that of an unweighted record of ``N_eff = 1 / sum(h^2)`` samples. The
bench sets its time constant so that ``N_eff = fft_size`` (both estimators use the same amount
of data), feeds it ``SETTLE_RECORDS`` records' worth of the tone first, and divides by the
same bound.

LOD: three standard deviations of the amplitude estimate, through the slope at zero of the
configured calibration polynomial (ppm per amplitude unit), at each SNR's noise level.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import scipy.signal

from firmware.config.loader import ConfigDocument
from firmware.dsp.lockin import LockInDetector
from firmware.dsp.peaks import PeakFinder

#: per-sample SNRs (dB): from near the detection limit of a 4096-point Hann bin to clean
SNRS_DB = (-20.0, -10.0, 0.0, 10.0, 20.0)
AMPLITUDE = 0.01
#: lock-in records fed before the measured one, so its low-pass has settled
SETTLE_RECORDS = 8


def lockin_effective_samples(alpha: float, order: int) -> float:
    """``1 / sum(h^2)`` of ``order`` cascaded ``y += alpha (u - y)`` stages (impulse response
    run out to where it has decayed below 1e-12 of its peak)."""
    length = int(min(1 << 22, (40.0 + 8.0 * order) / alpha))
    response = np.zeros(length)
    response[0] = 1.0
    for _ in range(order):
        response = scipy.signal.lfilter([alpha], [1.0, alpha - 1.0], response)
    return float(1.0 / np.sum(response**2))


def lockin_time_constant(effective_samples: float, sample_rate: float, order: int) -> float:
    """Time constant (s) whose ``order``-stage low-pass has ``N_eff = effective_samples``."""
    lo, hi = 1e-6, 0.5  # alpha
    for _ in range(40):  # N_eff falls as alpha grows
        mid = math.sqrt(lo * hi)
        if lockin_effective_samples(mid, order) > effective_samples:
            lo = mid
        else:
            hi = mid
    alpha = math.sqrt(lo * hi)
    return -1.0 / (sample_rate * math.log1p(-alpha))


def _stats(estimates: list[float], truth: float) -> dict[str, float | None]:
    if len(estimates) < 2:
        return {"bias": None, "rms_error": None, "std": None}
    values = np.asarray(estimates)
    return {"bias": float(np.mean(values) - truth),
            "rms_error": float(np.sqrt(np.mean((values - truth) ** 2))),
            "std": float(np.std(values, ddof=1))}


def run_estimator_bench(doc: ConfigDocument, *, trials: int = 300,
                        snrs_db: tuple[float, ...] = SNRS_DB, seed: int = 1) -> dict[str, Any]:
    """Run every estimator on the same records; returns a JSON-safe dict of figures."""
    nodes = {n.type: n.params for n in doc.config.processing.default_graph.nodes}
    pk = nodes["peak_finder"]
    fs = float(doc.config.acquisition.sample_rate)
    n = int(pk.fft_size)
    coefficients = list(nodes["concentration"].polynomial_coefficients)
    ppm_per_amplitude = coefficients[1] if len(coefficients) > 1 else math.nan
    bin_hz = fs / n
    frequency = (round(0.5 * (pk.frequency_min + pk.frequency_max) / bin_hz) + 0.37) * bin_hz
    finders = {
        f"peak_finder ({estimator})": PeakFinder(
            sample_rate=fs, fft_size=n, frequency_min_hz=pk.frequency_min,
            frequency_max_hz=pk.frequency_max, window=pk.window,
            detection_threshold_db=pk.detection_threshold_db, amplitude_estimator=estimator)
        for estimator in ("matched", "window")
    }
    order = 2
    tau = lockin_time_constant(n, fs, order)
    lockin = LockInDetector(sample_rate=fs, reference_hz=frequency, time_constant_s=tau,
                            filter_order=order)
    rng = np.random.default_rng(seed)
    record = np.empty(n)
    rows: list[dict[str, Any]] = []
    for snr_db in snrs_db:
        sigma = AMPLITUDE / math.sqrt(2.0 * 10.0 ** (snr_db / 10.0))
        crb = 2.0 * sigma**2 / n
        amplitudes: dict[str, list[float]] = {name: [] for name in (*finders, "lockin")}
        frequencies: dict[str, list[float]] = {name: [] for name in finders}
        for _ in range(trials):
            phase = rng.uniform(0.0, 2.0 * math.pi)
            lockin.reset()
            for r in range(SETTLE_RECORDS + 1):
                t = np.arange(r * n, (r + 1) * n)
                np.cos(2.0 * math.pi * frequency / fs * t + phase, out=record)
                record *= AMPLITUDE
                record += rng.normal(0.0, sigma, n)
                result = lockin.process(record)
            amplitudes["lockin"].append(result.amplitude)
            for name, finder in finders.items():
                finder.reset()
                peak = finder.process(record)
                if peak.detected:
                    amplitudes[name].append(peak.raw_amplitude)
                    frequencies[name].append(peak.raw_frequency_hz)
        for name, values in amplitudes.items():
            stats = _stats(values, AMPLITUDE)
            std = stats["std"]
            rows.append({
                "estimator": name,
                "snr_db": snr_db,
                "detected": len(values) / trials,
                "frequency_hz": (_stats(frequencies[name], frequency) if name in frequencies
                                 else None),
                "amplitude": stats,
                "var_over_crb": None if std is None else std**2 / crb,
                "lod_ppm": None if std is None else 3.0 * std * ppm_per_amplitude,
            })
    return {"trials": trials, "samples": n, "sample_rate": fs, "frequency_hz": frequency,
            "amplitude": AMPLITUDE, "lockin_time_constant_s": tau, "lockin_order": order,
            "ppm_per_amplitude": ppm_per_amplitude, "rows": rows}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_estimator_report(figures: dict[str, Any]) -> str:
    """Human-readable table of run_estimator_bench's figures."""
    lines = [
        f"{figures['trials']} records per SNR of a {figures['amplitude']:g} tone at "
        f"{figures['frequency_hz']:.2f} Hz in white noise, N = {figures['samples']} samples "
        f"(lock-in: {figures['lockin_order']} stages, tau {figures['lockin_time_constant_s']:.4f}"
        f" s, N_eff = N); CRB(A) = 2 sigma^2 / N",
        f"{'estimator':<24} {'SNR dB':>6} {'det':>5} {'f bias Hz':>10} {'f rms Hz':>9} "
        f"{'A bias %':>9} {'A rms %':>8} {'var/CRB':>8} {'LOD ppm':>8}",
    ]
    amplitude = figures["amplitude"]
    for row in figures["rows"]:
        freq = row["frequency_hz"] or {}
        amp = row["amplitude"]
        bias = None if amp["bias"] is None else 100.0 * amp["bias"] / amplitude
        rms = None if amp["rms_error"] is None else 100.0 * amp["rms_error"] / amplitude
        lines.append(
            f"{row['estimator']:<24} {row['snr_db']:>6.0f} {row['detected']:>5.2f} "
            f"{_fmt(freq.get('bias'), '10.4f'):>10} {_fmt(freq.get('rms_error'), '9.4f'):>9} "
            f"{_fmt(bias, '9.3f'):>9} {_fmt(rms, '8.3f'):>8} "
            f"{_fmt(row['var_over_crb'], '8.3f'):>8} {_fmt(row['lod_ppm'], '8.2f'):>8}")
    return "\n".join(lines)


def median_var_over_crb(figures: dict[str, Any], estimator: str) -> float:
    """Median of an estimator's var/CRB over the SNRs where it was measured."""
    values = [r["var_over_crb"] for r in figures["rows"]
              if r["estimator"] == estimator and r["var_over_crb"] is not None]
    return statistics.median(values) if values else math.nan
