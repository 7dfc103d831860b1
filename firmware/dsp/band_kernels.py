"""Numba kernels that look at a few frequencies of a record instead of its whole spectrum.

The peak finder needs about 50 of the 2049 bins of a 4096-point spectrum. ``goertzel_bins``
computes exactly those DFT bins with a bank of Goertzel recursions: ``N * K`` fused
multiply-adds that vectorise across the bins (eight per AVX-512 register), no window
multiply, no FFT call. Measured against the alternatives (docs/performance.md; ``pafw
bench`` times the band and FFT paths side by side): a phasor-rotation DFT needs three times
the arithmetic per bin and does not vectorise in this loop shape (20x slower); a zoom
FFT (heterodyne, anti-alias filter, decimate, small FFT) is cheaper but only approximates the
bins — its filter lets out-of-band energy alias in and delays the record, so the band path
would no longer equal the full FFT for every input; a chirp-z transform costs three FFTs
longer than the record. The Goertzel bank is exact (to rounding, ~1e-12) and wins while the
band is narrow; ``PeakFinder`` keeps the FFT for wide bands (see ``band_dft_cheaper``).

``tone_dft`` evaluates the record's DTFT at one arbitrary frequency (the peak finder's
refined estimate) in blocks that vectorise, for the matched amplitude estimate.

All kernels are ``njit(cache=True, nogil=True)`` and write into caller-owned buffers.
``fastmath={"contract"}`` only lets LLVM fuse ``a * b + c`` into one FMA (no reassociation),
which shortens the recursions and keeps results reproducible.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from firmware.dsp.kernels import push_history

_JIT = numba.njit(cache=True, nogil=True, fastmath={"contract"})
_INLINE = numba.njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
#: block length of ``tone_dft`` (its scratch is ``(4, BLOCK)``)
BLOCK = 64
#: bins per FFT stage below which the Goertzel bank is cheaper (``N * K`` against
#: ``N * log2(N)``; measured, with margin): the band path is taken while ``K <= this * log2 N``
GOERTZEL_BINS_PER_FFT_STAGE = 6.0


def band_dft_cheaper(bins: int, fft_size: int) -> bool:
    """True when a Goertzel bank over ``bins`` bins is cheaper than an ``fft_size`` real FFT.

    The cost model is ``bins * N`` against ``GOERTZEL_BINS_PER_FFT_STAGE * N * log2(N)``;
    the constant comes from measuring both in one run (at N = 4096 a bank of 56 bins took
    about 0.55 of numpy's ``rfft`` and its window multiply, a crossover near 100 bins; the
    constant stays on the FFT's side of it).
    """
    return bins <= GOERTZEL_BINS_PER_FFT_STAGE * math.log2(fft_size) + 0.5


@_INLINE
def goertzel_eight_steps(
    coef: np.ndarray, u: np.ndarray, v: np.ndarray, x0: float, x1: float, x2: float,
    x3: float, x4: float, x5: float, x6: float, x7: float,
) -> None:
    """Eight Goertzel steps of every lane: ``s[n] = coef * s[n-1] - s[n-2] + x[n]`` with
    ``u = s[n-1]`` and ``v = s[n-2]`` held in registers meanwhile (the loop over lanes is what
    vectorises). Inlined into its callers' sample loops."""
    for j in range(coef.shape[0]):
        c = coef[j]
        uu = u[j]
        # c * s1 + (x - s2): the subtraction waits on the older state only, so one FMA
        # per step sits on the recursion's critical path
        vv = c * uu + (x0 - v[j])
        uu = c * vv + (x1 - uu)
        vv = c * uu + (x2 - vv)
        uu = c * vv + (x3 - uu)
        vv = c * uu + (x4 - vv)
        uu = c * vv + (x5 - uu)
        vv = c * uu + (x6 - vv)
        uu = c * vv + (x7 - uu)
        v[j] = vv
        u[j] = uu


@_JIT
def goertzel_bins(
    x: np.ndarray, coef: np.ndarray, twiddle: np.ndarray, u: np.ndarray, v: np.ndarray,
    out: np.ndarray, keep: np.ndarray,
) -> None:
    """``out[j] = sum_n x[n] exp(-1j w_j n)`` for ``j < len(coef)``: DFT bins at ``w_j``.

    ``coef[j] = 2 cos(w_j)`` and ``twiddle[j] = exp(1j w_j)``; for DFT bin ``k`` of an
    ``N = len(x)`` point transform, ``w_j = 2 pi k / N``; ``u`` and ``v`` are scratch of the
    same length. Bins may be negative or above N/2 (the DTFT at ``w_j``). Eight samples per
    pass over the bins, the two states of a bin held in registers meanwhile: the loop over
    bins is what vectorises, and eight steps per pass amortise its set-up (measured: 1.4x
    faster than four, 1.3x faster than sixteen). ``keep[i] = x[i]`` as the samples pass (the
    caller's history, filled for free on the way; ``keep`` may be ``x`` itself).
    """
    n = x.shape[0]
    bins = coef.shape[0]
    for j in range(bins):
        u[j] = 0.0  # s[n - 1]
        v[j] = 0.0  # s[n - 2]
    head = n - n % 8
    for i in range(0, head, 8):
        x0 = x[i]
        x1 = x[i + 1]
        x2 = x[i + 2]
        x3 = x[i + 3]
        x4 = x[i + 4]
        x5 = x[i + 5]
        x6 = x[i + 6]
        x7 = x[i + 7]
        keep[i] = x0
        keep[i + 1] = x1
        keep[i + 2] = x2
        keep[i + 3] = x3
        keep[i + 4] = x4
        keep[i + 5] = x5
        keep[i + 6] = x6
        keep[i + 7] = x7
        goertzel_eight_steps(coef, u, v, x0, x1, x2, x3, x4, x5, x6, x7)
    for i in range(head, n):
        xi = x[i]
        keep[i] = xi
        for j in range(bins):
            s = coef[j] * u[j] + (xi - v[j])
            v[j] = u[j]
            u[j] = s
    # X = exp(1j w) s[N-1] - s[N-2]  (one more step with x[N] = 0, then the first-order part)
    for j in range(bins):
        out[j] = twiddle[j] * u[j] - v[j]


@_JIT
def window_bins(
    rect: np.ndarray, kernel: np.ndarray, half: int, lo: int, hi: int, first_bin: int,
    out: np.ndarray,
) -> None:
    """``out[k] = sum_j kernel[j + half] * rect[k - j - first_bin]`` for ``lo <= k <= hi``.

    A cosine-sum window (Hann, Blackman-Harris, flat-top) is a few cosines, so its DFT
    ``kernel`` has ``2 * half + 1`` non-zero taps and windowing in time is that short
    convolution of the rectangular bins ``rect`` (bin ``first_bin`` at index 0) in frequency:
    exact, and cheaper than multiplying the whole record by the window.
    """
    taps = 2 * half + 1
    for k in range(lo, hi + 1):
        base = k - first_bin + half
        acc = 0j
        for t in range(taps):
            acc += kernel[t] * rect[base - t]
        out[k] = acc


@_JIT
def tone_dft(x: np.ndarray, omega: float, lanes: np.ndarray) -> complex:
    """``sum_n x[n] exp(-1j omega n)`` over all of ``x`` (any ``omega`` in radians/sample).

    With ``n = B b + m`` (``B = BLOCK``): ``sum_m exp(-1j omega m) P[m]`` where
    ``P[m] = sum_b x[B b + m] exp(-1j omega B b)``. Accumulating ``P`` is an element-wise
    multiply-add over ``m`` with one phasor per block, which vectorises without reordering any
    sum; both phasor sequences come from ``BLOCK``-step rotations (drift ~1e-15).
    ``lanes`` is ``(4, BLOCK)`` scratch. Samples past the last whole block use exact phases.
    """
    n = x.shape[0]
    p_re = lanes[0]
    p_im = lanes[1]
    t_re = lanes[2]
    t_im = lanes[3]
    step_re = math.cos(omega)
    step_im = -math.sin(omega)
    re = 1.0
    im = 0.0
    for m in range(BLOCK):  # t[m] = exp(-1j omega m)
        t_re[m] = re
        t_im[m] = im
        p_re[m] = 0.0
        p_im[m] = 0.0
        re, im = re * step_re - im * step_im, re * step_im + im * step_re
    block_step_re = math.cos(omega * BLOCK)
    block_step_im = -math.sin(omega * BLOCK)
    c = 1.0
    s = 0.0
    blocks = n // BLOCK
    for b in range(blocks):
        base = b * BLOCK
        for m in range(BLOCK):
            xv = x[base + m]
            p_re[m] += xv * c
            p_im[m] += xv * s
        c, s = c * block_step_re - s * block_step_im, c * block_step_im + s * block_step_re
    total_re = 0.0
    total_im = 0.0
    for m in range(BLOCK):
        total_re += p_re[m] * t_re[m] - p_im[m] * t_im[m]
        total_im += p_re[m] * t_im[m] + p_im[m] * t_re[m]
    for i in range(blocks * BLOCK, n):
        total_re += x[i] * math.cos(omega * i)
        total_im -= x[i] * math.sin(omega * i)
    return complex(total_re, total_im)


@_JIT
def matched_amplitude(x: np.ndarray, omega: float, lanes: np.ndarray) -> float:
    """Amplitude of the sinusoid at ``omega`` that best fits all of ``x`` (least squares):
    ``sinusoid_amplitude(tone_dft(x, omega, lanes), omega, len(x))`` in one dispatch."""
    return sinusoid_amplitude(tone_dft(x, omega, lanes), omega, x.shape[0])


@_JIT
def sinusoid_amplitude(dft: complex, omega: float, n: int) -> float:
    """Least-squares amplitude of ``a cos(omega t) + b sin(omega t)`` over ``t = 0 .. n-1``.

    ``dft`` is ``sum_t x[t] exp(-1j omega t)`` (so ``sum x cos = dft.real`` and
    ``sum x sin = -dft.imag``). The 2x2 normal equations use the exact Gram sums
    ``sum cos^2, sum sin^2, sum sin cos`` from the geometric series of ``exp(2j omega t)``, so
    the tone's negative-frequency image is accounted for (no leakage bias at any frequency).
    This is the maximum-likelihood amplitude for a tone of known frequency in white noise;
    near DC or Nyquist, where the two columns become collinear, it falls back to ``2|dft|/n``.
    """
    two = 2.0 * omega
    denom_re = 1.0 - math.cos(two)
    denom_im = -math.sin(two)
    denom = denom_re * denom_re + denom_im * denom_im
    if denom < 1e-12:
        return 2.0 * abs(dft) / n
    num_re = 1.0 - math.cos(two * n)
    num_im = -math.sin(two * n)
    # g = sum exp(2j omega t) = (1 - e^{2j omega n}) / (1 - e^{2j omega})
    g_re = (num_re * denom_re + num_im * denom_im) / denom
    g_im = (num_im * denom_re - num_re * denom_im) / denom
    scc = 0.5 * n + 0.5 * g_re
    sss = 0.5 * n - 0.5 * g_re
    scs = 0.5 * g_im
    det = scc * sss - scs * scs
    if det <= 1e-9 * n * n:
        return 2.0 * abs(dft) / n
    rc = dft.real
    rs = -dft.imag
    a = (sss * rc - scs * rs) / det
    b = (scc * rs - scs * rc) / det
    return math.hypot(a, b)


@_JIT
def band_spectrum(
    history: np.ndarray, x: np.ndarray, bank: np.ndarray, cbank: np.ndarray,
    kernel: np.ndarray, lo: int, hi: int, spectrum: np.ndarray,
) -> None:
    """The peak finder's band path in one dispatch: the newest ``len(history)`` samples of
    ``history`` + ``x`` go through ``goertzel_bins`` and ``window_bins`` into
    ``spectrum[lo:hi + 1]``, and become the new ``history``.

    ``bank`` is ``(3, K)``: ``2 cos(w)``, then the two state rows; ``cbank`` is ``(2, K)``:
    ``exp(1j w)``, then the rectangular bins (the first is bin ``lo - half``). A frame at least
    as long as the history is read once, straight from ``x``, and copied into the history on
    the way (no separate pass); a shorter one slides the history first.
    """
    size = history.shape[0]
    if x.shape[0] >= size:
        goertzel_bins(x[x.shape[0] - size:], bank[0], cbank[0], bank[1], bank[2], cbank[1],
                      history)
    else:
        push_history(history, x)
        goertzel_bins(history, bank[0], cbank[0], bank[1], bank[2], cbank[1], history)
    half = kernel.shape[0] // 2
    window_bins(cbank[1], kernel, half, lo, hi, lo - half, spectrum)
