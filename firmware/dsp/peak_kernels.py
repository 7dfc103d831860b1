"""The peak finder's whole per-frame estimate after the spectrum, in one numba dispatch.

Every call from Python into a numba kernel costs about 0.3 us plus about 75 ns per array
argument (type checks); at ~20 us per frame the five calls the estimate used to make cost as
much as the arithmetic they dispatched. ``estimate_peak`` does the magnitudes, the search,
the noise median, the between-bin refinement, the window and matched amplitudes, the SNR and
the detection decision in one call, with the integer and float settings packed in two small
arrays (``LAYOUT_*`` and ``PARAM_*`` index them).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from firmware.dsp import band_kernels, kernels

_JIT = numba.njit(cache=True, nogil=True, fastmath={"contract"})

# integer settings (``layout``)
LAYOUT_MAG_LO, LAYOUT_MAG_HI, LAYOUT_K_LO, LAYOUT_K_HI = 0, 1, 2, 3
LAYOUT_NOISE_LO, LAYOUT_NOISE_HI, LAYOUT_EXCLUDE = 4, 5, 6
LAYOUT_COMPLEX_ESTIMATOR, LAYOUT_MATCHED = 7, 8
LAYOUT_SIZE = 9
# float settings (``params``)
PARAM_CANDAN, PARAM_MAX_OFFSET, PARAM_OMEGA_PER_BIN = 0, 1, 2
PARAM_AMPLITUDE_PER_MEDIAN, PARAM_THRESHOLD_DB = 3, 4
PARAMS_SIZE = 5
# rows of ``tables``: the three-point ratio, the offsets, |W(offset)|
TABLE_RATIO, TABLE_OFFSET, TABLE_RESPONSE = 0, 1, 2


@_JIT
def estimate_peak(
    spectrum: np.ndarray, magnitude: np.ndarray, scratch: np.ndarray, tables: np.ndarray,
    history: np.ndarray, lanes: np.ndarray, layout: np.ndarray, params: np.ndarray, full: bool,
) -> tuple[int, float, float, float, float, float, bool]:
    """Returns ``(k, offset, window_amplitude, matched_amplitude, noise_floor, snr_db,
    detected)`` for the windowed ``spectrum`` (only bins ``mag_lo..mag_hi`` are read).

    ``offset`` is the tone's position from bin ``k`` in bins, clamped to ``+-max_offset``;
    ``window_amplitude`` comes from the window's response at that offset and decides
    detection with ``snr_db``; ``matched_amplitude`` is the least-squares sinusoid amplitude
    at the refined frequency over ``history`` (NaN unless matched is set and the peak is
    detected). A frame without a usable peak has ``snr_db = -inf``.
    """
    k, below, centre, above, median = kernels.locate_peak(
        spectrum, magnitude, layout[LAYOUT_MAG_LO], layout[LAYOUT_MAG_HI], layout[LAYOUT_K_LO],
        layout[LAYOUT_K_HI], layout[LAYOUT_NOISE_LO], layout[LAYOUT_NOISE_HI],
        layout[LAYOUT_EXCLUDE], scratch)
    noise_floor = median * params[PARAM_AMPLITUDE_PER_MEDIAN]
    nan = math.nan
    denominator = below + 2.0 * centre + above
    if centre <= 0.0 or denominator <= 0.0:  # (NaN input goes on, to a NaN SNR)
        return k, nan, nan, nan, noise_floor, -math.inf, False
    if layout[LAYOUT_COMPLEX_ESTIMATOR]:
        offset = kernels.jacobsen_offset(spectrum, k, params[PARAM_CANDAN])
    else:
        offset = kernels.interpolate_table(
            tables[TABLE_RATIO], tables[TABLE_OFFSET], (above - below) / denominator)
    limit = params[PARAM_MAX_OFFSET]
    offset = min(max(offset, -limit), limit)
    window_amplitude = 2.0 * centre / kernels.interpolate_table(
        tables[TABLE_OFFSET], tables[TABLE_RESPONSE], offset)
    if noise_floor > 0.0:
        snr_db = 20.0 * math.log10(window_amplitude / noise_floor)
    elif noise_floor == 0.0:  # a noiseless input has an infinite SNR
        snr_db = math.inf
    else:  # NaN input
        snr_db = nan
    detected = (full and centre >= below and centre >= above
                and snr_db >= params[PARAM_THRESHOLD_DB])
    matched_amplitude = nan
    if detected and layout[LAYOUT_MATCHED]:
        matched_amplitude = band_kernels.matched_amplitude(
            history, (k + offset) * params[PARAM_OMEGA_PER_BIN], lanes)
    return k, offset, window_amplitude, matched_amplitude, noise_floor, snr_db, detected
