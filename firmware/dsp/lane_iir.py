"""A biquad cascade run four samples at a time: the frame cut into four lanes, then stitched.

A biquad's recurrence (each output needs the previous one) bounds a plain cascade at one
sample per recurrence latency, about 8 cycles, however many arithmetic units the CPU has:
that is the "floor" ``pafw bench`` prints. Linearity lifts that bound. Cut the frame into
``LANES`` equal lanes and run the cascade over all of them at once from a zero state: four
independent recurrences in one loop, which the CPU overlaps (and the compiler may pack into
one SIMD register). Each lane then lacks only the response to the state it should have
started from, and that part is known in closed form: with ``s`` the cascade's state vector
(``z1, z2`` of every section, ``2 * n_sections`` values) and ``A`` its state-transition
matrix,

    y_true[n] = y_zero_state[n] + H[:, n] . s_start        (H[k, n]: output n of state e_k)
    s_end     = A^M s_start + s_zero_state_end             (M: the lane's length)

so the true start state of each lane follows from the previous lane's, and ``H`` adds its
contribution with a vectorisable multiply-add per state. ``H`` and ``A^M`` come from running
the plain kernel itself over zeros from each unit state, so they use exactly its state
convention (transposed direct form II, scipy's). The result equals the plain cascade's to
rounding: about 1e-14 of the output's peak for the default band-pass; for poles very near
the unit circle (a 10 Hz notch at 50 Hz, a 2 Hz low-pass) both forms drift from exact
arithmetic by 1e-13..1e-11 of the peak, the lane form within a few times the plain one's
drift (tests/dsp/test_lane_iir.py measures both against extended precision).

Kernels follow the contract of kernels.py: cached, GIL-free, ``contract`` fast-math only,
caller-owned buffers, no allocation.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import numba
import numpy as np
from numba.core import config as numba_config
from numba.core.compiler_lock import global_compiler_lock

from firmware.dsp import kernels

_JIT = numba.njit(cache=True, nogil=True, fastmath={"contract"})

#: lanes run side by side (four doubles fill an AVX register; two NEON registers on aarch64)
LANES = 4
#: sections the lane kernel runs (a shorter cascade is padded with identity sections)
SECTIONS = 4
STATES = 2 * SECTIONS
#: shortest lane worth stitching: below it the fix-up costs more than the overlap saves
MIN_LANE = 64


@_JIT
def _zero_state_lanes(
    sos: np.ndarray, x: np.ndarray, row: int, lane: int, yt: np.ndarray, ends: np.ndarray,
) -> None:
    """The four sections of ``sos`` over the four lanes of ``x[row]`` (``lane`` samples each)
    from a zero state. Sample ``i`` of lane ``l`` goes to ``yt[row, 4 * i + l]`` (interleaved,
    so the four lanes' values sit side by side and the compiler packs them into one SIMD
    register); the state each lane ends in goes to ``ends[2 * section + register, l]``."""
    b0a, b1a, b2a, a1a, a2a = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b0b, b1b, b2b, a1b, a2b = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    b0c, b1c, b2c, a1c, a2c = sos[2, 0], sos[2, 1], sos[2, 2], sos[2, 4], sos[2, 5]
    b0d, b1d, b2d, a1d, a2d = sos[3, 0], sos[3, 1], sos[3, 2], sos[3, 4], sos[3, 5]
    # state of section a..d, register 0/1, lane 0..3
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = 0.0
    b00 = b01 = b02 = b03 = b10 = b11 = b12 = b13 = 0.0
    c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = 0.0
    d00 = d01 = d02 = d03 = d10 = d11 = d12 = d13 = 0.0
    o1, o2, o3 = lane, 2 * lane, 3 * lane
    for i in range(lane):
        v0, v1, v2, v3 = x[row, i], x[row, o1 + i], x[row, o2 + i], x[row, o3 + i]
        y0, y1, y2, y3 = b0a * v0 + a00, b0a * v1 + a01, b0a * v2 + a02, b0a * v3 + a03
        a00, a01 = (b1a * v0 + a10) - a1a * y0, (b1a * v1 + a11) - a1a * y1
        a02, a03 = (b1a * v2 + a12) - a1a * y2, (b1a * v3 + a13) - a1a * y3
        a10, a11 = b2a * v0 - a2a * y0, b2a * v1 - a2a * y1
        a12, a13 = b2a * v2 - a2a * y2, b2a * v3 - a2a * y3
        v0, v1, v2, v3 = y0, y1, y2, y3
        y0, y1, y2, y3 = b0b * v0 + b00, b0b * v1 + b01, b0b * v2 + b02, b0b * v3 + b03
        b00, b01 = (b1b * v0 + b10) - a1b * y0, (b1b * v1 + b11) - a1b * y1
        b02, b03 = (b1b * v2 + b12) - a1b * y2, (b1b * v3 + b13) - a1b * y3
        b10, b11 = b2b * v0 - a2b * y0, b2b * v1 - a2b * y1
        b12, b13 = b2b * v2 - a2b * y2, b2b * v3 - a2b * y3
        v0, v1, v2, v3 = y0, y1, y2, y3
        y0, y1, y2, y3 = b0c * v0 + c00, b0c * v1 + c01, b0c * v2 + c02, b0c * v3 + c03
        c00, c01 = (b1c * v0 + c10) - a1c * y0, (b1c * v1 + c11) - a1c * y1
        c02, c03 = (b1c * v2 + c12) - a1c * y2, (b1c * v3 + c13) - a1c * y3
        c10, c11 = b2c * v0 - a2c * y0, b2c * v1 - a2c * y1
        c12, c13 = b2c * v2 - a2c * y2, b2c * v3 - a2c * y3
        v0, v1, v2, v3 = y0, y1, y2, y3
        y0, y1, y2, y3 = b0d * v0 + d00, b0d * v1 + d01, b0d * v2 + d02, b0d * v3 + d03
        d00, d01 = (b1d * v0 + d10) - a1d * y0, (b1d * v1 + d11) - a1d * y1
        d02, d03 = (b1d * v2 + d12) - a1d * y2, (b1d * v3 + d13) - a1d * y3
        d10, d11 = b2d * v0 - a2d * y0, b2d * v1 - a2d * y1
        d12, d13 = b2d * v2 - a2d * y2, b2d * v3 - a2d * y3
        j = 4 * i
        yt[row, j], yt[row, j + 1], yt[row, j + 2], yt[row, j + 3] = y0, y1, y2, y3
    ends[0, 0], ends[0, 1], ends[0, 2], ends[0, 3] = a00, a01, a02, a03
    ends[1, 0], ends[1, 1], ends[1, 2], ends[1, 3] = a10, a11, a12, a13
    ends[2, 0], ends[2, 1], ends[2, 2], ends[2, 3] = b00, b01, b02, b03
    ends[3, 0], ends[3, 1], ends[3, 2], ends[3, 3] = b10, b11, b12, b13
    ends[4, 0], ends[4, 1], ends[4, 2], ends[4, 3] = c00, c01, c02, c03
    ends[5, 0], ends[5, 1], ends[5, 2], ends[5, 3] = c10, c11, c12, c13
    ends[6, 0], ends[6, 1], ends[6, 2], ends[6, 3] = d00, d01, d02, d03
    ends[7, 0], ends[7, 1], ends[7, 2], ends[7, 3] = d10, d11, d12, d13


@_JIT
def zero_state_lanes(
    sos: np.ndarray, zi: np.ndarray, x: np.ndarray, yt: np.ndarray, carry: np.ndarray,
    ends: np.ndarray, starts: np.ndarray,
) -> None:
    """First half of a frame: every row of ``x`` through the four-section cascade ``sos`` in
    four lanes from a zero state into ``yt`` (lane-interleaved), then the state each lane
    really starts from into ``starts[row]`` ``(8, 4)`` and the state the frame ends in into
    ``zi`` ``(channels, 4, 2)``. ``carry`` is :func:`lane_tables`'s, ``ends`` scratch
    ``(8, 4)``. Compiled with the SLP vectoriser (see :func:`compile_with_slp`)."""
    lane = x.shape[1] // LANES
    for row in range(x.shape[0]):
        _zero_state_lanes(sos, x, row, lane, yt, ends)
        for k in range(STATES):
            starts[row, k, 0] = zi[row, k // 2, k % 2]
        # lane l + 1 starts where lane l ends: its zero-state end plus its start carried
        for lane_index in range(LANES):
            for k in range(STATES):
                acc = ends[k, lane_index]
                for m in range(STATES):
                    acc += carry[k, m] * starts[row, m, lane_index]
                if lane_index + 1 < LANES:
                    starts[row, k, lane_index + 1] = acc
                else:
                    zi[row, k // 2, k % 2] = acc


@_JIT
def stitch_lanes(yt: np.ndarray, response: np.ndarray, starts: np.ndarray,
                 out: np.ndarray) -> None:
    """Second half of a frame: ``out[row, l * lane + i] = yt[row, 4 * i + l] +
    response[:, i] . starts[row, :, l]``, each lane's zero-state output plus its response to
    the state it really starts from, back in time order. The 32 start values of a row stay in
    registers and a sample's eight products are summed as a tree (no long chain of dependent
    multiply-adds); the loop vectorises over samples without the SLP vectoriser, which made
    this loop slower (measured 4.5 against 3.6 us for a 4096-sample frame)."""
    lane = out.shape[1] // LANES
    r0, r1, r2, r3 = response[0], response[1], response[2], response[3]
    r4, r5, r6, r7 = response[4], response[5], response[6], response[7]
    o1, o2, o3 = lane, 2 * lane, 3 * lane
    for row in range(out.shape[0]):
        s00, s01 = starts[row, 0, 0], starts[row, 0, 1]
        s02, s03 = starts[row, 0, 2], starts[row, 0, 3]
        s10, s11 = starts[row, 1, 0], starts[row, 1, 1]
        s12, s13 = starts[row, 1, 2], starts[row, 1, 3]
        s20, s21 = starts[row, 2, 0], starts[row, 2, 1]
        s22, s23 = starts[row, 2, 2], starts[row, 2, 3]
        s30, s31 = starts[row, 3, 0], starts[row, 3, 1]
        s32, s33 = starts[row, 3, 2], starts[row, 3, 3]
        s40, s41 = starts[row, 4, 0], starts[row, 4, 1]
        s42, s43 = starts[row, 4, 2], starts[row, 4, 3]
        s50, s51 = starts[row, 5, 0], starts[row, 5, 1]
        s52, s53 = starts[row, 5, 2], starts[row, 5, 3]
        s60, s61 = starts[row, 6, 0], starts[row, 6, 1]
        s62, s63 = starts[row, 6, 2], starts[row, 6, 3]
        s70, s71 = starts[row, 7, 0], starts[row, 7, 1]
        s72, s73 = starts[row, 7, 2], starts[row, 7, 3]
        for i in range(lane):
            h0, h1, h2, h3 = r0[i], r1[i], r2[i], r3[i]
            h4, h5, h6, h7 = r4[i], r5[i], r6[i], r7[i]
            j = 4 * i
            y0 = (yt[row, j] + ((h0 * s00 + h1 * s10) + (h2 * s20 + h3 * s30))
                  + ((h4 * s40 + h5 * s50) + (h6 * s60 + h7 * s70)))
            y1 = (yt[row, j + 1] + ((h0 * s01 + h1 * s11) + (h2 * s21 + h3 * s31))
                  + ((h4 * s41 + h5 * s51) + (h6 * s61 + h7 * s71)))
            y2 = (yt[row, j + 2] + ((h0 * s02 + h1 * s12) + (h2 * s22 + h3 * s32))
                  + ((h4 * s42 + h5 * s52) + (h6 * s62 + h7 * s72)))
            y3 = (yt[row, j + 3] + ((h0 * s03 + h1 * s13) + (h2 * s23 + h3 * s33))
                  + ((h4 * s43 + h5 * s53) + (h6 * s63 + h7 * s73)))
            out[row, i], out[row, o1 + i] = y0, y1
            out[row, o2 + i], out[row, o3 + i] = y2, y3


def padded_sections(sos: np.ndarray) -> np.ndarray:
    """``sos`` with identity sections (``y = x``) appended up to ``SECTIONS``."""
    if sos.shape[0] > SECTIONS:
        raise ValueError(f"the lane kernel runs at most {SECTIONS} sections, got {sos.shape[0]}")
    identity = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), (SECTIONS - sos.shape[0], 1))
    return np.ascontiguousarray(np.vstack([sos, identity]))


def lane_tables(sos: np.ndarray, lane: int) -> tuple[np.ndarray, np.ndarray]:
    """``(response, carry)`` of the padded cascade ``sos`` for lanes of ``lane`` samples.

    ``response[k]`` is the cascade's output over ``lane`` samples of silence from the unit
    state ``e_k``; ``carry[:, k]``
    is the state that run ends in (column ``k`` of ``A^lane``). Both come from the plain
    kernel, so the state convention is the kernel's own.
    """
    response = np.zeros((STATES, lane))
    carry = np.zeros((STATES, STATES))
    silence = np.zeros((1, lane))
    row = np.zeros((1, lane))
    for k in range(STATES):
        zi = np.zeros((1, SECTIONS, 2))
        zi[0, k // 2, k % 2] = 1.0
        kernels.sos_filter(sos, zi, silence, row)
        response[k] = row[0]
        carry[:, k] = zi[0].reshape(STATES)
    return response, carry


def lanes_apply(n_sections: int, frame_size: int) -> bool:
    """Whether a cascade of ``n_sections`` over frames of ``frame_size`` runs in lanes."""
    return (n_sections <= SECTIONS and frame_size % LANES == 0
            and frame_size // LANES >= MIN_LANE)


#: set once ``zero_state_lanes`` is compiled (or loaded) in this process, under the SLP switch
_compiled = threading.Event()


def compile_with_slp(call: Callable[[], None]) -> None:
    """Run ``call`` (the first call of ``zero_state_lanes``) with LLVM's SLP vectoriser on.

    numba leaves the SLP (straight-line code) vectoriser off by default; it is what packs the
    four lanes' scalar recurrences into SIMD registers (1.9x faster here with it). The flag
    is read when a function is compiled, so it is set only around this first call, under
    numba's own compiler lock so no other compilation sees it; later calls, and a start whose
    kernel comes from the cache, compile nothing.
    """
    with global_compiler_lock:
        saved = getattr(numba_config, "SLP_VECTORIZE", 0)
        setattr(numba_config, "SLP_VECTORIZE", 1)  # noqa: B010 - numba sets it at runtime
        try:
            call()
        finally:
            setattr(numba_config, "SLP_VECTORIZE", saved)  # noqa: B010


class LaneCascade:
    """The lane form of one cascade for frames of ``channels x frame_size``: its tables and
    scratch, built once; ``process`` allocates nothing."""

    def __init__(self, sos: np.ndarray, *, channels: int, frame_size: int) -> None:
        if not lanes_apply(sos.shape[0], frame_size):
            raise ValueError(f"{sos.shape[0]} sections over frames of {frame_size} samples "
                             "do not run in lanes")
        lane = frame_size // LANES
        self.sos = padded_sections(sos)
        self.response, self.carry = lane_tables(self.sos, lane)
        self._interleaved = np.zeros((channels, frame_size))
        self._ends = np.zeros((STATES, LANES))
        self._starts = np.zeros((channels, STATES, LANES))
        if not _compiled.is_set():  # once per process, on scratch of the types process passes
            silence = np.zeros((channels, frame_size))
            compile_with_slp(lambda: zero_state_lanes(
                self.sos, np.zeros((channels, SECTIONS, 2)), silence, self._interleaved,
                self.carry, self._ends, self._starts))
            _compiled.set()

    def process(self, zi: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
        """Filter ``x`` into ``out`` carrying ``zi`` ``(channels, 4, 2)``; ``out`` may be
        ``x``."""
        zero_state_lanes(self.sos, zi, x, self._interleaved, self.carry, self._ends,
                         self._starts)
        stitch_lanes(self._interleaved, self.response, self._starts, out)


#: the lane form is taken only when it beats the plain kernel by this factor on this machine
REQUIRED_GAIN = 1.1
_ROUNDS = 7
_CALLS_PER_ROUND = 4
_faster: dict[tuple[int, int, int], bool] = {}
_faster_lock = threading.Lock()


def faster_here(sos: np.ndarray, *, channels: int, frame_size: int) -> bool:
    """Whether the lane form of ``sos`` runs frames of ``channels x frame_size`` faster than
    the plain kernel on this machine, measured once per process and shape.

    How much the lanes gain depends on the CPU: four doubles per AVX register pack the four
    lanes into one (1.9x faster on this x86), two per NEON register only half, while the
    lane form does about twice the arithmetic (zero-state pass, then the stitch). So instead
    of a rule per architecture both forms are timed side by side, in alternating rounds on
    seeded noise, the way a planner picks an FFT algorithm; the lanes are taken when their
    median is ``REQUIRED_GAIN`` times better. Either choice gives the same result to
    rounding, so a close call on a noisy machine costs speed, never accuracy.
    """
    key = (int(sos.shape[0]), channels, frame_size)
    with _faster_lock:
        known = _faster.get(key)
        if known is not None:
            return known
        if not lanes_apply(sos.shape[0], frame_size):
            _faster[key] = False
            return False
        x = np.random.default_rng(1).standard_normal((channels, frame_size))
        out = np.zeros_like(x)
        laned = LaneCascade(sos, channels=channels, frame_size=frame_size)
        lane_zi = np.zeros((channels, SECTIONS, 2))
        plain_zi = np.zeros((channels, sos.shape[0], 2))
        laned.process(lane_zi, x, out)  # compiled (or loaded) before the clock starts
        kernels.sos_filter(sos, plain_zi, x, out)
        lanes_ns: list[int] = []
        plain_ns: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(_ROUNDS):
            start = clock()
            for _ in range(_CALLS_PER_ROUND):
                laned.process(lane_zi, x, out)
            middle = clock()
            for _ in range(_CALLS_PER_ROUND):
                kernels.sos_filter(sos, plain_zi, x, out)
            lanes_ns.append(middle - start)
            plain_ns.append(clock() - middle)
        faster = statistics.median(lanes_ns) * REQUIRED_GAIN < statistics.median(plain_ns)
        _faster[key] = faster
        return faster
