"""Numba kernels for the per-frame hot path: SOS cascade, gains and mixers, spectrum helpers.

Every kernel is compiled with ``cache=True`` (compiled once per machine, not per start),
``nogil=True`` (the DSP thread releases the GIL while it crunches, so the control loop keeps
running) and ``fastmath={"contract"}``: LLVM may fuse ``a * b + c`` into one FMA, which
takes a biquad section from nine floating-point operations per sample to five and shortens
its recurrence (the 4-section cascade runs about 1.3x faster); nothing is reassociated, so
results stay reproducible and within ~1e-15 of scipy's. Kernels write into caller-owned
buffers and allocate nothing: the classes in filters.py, peaks.py and lockin.py allocate those
buffers once, in their constructors.

Signals are float64, C-contiguous, shaped ``(channels, n)``; row 0 is microphone A, row 1 is B.
Kernels trust their caller about shapes (checking belongs to the classes that own the buffers).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = numba.njit(cache=True, nogil=True, fastmath={"contract"})


# --------------------------------------------------------------------------- IIR filtering


@_JIT
def _two_channels_two_sections(
    sos: np.ndarray, zi: np.ndarray, src: np.ndarray, out: np.ndarray, c: int, s: int
) -> None:
    """Rows ``c, c + 1`` through sections ``s, s + 1`` in one sample loop.

    An IIR is bound by the latency of its recurrence, not by arithmetic throughput, so the loop
    carries four independent chains (two channels x two sections) for the CPU to overlap, and
    all eight state variables stay in registers for the whole frame.
    """
    p0, p1, p2, pa1, pa2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
    q0, q1, q2, qa1, qa2 = sos[s + 1, 0], sos[s + 1, 1], sos[s + 1, 2], sos[s + 1, 4], sos[s + 1, 5]
    ua0, ua1, ub0, ub1 = zi[c, s, 0], zi[c, s, 1], zi[c + 1, s, 0], zi[c + 1, s, 1]
    va0, va1 = zi[c, s + 1, 0], zi[c, s + 1, 1]
    vb0, vb1 = zi[c + 1, s + 1, 0], zi[c + 1, s + 1, 1]
    for i in range(src.shape[1]):
        xa = src[c, i]
        xb = src[c + 1, i]
        ya = p0 * xa + ua0
        yb = p0 * xb + ub0
        ua0 = p1 * xa - pa1 * ya + ua1
        ub0 = p1 * xb - pa1 * yb + ub1
        ua1 = p2 * xa - pa2 * ya
        ub1 = p2 * xb - pa2 * yb
        wa = q0 * ya + va0
        wb = q0 * yb + vb0
        va0 = q1 * ya - qa1 * wa + va1
        vb0 = q1 * yb - qa1 * wb + vb1
        va1 = q2 * ya - qa2 * wa
        vb1 = q2 * yb - qa2 * wb
        out[c, i] = wa
        out[c + 1, i] = wb
    zi[c, s, 0], zi[c, s, 1], zi[c + 1, s, 0], zi[c + 1, s, 1] = ua0, ua1, ub0, ub1
    zi[c, s + 1, 0], zi[c, s + 1, 1] = va0, va1
    zi[c + 1, s + 1, 0], zi[c + 1, s + 1, 1] = vb0, vb1


@_JIT
def _two_channels_one_section(
    sos: np.ndarray, zi: np.ndarray, src: np.ndarray, out: np.ndarray, c: int, s: int
) -> None:
    """Rows ``c, c + 1`` through section ``s`` (the odd section of a cascade)."""
    b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
    za0, za1, zb0, zb1 = zi[c, s, 0], zi[c, s, 1], zi[c + 1, s, 0], zi[c + 1, s, 1]
    for i in range(src.shape[1]):
        xa = src[c, i]
        xb = src[c + 1, i]
        ya = b0 * xa + za0
        yb = b0 * xb + zb0
        za0 = b1 * xa - a1 * ya + za1
        zb0 = b1 * xb - a1 * yb + zb1
        za1 = b2 * xa - a2 * ya
        zb1 = b2 * xb - a2 * yb
        out[c, i] = ya
        out[c + 1, i] = yb
    zi[c, s, 0], zi[c, s, 1], zi[c + 1, s, 0], zi[c + 1, s, 1] = za0, za1, zb0, zb1


@_JIT
def _one_channel_four_sections(
    sos: np.ndarray, zi: np.ndarray, src: np.ndarray, out: np.ndarray, c: int, s: int
) -> None:
    """Row ``c`` through sections ``s .. s + 3`` in one sample loop.

    A lone channel has no partner to overlap with, so four sections share the loop: four
    independent recurrences keep the CPU busy (about 1.7x faster than two per pass) and the
    signal makes one trip through memory instead of two. ``(b1*x + z1) - a1*y`` puts only one
    multiply-subtract after ``y`` on each recurrence's critical path.
    """
    b0a, b1a, b2a, a1a, a2a = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
    t = s + 1
    b0b, b1b, b2b, a1b, a2b = sos[t, 0], sos[t, 1], sos[t, 2], sos[t, 4], sos[t, 5]
    t = s + 2
    b0c, b1c, b2c, a1c, a2c = sos[t, 0], sos[t, 1], sos[t, 2], sos[t, 4], sos[t, 5]
    t = s + 3
    b0d, b1d, b2d, a1d, a2d = sos[t, 0], sos[t, 1], sos[t, 2], sos[t, 4], sos[t, 5]
    za0, za1 = zi[c, s, 0], zi[c, s, 1]
    zb0, zb1 = zi[c, s + 1, 0], zi[c, s + 1, 1]
    zc0, zc1 = zi[c, s + 2, 0], zi[c, s + 2, 1]
    zd0, zd1 = zi[c, s + 3, 0], zi[c, s + 3, 1]
    for i in range(src.shape[1]):
        v = src[c, i]
        y = b0a * v + za0
        za0 = (b1a * v + za1) - a1a * y
        za1 = b2a * v - a2a * y
        v = y
        y = b0b * v + zb0
        zb0 = (b1b * v + zb1) - a1b * y
        zb1 = b2b * v - a2b * y
        v = y
        y = b0c * v + zc0
        zc0 = (b1c * v + zc1) - a1c * y
        zc1 = b2c * v - a2c * y
        v = y
        y = b0d * v + zd0
        zd0 = (b1d * v + zd1) - a1d * y
        zd1 = b2d * v - a2d * y
        out[c, i] = y
    zi[c, s, 0], zi[c, s, 1] = za0, za1
    zi[c, s + 1, 0], zi[c, s + 1, 1] = zb0, zb1
    zi[c, s + 2, 0], zi[c, s + 2, 1] = zc0, zc1
    zi[c, s + 3, 0], zi[c, s + 3, 1] = zd0, zd1


@_JIT
def _one_channel_two_sections(
    sos: np.ndarray, zi: np.ndarray, src: np.ndarray, out: np.ndarray, c: int, s: int
) -> None:
    """Row ``c`` through sections ``s, s + 1`` (two chains per sample)."""
    p0, p1, p2, pa1, pa2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
    q0, q1, q2, qa1, qa2 = sos[s + 1, 0], sos[s + 1, 1], sos[s + 1, 2], sos[s + 1, 4], sos[s + 1, 5]
    u0, u1, v0, v1 = zi[c, s, 0], zi[c, s, 1], zi[c, s + 1, 0], zi[c, s + 1, 1]
    for i in range(src.shape[1]):
        xv = src[c, i]
        y = p0 * xv + u0
        u0 = p1 * xv - pa1 * y + u1
        u1 = p2 * xv - pa2 * y
        w = q0 * y + v0
        v0 = q1 * y - qa1 * w + v1
        v1 = q2 * y - qa2 * w
        out[c, i] = w
    zi[c, s, 0], zi[c, s, 1], zi[c, s + 1, 0], zi[c, s + 1, 1] = u0, u1, v0, v1


@_JIT
def _one_channel_one_section(
    sos: np.ndarray, zi: np.ndarray, src: np.ndarray, out: np.ndarray, c: int, s: int
) -> None:
    """Row ``c`` through section ``s``."""
    b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
    z0, z1 = zi[c, s, 0], zi[c, s, 1]
    for i in range(src.shape[1]):
        xv = src[c, i]
        y = b0 * xv + z0
        z0 = b1 * xv - a1 * y + z1
        z1 = b2 * xv - a2 * y
        out[c, i] = y
    zi[c, s, 0], zi[c, s, 1] = z0, z1


@_JIT
def sos_filter(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """Run a cascade of biquads over every row of ``x`` into ``out``, carrying ``zi``.

    ``sos`` is ``(n_sections, 6)`` in scipy's layout with ``a0 == 1``; ``zi`` is
    ``(channels, n_sections, 2)`` and is updated in place so the next frame continues where this
    one stopped. Transposed direct form II, the same recurrence as ``scipy.signal.sosfilt``.
    Channels are taken two at a time with two sections per pass (see
    ``_two_channels_two_sections``); a lone channel takes four sections per pass
    (``_one_channel_four_sections``). The first pass reads ``x``, later passes work in place
    in ``out``, so ``out`` may be the same array as ``x``.
    """
    channels = x.shape[0]
    n_sections = sos.shape[0]
    c = 0
    while c < channels:
        pair = c + 1 < channels
        s = 0
        while s < n_sections:
            src = x if s == 0 else out
            if not pair and s + 3 < n_sections:
                _one_channel_four_sections(sos, zi, src, out, c, s)
                s += 4
            elif s + 1 < n_sections:
                if pair:
                    _two_channels_two_sections(sos, zi, src, out, c, s)
                else:
                    _one_channel_two_sections(sos, zi, src, out, c, s)
                s += 2
            else:
                if pair:
                    _two_channels_one_section(sos, zi, src, out, c, s)
                else:
                    _one_channel_one_section(sos, zi, src, out, c, s)
                s += 1
        c += 2 if pair else 1


# --------------------------------------------------------------------------- gains and mixers


@_JIT
def scale(x: np.ndarray, gain: float, out: np.ndarray) -> None:
    """``out = gain * x`` for every row; ``out`` may alias ``x``."""
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[c, i] = gain * x[c, i]


@_JIT
def mix(x: np.ndarray, weight_a: float, weight_b: float, out: np.ndarray) -> None:
    """``out[0] = weight_a * A + weight_b * B``: sum (1, 1), average (0.5, 0.5), weighted, ...

    ``out`` has shape ``(1, n)``; it may be a view of row 0 of ``x``.
    """
    for i in range(x.shape[1]):
        out[0, i] = weight_a * x[0, i] + weight_b * x[1, i]


@_JIT
def differential(x: np.ndarray, out: np.ndarray) -> None:
    """``out[0] = A - B``: the photoacoustic signal is in antiphase at the two microphones while
    flow and ambient noise are common-mode, so the difference keeps the former and cancels the
    latter. ``out`` has shape ``(1, n)``."""
    for i in range(x.shape[1]):
        out[0, i] = x[0, i] - x[1, i]


@_JIT
def select_channel(x: np.ndarray, index: int, out: np.ndarray) -> None:
    """``out[0] = x[index]`` (copy one row into a ``(1, n)`` buffer)."""
    for i in range(x.shape[1]):
        out[0, i] = x[index, i]


# --------------------------------------------------------------------------- spectrum helpers


@_JIT
def push_history(history: np.ndarray, x: np.ndarray) -> None:
    """Slide the 1-D ``history`` left by ``len(x)`` and append ``x`` (keep the newest samples)."""
    size = history.shape[0]
    n = x.shape[0]
    if n >= size:
        offset = n - size
        for i in range(size):
            history[i] = x[offset + i]
        return
    keep = size - n
    for i in range(keep):
        history[i] = history[i + n]
    for i in range(n):
        history[keep + i] = x[i]


@_JIT
def apply_window(history: np.ndarray, window: np.ndarray, out: np.ndarray) -> None:
    """``out = history * window`` (elementwise, 1-D)."""
    for i in range(history.shape[0]):
        out[i] = history[i] * window[i]


@_JIT
def push_and_window(
    history: np.ndarray, x: np.ndarray, window: np.ndarray, out: np.ndarray
) -> None:
    """``push_history(history, x)`` then ``apply_window(history, window, out)`` in one call:
    the peak finder's whole pre-FFT step for one dispatch from Python."""
    push_history(history, x)
    apply_window(history, window, out)


@_JIT
def locate_peak(
    spectrum: np.ndarray,
    mag: np.ndarray,
    mag_lo: int,
    mag_hi: int,
    k_lo: int,
    k_hi: int,
    noise_lo: int,
    noise_hi: int,
    exclude: int,
    scratch: np.ndarray,
) -> tuple[int, float, float, float, float]:
    """The peak finder's post-FFT step in one call: magnitudes of the bins it needs, the
    largest bin ``k`` of the search range, its neighbours' magnitudes and the noise-floor
    median without the peak's main lobe. Returns ``(k, below, centre, above, median)``."""
    magnitude_range(spectrum, mag_lo, mag_hi, mag)
    k = argmax_range(mag, k_lo, k_hi)
    median = median_excluding(mag, noise_lo, noise_hi, k - exclude, k + exclude, scratch)
    return k, mag[k - 1], mag[k], mag[k + 1], median


@_JIT
def magnitude(spectrum: np.ndarray, out: np.ndarray) -> None:
    """``out = |spectrum|`` for a complex 1-D spectrum (see ``magnitude_range``)."""
    for k in range(spectrum.shape[0]):
        v = spectrum[k]
        out[k] = math.sqrt(v.real * v.real + v.imag * v.imag)


@_JIT
def magnitude_range(spectrum: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
    """``out[k] = |spectrum[k]|`` for ``lo <= k <= hi`` only: the peak finder needs the bins
    around its search range, not the whole spectrum.

    ``sqrt(re^2 + im^2)`` rather than ``hypot``: it vectorises (measured: 60 bins in 46 ns
    against 516 ns), and the spectra of audio in [-1, 1] are nowhere near the 1e154 where
    the squares would overflow. The two differ by at most an ulp.
    """
    for k in range(lo, hi + 1):
        v = spectrum[k]
        out[k] = math.sqrt(v.real * v.real + v.imag * v.imag)


@_JIT
def argmax_range(values: np.ndarray, lo: int, hi: int) -> int:
    """Index of the largest of ``values[lo:hi + 1]`` (first one on ties)."""
    best = lo
    best_value = values[lo]
    for k in range(lo + 1, hi + 1):
        if values[k] > best_value:
            best_value = values[k]
            best = k
    return best


@_JIT
def window_response(window: np.ndarray, delta_bins: float) -> float:
    """``|W(delta)|``: the window's DTFT magnitude ``delta_bins`` bins away from its centre.

    A sinusoid of amplitude ``a`` that sits ``delta`` bins from bin ``k`` shows up in bin ``k``
    with magnitude ``a / 2 * |W(delta)|``; ``W(0)`` is the coherent gain times the length, and
    ``W(delta) / W(0)`` is the scalloping factor. The phasor is advanced by a rotation (no
    sin/cos per sample); its drift over 64 k samples stays near 1e-12.
    """
    n = window.shape[0]
    theta = -2.0 * math.pi * delta_bins / n
    step_re = math.cos(theta)
    step_im = math.sin(theta)
    rot_re = 1.0
    rot_im = 0.0
    acc_re = 0.0
    acc_im = 0.0
    for i in range(n):
        acc_re += window[i] * rot_re
        acc_im += window[i] * rot_im
        new_re = rot_re * step_re - rot_im * step_im
        rot_im = rot_re * step_im + rot_im * step_re
        rot_re = new_re
    return math.hypot(acc_re, acc_im)


@_JIT
def jacobsen_offset(spectrum: np.ndarray, k: int, candan_factor: float) -> float:
    """Offset in bins of a tone from bin ``k`` of an unwindowed spectrum (Jacobsen + Candan).

    ``delta = candan_factor * Re((X[k-1] - X[k+1]) / (2 X[k] - X[k-1] - X[k+1]))`` with
    ``candan_factor = tan(pi / N) / (pi / N)``, exact for one complex exponential.
    """
    xm = spectrum[k - 1]
    x0 = spectrum[k]
    xp = spectrum[k + 1]
    denominator = 2.0 * x0 - xm - xp
    if denominator == 0:
        return 0.0
    return candan_factor * float(((xm - xp) / denominator).real)


@_JIT
def interpolate_table(xs: np.ndarray, ys: np.ndarray, value: float) -> float:
    """Linear interpolation of ``ys`` at ``value`` on the increasing grid ``xs`` (clamped)."""
    n = xs.shape[0]
    if value <= xs[0]:
        return float(ys[0])
    if value >= xs[n - 1]:
        return float(ys[n - 1])
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= value:
            lo = mid
        else:
            hi = mid
    t = (value - xs[lo]) / (xs[hi] - xs[lo])
    return float(ys[lo] + t * (ys[hi] - ys[lo]))


@_JIT
def median_excluding(
    values: np.ndarray, lo: int, hi: int, skip_lo: int, skip_hi: int, scratch: np.ndarray
) -> float:
    """Median of ``values[lo:hi + 1]`` without ``values[skip_lo:skip_hi + 1]``.

    Copies the kept values into ``scratch`` (at least ``hi - lo + 1`` long) and runs an in-place
    quickselect there, so nothing is allocated. Returns NaN when no value is kept.
    """
    m = 0
    for k in range(lo, hi + 1):
        if k < skip_lo or k > skip_hi:
            scratch[m] = values[k]
            m += 1
    if m == 0:
        return math.nan
    upper = _select(scratch, m, m // 2)
    if m % 2 == 1:
        return upper
    # even count: the lower middle is the largest value left of the upper middle
    lower = scratch[0]
    for k in range(1, m // 2):
        if scratch[k] > lower:
            lower = scratch[k]
    return 0.5 * (float(lower) + upper)


@_JIT
def _select(a: np.ndarray, m: int, k: int) -> float:
    """Hoare quickselect on ``a[:m]``: returns the k-th smallest, partitioning ``a`` around it."""
    left = 0
    right = m - 1
    while left < right:
        pivot = a[(left + right) // 2]
        i = left
        j = right
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                tmp = a[i]
                a[i] = a[j]
                a[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            return float(a[k])
    return float(a[k])


# --------------------------------------------------------------------------- lock-in


@_JIT
def demodulate(
    x: np.ndarray,
    phase: float,
    phase_step: float,
    alpha: float,
    state_i: np.ndarray,
    state_q: np.ndarray,
) -> None:
    """Mix ``x`` with the reference starting at ``phase`` and low-pass the products.

    ``state_i``/``state_q`` hold one value per first-order stage (``y += alpha * (u - y)``) and
    are updated in place. The reference is advanced by a complex rotation per sample, restarted
    from the exact ``phase`` every frame so rounding cannot accumulate beyond one frame.
    The products are doubled so the low-passed outputs equal the amplitude, not half of it.
    """
    stages = state_i.shape[0]
    ref_sin = math.sin(phase)
    ref_cos = math.cos(phase)
    step_sin = math.sin(phase_step)
    step_cos = math.cos(phase_step)
    for i in range(x.shape[0]):
        u_i = 2.0 * x[i] * ref_sin
        u_q = 2.0 * x[i] * ref_cos
        for s in range(stages):
            y_i = state_i[s] + alpha * (u_i - state_i[s])
            y_q = state_q[s] + alpha * (u_q - state_q[s])
            state_i[s] = y_i
            state_q[s] = y_q
            u_i = y_i
            u_q = y_q
        new_sin = ref_sin * step_cos + ref_cos * step_sin
        ref_cos = ref_cos * step_cos - ref_sin * step_sin
        ref_sin = new_sin
