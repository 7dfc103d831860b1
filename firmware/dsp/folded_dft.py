"""A few DFT bins of a long record through a 16-fold split: an eighth of a Goertzel bank's work.

For an ``N = 16 M`` point record and bin ``k``, write ``n = n' + j M`` (``0 <= n' < M``,
``0 <= j < 16``). Since ``exp(-2 pi i k j M / N) = exp(-2 pi i k j / 16)`` depends on
``s = k mod 16`` only::

    X[k] = sum_n' F_s[n'] exp(-1j w_k n'),   F_s[n'] = sum_j x[n' + j M] exp(-2 pi i j s / 16)

``F_s`` is a 16-point DFT down the columns of ``x`` seen as a ``16 x M`` matrix ("folding"),
and each bin is then the DTFT of an ``M``-sample sequence at its own frequency ``w_k``: a
Goertzel recursion ``M`` long instead of ``N``. ``x`` is real, so ``F_{16-s} = conj(F_s)``
and the real and imaginary parts of ``F_0 .. F_8`` are 16 real rows (``Im F_0 = Im F_8 =
0``); bin ``k`` is ``G_re + i G_im`` (``s <= 8``) or ``G_re - i G_im`` (``s > 8``, rows of
``16 - s``), each ``G`` a real-input Goertzel over one row. A band of ``K`` bins needs about
``2 K`` recursions of ``N / 16`` steps: ``K N / 8`` multiply-adds where a bank over the
record needs ``K N``. The recursions of one row share their input, so each row's lanes are
one vector (a width of eight, padded).

The fold is done in stages over whole rows (pairs ``x_j +- x_{16-j}``, then pairs of pairs,
then the 16 outputs as five-term sums from a table), each a loop that LLVM vectorises: a
single loop computing all 16 outputs from 16 input rows has too many possibly-aliasing
pointers for the vectoriser's run-time checks and runs scalar, five times slower.

Exact to rounding (the shorter recursions are more accurate than the bank's, ~1e-14 of the
largest bin). ``PeakFinder`` uses it for the band path whenever ``N`` is a multiple of 128
(``band_kernels.goertzel_bins`` otherwise). Kernels are ``njit(cache=True, nogil=True)`` and
write into caller-owned buffers (``FoldedBand``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from firmware.dsp.band_kernels import (
    GOERTZEL_BINS_PER_FFT_STAGE,
    goertzel_eight_steps,
    window_bins,
)
from firmware.dsp.kernels import push_history

_JIT = numba.njit(cache=True, nogil=True, fastmath={"contract"})
#: the split: 16 rows of ``N / 16`` samples
FOLD = 16
#: lanes of one row's recursions are padded to a multiple of this (one AVX-512 register)
LANE_WIDTH = 8
#: the fold's cost in Goertzel lanes per row (measured at N = 4096: the fold took about as
#: long as ten lanes of recursions per row)
FOLD_COST_LANES = 10
_C1 = math.cos(math.pi / 8)
_C2 = math.sqrt(0.5)
_C3 = math.sin(math.pi / 8)


def foldable(fft_size: int) -> bool:
    """True when an ``fft_size`` record splits into 16 rows of a multiple of 8 samples (the
    recursions take eight samples per pass, with no remainder loop: less code to load)."""
    return fft_size % (FOLD * 8) == 0


def row_width(bins: int) -> int:
    """Upper bound of the padded lanes per row for a band of ``bins`` consecutive bins.

    A residue class mod 16 holds at most ``ceil(bins / 16)`` of them and a row serves two
    classes (``s`` and ``16 - s``).
    """
    per_row = 2 * -(-bins // FOLD)
    return -(-per_row // LANE_WIDTH) * LANE_WIDTH


def folded_cheaper(bins: int, fft_size: int) -> bool:
    """True when the folded path over ``bins`` consecutive bins is cheaper than an
    ``fft_size`` real FFT: ``(row_width + FOLD_COST_LANES) * N`` against the FFT's cost in
    the same units (``band_kernels.GOERTZEL_BINS_PER_FFT_STAGE * N * log2 N``)."""
    cost = row_width(bins) + FOLD_COST_LANES
    return cost <= GOERTZEL_BINS_PER_FFT_STAGE * math.log2(fft_size) + 0.5


@dataclass(frozen=True, slots=True)
class FoldedBand:
    """Everything ``folded_band_spectrum`` reads and writes for one band, allocated once.

    ``work`` is ``(48, M)``: the 16 rows, then 32 rows of scratch for the fold's stages.
    ``bank`` is ``(3, 16, W)``: ``2 cos(w)`` of each lane, then the two Goertzel states.
    ``cbank`` is ``(3, 16, W)``: ``exp(1j w)``, ``exp(-1j w M)`` and the lanes' results.
    ``lanes`` is ``(2, K)``: for bin ``first_bin + b``, the flat lane of its real row and of
    its imaginary row (``-1``: none, for ``k = 0, 8 mod 16``); ``sign`` is ``+1`` or ``-1``
    (the conjugate half). ``rect`` receives the ``K`` rectangular bins.
    """

    first_bin: int
    work: np.ndarray
    bank: np.ndarray
    cbank: np.ndarray
    lanes: np.ndarray
    sign: np.ndarray
    rect: np.ndarray

    @classmethod
    def plan(cls, first_bin: int, bins: int, fft_size: int) -> FoldedBand:
        """Lay out the recursions for bins ``first_bin .. first_bin + bins - 1`` (any
        integers: negative ones or ones past ``N / 2`` are the DTFT there)."""
        if not foldable(fft_size):
            raise ValueError(f"fft_size={fft_size} is not a multiple of {FOLD} rows of a "
                             f"multiple of 8 samples")
        m = fft_size // FOLD
        per_row: list[list[int]] = [[] for _ in range(FOLD)]
        lanes = np.full((2, bins), -1, dtype=np.int64)
        sign = np.ones(bins, dtype=np.float64)
        placed: list[tuple[int, int, int]] = []
        for b in range(bins):
            k = first_bin + b
            s = k % FOLD
            if s > FOLD // 2:
                s = FOLD - s
                sign[b] = -1.0
            imag_row = FOLD // 2 + s if 0 < s < FOLD // 2 else -1
            per_row[s].append(k)
            if imag_row >= 0:
                per_row[imag_row].append(k)
            placed.append((b, s, imag_row))
        width = -(-max(len(row) for row in per_row) // LANE_WIDTH) * LANE_WIDTH
        bank = np.zeros((3, FOLD, width), dtype=np.float64)
        cbank = np.zeros((3, FOLD, width), dtype=np.complex128)
        for r, ks in enumerate(per_row):
            # padding lanes repeat a real bin (or DC): harmless, and never read back
            padded = ks + [ks[0] if ks else 0] * (width - len(ks))
            omega = 2.0 * np.pi * np.asarray(padded, dtype=np.float64) / fft_size
            bank[0, r] = 2.0 * np.cos(omega)
            cbank[0, r] = np.exp(1j * omega)
            cbank[1, r] = np.exp(-1j * omega * m)
        for b, real_row, imag_row in placed:
            k = first_bin + b
            lanes[0, b] = real_row * width + per_row[real_row].index(k)
            if imag_row >= 0:
                lanes[1, b] = imag_row * width + per_row[imag_row].index(k)
        return cls(first_bin=first_bin, work=np.zeros((3 * FOLD, m)), bank=bank,
                   cbank=cbank, lanes=lanes, sign=sign,
                   rect=np.zeros(bins, dtype=np.complex128))


# Stage 3 of the fold: output row r = sum of five scratch rows _TERM_ROWS[r] (slots of
# ``fold_record``'s scratch, see there) weighted by _TERM_WEIGHTS[r]; unused terms weigh 0.
_E, _O, _A4, _B4 = 0, 8, 4, 12
_AP, _AM, _BP, _BM = 16, 20, 24, 28  # + j for j = 1..3
_TERMS = (
    # even residues: Re F_0, F_8, F_2, F_6, F_4, then Im F_2, F_6, F_4
    (0, ((_E, 1.0), (_A4, 1.0), (_AP + 1, 1.0), (_AP + 2, 1.0), (_AP + 3, 1.0))),
    (8, ((_E, 1.0), (_A4, 1.0), (_AP + 1, -1.0), (_AP + 2, 1.0), (_AP + 3, -1.0))),
    (2, ((_E, 1.0), (_A4, -1.0), (_AP + 1, _C2), (_AP + 3, -_C2))),
    (6, ((_E, 1.0), (_A4, -1.0), (_AP + 1, -_C2), (_AP + 3, _C2))),
    (4, ((_E, 1.0), (_A4, 1.0), (_AP + 2, -1.0))),
    (10, ((_BM + 1, -_C2), (_BM + 3, -_C2), (_BM + 2, -1.0))),
    (14, ((_BM + 1, -_C2), (_BM + 3, -_C2), (_BM + 2, 1.0))),
    (12, ((_BM + 1, -1.0), (_BM + 3, 1.0))),
    # odd residues: Re F_1, F_3, F_5, F_7, then Im F_1, F_3, F_5, F_7
    (1, ((_O, 1.0), (_AM + 1, _C1), (_AM + 2, _C2), (_AM + 3, _C3))),
    (3, ((_O, 1.0), (_AM + 1, _C3), (_AM + 2, -_C2), (_AM + 3, -_C1))),
    (5, ((_O, 1.0), (_AM + 1, -_C3), (_AM + 2, -_C2), (_AM + 3, _C1))),
    (7, ((_O, 1.0), (_AM + 1, -_C1), (_AM + 2, _C2), (_AM + 3, -_C3))),
    (9, ((_B4, -1.0), (_BP + 1, -_C3), (_BP + 2, -_C2), (_BP + 3, -_C1))),
    (11, ((_B4, 1.0), (_BP + 1, -_C1), (_BP + 2, -_C2), (_BP + 3, _C3))),
    (13, ((_B4, -1.0), (_BP + 1, -_C1), (_BP + 2, _C2), (_BP + 3, _C3))),
    (15, ((_B4, 1.0), (_BP + 1, -_C3), (_BP + 2, _C2), (_BP + 3, -_C1))),
)


def _term_tables() -> tuple[np.ndarray, np.ndarray]:
    """``_TERMS`` as two ``(16, 5)`` arrays (slots, weights) that the kernel reads as
    constants."""
    slots = np.zeros((FOLD, 5), dtype=np.int64)
    weights = np.zeros((FOLD, 5), dtype=np.float64)
    for row, terms in _TERMS:
        for t, (slot, weight) in enumerate(terms):
            slots[row, t] = slot
            weights[row, t] = weight
    return slots, weights


_TERM_ROWS, _TERM_WEIGHTS = _term_tables()


@_JIT
def fold_record(x: np.ndarray, work: np.ndarray) -> None:
    """``work[0:16]`` = the real rows of ``F_0 .. F_8`` (rows 0..8) and the imaginary rows
    of ``F_1 .. F_7`` (rows 9..15) of the ``16 M`` samples ``x``; ``work[16:48]`` is scratch.

    A 16-point real DFT down each column, split the usual way: with ``a_j = x_j + x_{16-j}``
    and ``b_j = x_j - x_{16-j}``, ``Re F_s = x_0 + (-1)^s x_8 + sum_j a_j cos(pi j s / 8)``
    and ``Im F_s = -sum_j b_j sin(pi j s / 8)``; pairing ``j`` with ``8 - j`` once more
    leaves at most five terms per output (``_TERMS``). Each stage is one loop over whole
    rows, written once and run for every row (compiled code stays small: each inlined copy
    of a vectorised loop costs resident memory when the kernel is loaded).
    """
    m = work.shape[1]
    t = work[FOLD:]
    # scratch slots: 0 = x0 + x8, 8 = x0 - x8; j = a_j, 8 + j = b_j (j = 1..7)
    for j in range(8):
        partner = 8 if j == 0 else 16 - j
        a = x[j * m:(j + 1) * m]
        b = x[partner * m:(partner + 1) * m]
        total = t[j]
        difference = t[8 + j]
        for i in range(m):
            ai = a[i]
            bi = b[i]
            total[i] = ai + bi
            difference[i] = ai - bi
    # j with 8 - j (j = 1..3): a_j +- a_{8-j} -> slots 16 + j, 20 + j; b_j +- b_{8-j} ->
    # slots 24 + j, 28 + j
    for pair in range(6):
        j = 1 + pair % 3
        base = 0 if pair < 3 else 8  # the a or the b slots
        a = t[base + j]
        b = t[base + 8 - j]
        total = t[_AP + base + j]  # ap_j or bp_j
        difference = t[_AM + base + j]  # am_j or bm_j
        for i in range(m):
            ai = a[i]
            bi = b[i]
            total[i] = ai + bi
            difference[i] = ai - bi
    for r in range(FOLD):
        p0 = t[_TERM_ROWS[r, 0]]
        p1 = t[_TERM_ROWS[r, 1]]
        p2 = t[_TERM_ROWS[r, 2]]
        p3 = t[_TERM_ROWS[r, 3]]
        p4 = t[_TERM_ROWS[r, 4]]
        w0 = _TERM_WEIGHTS[r, 0]
        w1 = _TERM_WEIGHTS[r, 1]
        w2 = _TERM_WEIGHTS[r, 2]
        w3 = _TERM_WEIGHTS[r, 3]
        w4 = _TERM_WEIGHTS[r, 4]
        out = work[r]
        for i in range(m):
            out[i] = w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i] + w4 * p4[i]


@_JIT
def row_recursions(work: np.ndarray, bank: np.ndarray, cbank: np.ndarray) -> None:
    """Goertzel recursions over the 16 rows of ``work``: ``cbank[2, r, l]`` becomes
    ``sum_n work[r, n] exp(-1j w n)`` for lane ``l``'s frequency ``w``.

    A recursion of ``M`` steps ends at ``exp(1j w M) sum_n row[n] exp(-1j w n)`` (the bins'
    frequencies are not on the row's own grid), hence the ``exp(-1j w M)`` factor. Eight
    samples per pass (``band_kernels.goertzel_eight_steps``), as ``goertzel_bins`` does.
    """
    m = work.shape[1]
    width = bank.shape[2]
    coef = bank[0]
    u = bank[1]
    v = bank[2]
    for r in range(FOLD):
        for j in range(width):
            u[r, j] = 0.0  # s[n - 1]
            v[r, j] = 0.0  # s[n - 2]
    for i in range(0, m, 8):  # foldable(): m is a multiple of 8
        for r in range(FOLD):
            row = work[r]
            x0 = row[i]
            x1 = row[i + 1]
            x2 = row[i + 2]
            x3 = row[i + 3]
            x4 = row[i + 4]
            x5 = row[i + 5]
            x6 = row[i + 6]
            x7 = row[i + 7]
            goertzel_eight_steps(coef[r], u[r], v[r], x0, x1, x2, x3, x4, x5, x6, x7)
    for r in range(FOLD):
        for j in range(width):
            cbank[2, r, j] = cbank[1, r, j] * (cbank[0, r, j] * u[r, j] - v[r, j])


@_JIT
def folded_bins(x: np.ndarray, work: np.ndarray, bank: np.ndarray, cbank: np.ndarray,
                lanes: np.ndarray, sign: np.ndarray, rect: np.ndarray) -> None:
    """``rect[b] = sum_n x[n] exp(-2 pi i (first_bin + b) n / N)``: the planned bins of the
    ``N``-sample record ``x`` (``FoldedBand.plan`` laid out ``work .. rect``)."""
    fold_record(x, work)
    row_recursions(work, bank, cbank)
    results = cbank[2].ravel()
    for b in range(rect.shape[0]):
        value = results[lanes[0, b]]
        imag_lane = lanes[1, b]
        if imag_lane >= 0:
            g = results[imag_lane]
            # value + sign * 1j * g
            value = complex(value.real - sign[b] * g.imag, value.imag + sign[b] * g.real)
        rect[b] = value


@_JIT
def folded_band_spectrum(
    history: np.ndarray, x: np.ndarray, work: np.ndarray, bank: np.ndarray,
    cbank: np.ndarray, lanes: np.ndarray, sign: np.ndarray, rect: np.ndarray,
    kernel: np.ndarray, lo: int, hi: int, spectrum: np.ndarray,
) -> None:
    """The peak finder's band path in one dispatch: the newest ``len(history)`` samples of
    ``history`` + ``x`` become the new ``history``, go through ``folded_bins`` and are
    windowed by ``band_kernels.window_bins`` into ``spectrum[lo:hi + 1]`` (the planned bins
    start at ``lo - half``)."""
    push_history(history, x)
    folded_bins(history, work, bank, cbank, lanes, sign, rect)
    half = kernel.shape[0] // 2
    window_bins(rect, kernel, half, lo, hi, lo - half, spectrum)
