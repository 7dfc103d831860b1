"""IIR filter design (scipy.signal -> second-order sections) and a streaming filter.

The band-pass around the cell's acoustic resonance is the first step of the chain: it removes
flow noise, mains hum and the chopper's harmonics before the differential and the peak finder.
Designs are always second-order sections (``output='sos'``): a 12th-order band-pass at a few
percent of Nyquist is numerically hopeless as a single transfer function but fine as biquads.
"""

from __future__ import annotations

import math
from typing import Literal, TypeGuard

import numpy as np

from firmware.dsp import kernels
from firmware.dsp.design_cache import cached_design
from firmware.dsp.lane_iir import SECTIONS, LaneCascade, faster_here, lanes_apply
from firmware.errors import DspError

#: scipy's names of the filter families (``ftype``)
Ftype = Literal["butter", "cheby1", "cheby2", "ellip", "bessel"]
Band = Literal["bandpass", "bandstop", "lowpass", "highpass"]

#: family name (as configured) -> scipy's ``ftype``
FAMILIES: dict[str, Ftype] = {
    "butterworth": "butter",
    "chebyshev1": "cheby1",
    "chebyshev2": "cheby2",
    "elliptic": "ellip",
    "bessel": "bessel",
}
BANDS: tuple[Band, ...] = ("bandpass", "bandstop", "lowpass", "highpass")
MAX_ORDER = 12


def _is_band(band: str) -> TypeGuard[Band]:
    return band in BANDS


def _check_edge(name: str, value: float | None, band: str, nyquist: float) -> float:
    if value is None:
        raise DspError(f"{name} is required for a {band} filter (a frequency in Hz)")
    if not math.isfinite(value) or not 0.0 < value < nyquist:
        raise DspError(
            f"{name}={value!r} Hz is outside (0, {nyquist:g}) Hz, the open range below Nyquist"
        )
    return float(value)


def design_sos(
    *,
    family: str,
    band: str,
    order: int,
    sample_rate: float,
    cutoff_hz: float | None = None,
    low_hz: float | None = None,
    high_hz: float | None = None,
    ripple_db: float = 1.0,
    attenuation_db: float = 40.0,
) -> np.ndarray:
    """Design a digital IIR filter and return its second-order sections.

    ``family`` is one of ``FAMILIES``, ``band`` one of ``BANDS``. Band-pass and band-stop take
    ``low_hz`` and ``high_hz``; low- and high-pass take ``cutoff_hz``. ``order`` is the prototype
    order as in scipy (a band filter of order N has 2N poles, N sections). ``ripple_db`` is the
    pass-band ripple of Chebyshev I and elliptic designs, ``attenuation_db`` the stop-band
    attenuation of Chebyshev II and elliptic designs. Bessel designs use ``norm='phase'``.

    Returns a C-contiguous float64 array of shape ``(n_sections, 6)`` with ``a0 == 1``.
    Raises DspError naming the parameter for any impossible request, and for a design that
    comes out unstable or non-finite.
    """
    if family not in FAMILIES:
        raise DspError(
            f"family={family!r} is not a filter family; expected one of {list(FAMILIES)}"
        )
    if not _is_band(band):
        raise DspError(f"band={band!r} is not a band type; expected one of {list(BANDS)}")
    if isinstance(order, bool) or not isinstance(order, int | np.integer):
        raise DspError(f"order={order!r} must be an integer from 1 to {MAX_ORDER}")
    if not 1 <= order <= MAX_ORDER:
        raise DspError(f"order={order} is out of range; expected 1 to {MAX_ORDER}")
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise DspError(f"sample_rate={sample_rate!r} must be a positive number of Hz")
    nyquist = sample_rate / 2.0

    edges: float | list[float]
    if band in ("bandpass", "bandstop"):
        if cutoff_hz is not None:
            raise DspError(
                f"cutoff_hz={cutoff_hz!r} does not apply to a {band} filter; "
                "give low_hz and high_hz"
            )
        low = _check_edge("low_hz", low_hz, band, nyquist)
        high = _check_edge("high_hz", high_hz, band, nyquist)
        if low >= high:
            raise DspError(f"low_hz={low:g} must be below high_hz={high:g} for a {band} filter")
        edges = [low, high]
    else:
        if low_hz is not None or high_hz is not None:
            raise DspError(
                f"low_hz/high_hz ({low_hz!r}, {high_hz!r}) do not apply to a {band} filter; "
                "give cutoff_hz"
            )
        edges = _check_edge("cutoff_hz", cutoff_hz, band, nyquist)

    ftype = FAMILIES[family]
    rp: float | None = None  # scipy's defaults: no ripple / attenuation given
    rs: float | None = None
    if ftype in ("cheby1", "ellip"):
        if not math.isfinite(ripple_db) or ripple_db <= 0:
            raise DspError(f"ripple_db={ripple_db!r} must be a positive number of dB for {family}")
        rp = float(ripple_db)
    if ftype in ("cheby2", "ellip"):
        if not math.isfinite(attenuation_db) or attenuation_db <= 0:
            raise DspError(
                f"attenuation_db={attenuation_db!r} must be a positive number of dB for {family}"
            )
        if ftype == "ellip" and attenuation_db <= ripple_db:
            raise DspError(
                f"attenuation_db={attenuation_db:g} must exceed ripple_db={ripple_db:g} "
                "for an elliptic filter"
            )
        rs = float(attenuation_db)

    def design() -> np.ndarray:
        import scipy.signal  # on a design-cache miss only: scipy is big and slow to import

        sos: np.ndarray = scipy.signal.iirfilter(
            int(order), edges, rp=rp, rs=rs, btype=band, ftype=ftype, output="sos",
            fs=float(sample_rate),
        )
        return sos

    try:
        sos = cached_design("sos", {"order": int(order), "edges": edges, "rp": rp, "rs": rs,
                                    "band": band, "ftype": ftype, "fs": float(sample_rate)},
                            design)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise DspError(
            f"scipy could not design a {family} {band} of order {order} at {edges} Hz: {exc}"
        ) from None
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    _check_sos(sos, what=f"{family} {band} of order {order} at {edges} Hz")
    return sos


def _check_sos(sos: np.ndarray, *, what: str) -> None:
    """Raise DspError unless ``sos`` is finite, has ``a0 == 1`` and all poles inside |z| < 1."""
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise DspError(f"{what}: sos has shape {sos.shape}; expected (n_sections, 6)")
    if not np.all(np.isfinite(sos)):
        raise DspError(f"{what}: the design has non-finite coefficients")
    if not np.allclose(sos[:, 3], 1.0):
        raise DspError(f"{what}: a0 must be 1 in every section, got {sos[:, 3].tolist()}")
    for index, section in enumerate(sos):
        poles = np.roots(section[3:])
        radius = float(np.max(np.abs(poles))) if poles.size else 0.0
        if not radius < 1.0 - 1e-12:
            raise DspError(
                f"{what}: section {index} is unstable (pole radius {radius:.12f}, expected < 1); "
                "lower the order or widen the band"
            )


class StreamingSosFilter:
    """A cascade of biquads whose state carries across frames.

    Built once with the frame geometry; ``process`` then filters one frame into a buffer the
    filter owns and returns it (valid until the next call), allocating nothing. The result is
    that of ``scipy.signal.sosfilt`` run over the concatenation of all frames since the last
    ``reset()``: computed in four lanes by ``lane_iir.LaneCascade`` (to rounding) when the
    cascade has at most four sections, the frame splits into lanes and the lanes are
    measured faster on this machine (``lane_iir.faster_here``), else by
    ``kernels.sos_filter``.

    >>> import numpy as np
    >>> sos = design_sos(family="butterworth", band="bandpass", order=2, sample_rate=48000,
    ...                  low_hz=1800.0, high_hz=2200.0)
    >>> flt = StreamingSosFilter(sos, channels=2, frame_size=1024)
    >>> flt.process(np.zeros((2, 1024))).shape
    (2, 1024)
    """

    def __init__(self, sos: np.ndarray, *, channels: int, frame_size: int,
                 form: Literal["auto", "lanes", "plain"] = "auto") -> None:
        """``form``: ``auto`` takes the lanes where they apply and are measured faster here;
        ``lanes`` where they apply; ``plain`` never (tests and benchmarks pin one)."""
        if channels < 1:
            raise DspError(f"channels={channels!r} must be at least 1")
        if frame_size < 1:
            raise DspError(f"frame_size={frame_size!r} must be at least 1")
        sos = np.array(sos, dtype=np.float64, order="C", copy=True)
        if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
            raise DspError(f"sos has shape {sos.shape}; expected (n_sections, 6)")
        if np.all(np.isfinite(sos[:, 3])) and np.all(sos[:, 3] != 0):
            sos /= sos[:, 3:4]  # normalise to a0 == 1, the form the kernel assumes
        _check_sos(sos, what="sos")
        self._sos = sos
        self._channels = int(channels)
        self._frame_size = int(frame_size)
        # a cascade of up to four sections runs in lanes (lane_iir.py: equal to rounding,
        # 1.9x faster on an AVX machine) where that is measured to be faster; its state is
        # padded to four sections
        if form == "auto":
            use_lanes = faster_here(sos, channels=self._channels, frame_size=self._frame_size)
        else:
            use_lanes = form == "lanes" and lanes_apply(sos.shape[0], self._frame_size)
        self._lanes = (LaneCascade(sos, channels=self._channels, frame_size=self._frame_size)
                       if use_lanes else None)
        sections = SECTIONS if self._lanes is not None else sos.shape[0]
        self._zi = np.zeros((self._channels, sections, 2), dtype=np.float64)
        self._out = np.zeros((self._channels, self._frame_size), dtype=np.float64)

    @property
    def sos(self) -> np.ndarray:
        """The second-order sections (a copy: the filter's own array is not to be modified)."""
        return self._sos.copy()

    @property
    def form(self) -> Literal["lanes", "plain"]:
        """How frames are filtered: ``lanes`` (lane_iir.py) or ``plain`` (the recurrence)."""
        return "lanes" if self._lanes is not None else "plain"

    @property
    def n_sections(self) -> int:
        """Number of biquad sections."""
        return int(self._sos.shape[0])

    @property
    def order(self) -> int:
        """Order of the cascade: its number of poles (the denominator degree of each section)."""
        a1 = self._sos[:, 4] != 0
        a2 = self._sos[:, 5] != 0
        return int(np.sum(np.where(a2, 2, np.where(a1, 1, 0))))

    @property
    def channels(self) -> int:
        """Rows per frame."""
        return self._channels

    @property
    def frame_size(self) -> int:
        """Samples per row per frame."""
        return self._frame_size

    @property
    def state(self) -> np.ndarray:
        """A copy of the carried state, shape ``(channels, n_sections, 2)``."""
        return self._zi[:, : self._sos.shape[0]].copy()

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter one frame ``x`` of shape ``(channels, frame_size)``; return the output buffer."""
        if x.shape != self._out.shape:
            raise DspError(
                f"frame has shape {x.shape}; this filter expects "
                f"({self._channels}, {self._frame_size})"
            )
        if x.dtype != np.float64 or not x.flags.c_contiguous:
            raise DspError(f"frame must be C-contiguous float64, got {x.dtype}")
        if self._lanes is not None:
            self._lanes.process(self._zi, x, self._out)
        else:
            kernels.sos_filter(self._sos, self._zi, x, self._out)
        return self._out

    def reset(self) -> None:
        """Zero the carried state (as after construction)."""
        self._zi.fill(0.0)
