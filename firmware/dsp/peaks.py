"""Peak finder: the resonance's frequency and amplitude from a windowed FFT of recent samples.

Per call: slide the newest samples into a history of ``fft_size`` samples, compute the windowed
spectrum's bins, find the largest bin in the search range, then refine between bins.

* **Spectrum.** Only the bins of the search and noise ranges are used. When they are a few
  hundred or fewer (the default 600 Hz band at 48 kHz / 4096: 57 bins of 2049) the band path
  computes exactly those rectangular bins, by the 16-fold split of ``folded_dft`` (a Goertzel
  bank over the whole record, ``band_kernels``, when ``fft_size`` is not a multiple of 128),
  and applies the window as a short convolution in frequency; otherwise the windowed record
  goes through numpy's real FFT. ``spectrum="auto"`` picks by a measured cost model; both
  paths give the same bins to ~1e-12.

* **Frequency.** The three-point magnitude ratio ``r = (|X[k+1]| - |X[k-1]|) /
  (|X[k-1]| + 2|X[k]| + |X[k+1]|)`` is a fixed, monotonic function of the tone's offset
  ``delta`` from bin ``k``, determined by the window alone. For the Hann window it is exactly
  ``delta / 2``; for the others it is tabulated once, at construction, from the window's exact
  DTFT, and inverted per frame by linear interpolation (table step 0.0025 bin, so the table
  adds < 1e-6 bin of error). The rectangular window is the exception: there the magnitude ratio
  is flat near ``delta = 0`` and Jacobsen's complex-bin estimator with Candan's correction is
  used. Noise-free, the frequency error is < 1e-6 bin for every window; the amplitude error is
  < 2e-6 except for the rectangular window, whose slowly decaying side lobes let the tone's
  negative-frequency image leak in (about 0.15 % at a tone 170 bins from DC).
* **Amplitude.** ``amplitude_estimator="matched"`` (default): the least-squares amplitude of a
  sinusoid at the refined frequency over the whole unwindowed history (one O(N) DTFT,
  ``band_kernels.matched_amplitude``), the maximum-likelihood estimate for a tone in white
  noise: its variance is at the Cramer-Rao bound ``2 sigma^2 / N`` where a Hann-windowed bin
  has 1.5 times it (``pafw bench estimators``). It sees the whole band without a window, so a
  strong tone outside the search range leaks into it through the rectangular side lobes;
  ``"window"`` then gives the window's estimate: a tone of peak amplitude ``a`` gives
  ``|X[k]| = a / 2 * |W(delta)|``, where ``W`` is the window's DTFT; ``|W(delta)|`` is the
  coherent gain (``sum(w)``) times the scalloping factor at the interpolated offset. The
  detection decision and ``snr_db`` always use the window's estimate.
* **Noise floor.** The median bin magnitude over the search range (widened symmetrically to at
  least ``MIN_NOISE_BINS`` bins when the range is narrow), leaving out the peak's main lobe plus
  one bin each side. For complex Gaussian noise bin magnitudes are Rayleigh-distributed and
  ``median = rms * sqrt(ln 2)``, so ``median / sqrt(ln 2)`` is the noise's RMS bin magnitude.
  ``noise_floor`` reports it in input amplitude units, as the peak amplitude of a sinusoid whose
  bin magnitude equals that RMS; ``snr_db = 20 log10(amplitude / noise_floor)`` is then the
  peak's power (window estimate) over the mean noise power in one bin. The median ignores the
  few bins a tone's side lobes lift, but a rectangular window's slowly decaying side lobes do
  lift it.

False alarms: on white noise, 300 seeds over an 85-bin range never reached 12 dB with the Hann
or Blackman-Harris window (max 10.5 and 11.3 dB); flat-top and rectangular windows (whose
interpolation lifts noise peaks more) occasionally did, so use a higher threshold with them.

A detection needs a local maximum inside the range, ``snr_db >= detection_threshold_db`` and a
full history (``fft_size`` samples since construction or ``reset()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from firmware.dsp import band_kernels, folded_dft, kernels, peak_kernels
from firmware.dsp.design_cache import cached_design
from firmware.errors import DspError

ScipyWindow = Literal["hann", "blackmanharris", "flattop", "boxcar"]
SpectrumMethod = Literal["auto", "fft", "band"]
AmplitudeEstimator = Literal["matched", "window"]
SPECTRUM_METHODS: tuple[SpectrumMethod, ...] = ("auto", "fft", "band")
AMPLITUDE_ESTIMATORS: tuple[AmplitudeEstimator, ...] = ("matched", "window")
#: window name -> (scipy window name, main-lobe half-width in bins)
WINDOWS: dict[str, tuple[ScipyWindow, int]] = {
    "hann": ("hann", 2),
    "blackmanharris": ("blackmanharris", 4),
    "flattop": ("flattop", 5),
    "rectangular": ("boxcar", 1),
}
MIN_NOISE_BINS = 32
_TABLE_HALF_SPAN = 0.75  # offsets tabulated in [-0.75, 0.75] bin (noise can push past 0.5)
_TABLE_POINTS = 601
_MAX_OFFSET = 0.55  # estimates are clamped here: beyond it, noise speaks, not the tone
_SQRT_LN2 = math.sqrt(math.log(2.0))


@dataclass(slots=True)
class PeakResult:
    """One frame's answer. Frequency and amplitude fields are NaN when nothing was detected."""

    detected: bool
    frequency_hz: float
    amplitude: float
    amplitude_db: float
    snr_db: float
    noise_floor: float
    coherence: float
    raw_frequency_hz: float
    raw_amplitude: float


class PeakFinder:
    """Find the strongest tone in a frequency range, frame after frame.

    ``smoothing`` is the weight of the new value in an exponential moving average of the
    detected frequency and amplitude (1.0: no smoothing); ``raw_*`` fields are unsmoothed.
    ``coherence`` is the fraction of the last ``coherence_frames`` detections (this one
    included; the denominator is always ``coherence_frames``, so it builds up after a reset)
    whose raw frequency lies within ``coherence_tolerance_hz`` (default: two bins) of this one;
    0 when nothing is detected. ``spectrum`` chooses how the bins are computed (``auto``,
    ``fft`` or ``band``, see the module docstring), ``amplitude_estimator`` how the amplitude
    is (``matched`` or ``window``). ``fold=False`` keeps the band path on the Goertzel bank
    even where the 16-fold split applies (``pafw bench`` times the two side by side).

    >>> import numpy as np
    >>> pf = PeakFinder(sample_rate=48000, frequency_min_hz=1500.0, frequency_max_hz=2500.0)
    >>> t = np.arange(4096) / 48000
    >>> noise = np.random.default_rng(0).normal(0.0, 1e-3, 4096)
    >>> r = pf.process(0.1 * np.sin(2 * np.pi * 2003.0 * t) + noise)
    >>> r.detected, round(r.frequency_hz, 1), round(r.amplitude, 4)
    (True, 2003.0, 0.1)
    """

    def __init__(
        self,
        *,
        sample_rate: float,
        fft_size: int = 4096,
        frequency_min_hz: float,
        frequency_max_hz: float,
        window: str = "hann",
        detection_threshold_db: float = 12.0,
        coherence_frames: int = 5,
        coherence_tolerance_hz: float | None = None,
        smoothing: float = 1.0,
        spectrum: SpectrumMethod = "auto",
        amplitude_estimator: AmplitudeEstimator = "matched",
        fold: bool = True,
    ) -> None:
        if not math.isfinite(sample_rate) or sample_rate <= 0:
            raise DspError(f"sample_rate={sample_rate!r} must be a positive number of Hz")
        if isinstance(fft_size, bool) or not isinstance(fft_size, int) or fft_size < 16:
            raise DspError(f"fft_size={fft_size!r} must be an integer of at least 16")
        nyquist = sample_rate / 2.0
        if not (math.isfinite(frequency_min_hz) and 0.0 <= frequency_min_hz < nyquist):
            raise DspError(f"frequency_min_hz={frequency_min_hz!r} must be in [0, {nyquist:g}) Hz")
        if not (math.isfinite(frequency_max_hz) and frequency_min_hz < frequency_max_hz):
            raise DspError(
                f"frequency_max_hz={frequency_max_hz!r} must be above "
                f"frequency_min_hz={frequency_min_hz!r}"
            )
        if window not in WINDOWS:
            raise DspError(f"window={window!r} is not supported; expected one of {list(WINDOWS)}")
        if not math.isfinite(detection_threshold_db):
            raise DspError(f"detection_threshold_db={detection_threshold_db!r} must be finite")
        if isinstance(coherence_frames, bool) or not isinstance(coherence_frames, int) or (
            coherence_frames < 1
        ):
            raise DspError(f"coherence_frames={coherence_frames!r} must be an integer >= 1")
        if not (math.isfinite(smoothing) and 0.0 < smoothing <= 1.0):
            raise DspError(f"smoothing={smoothing!r} must be in (0, 1] (1.0: no smoothing)")
        if spectrum not in SPECTRUM_METHODS:
            raise DspError(f"spectrum={spectrum!r} is not supported; expected one of "
                           f"{list(SPECTRUM_METHODS)}")
        if amplitude_estimator not in AMPLITUDE_ESTIMATORS:
            raise DspError(f"amplitude_estimator={amplitude_estimator!r} is not supported; "
                           f"expected one of {list(AMPLITUDE_ESTIMATORS)}")
        bin_hz = sample_rate / fft_size
        if coherence_tolerance_hz is None:
            coherence_tolerance_hz = 2.0 * bin_hz
        if not (math.isfinite(coherence_tolerance_hz) and coherence_tolerance_hz > 0):
            raise DspError(
                f"coherence_tolerance_hz={coherence_tolerance_hz!r} must be a positive number"
            )

        self.sample_rate = float(sample_rate)
        self.fft_size = fft_size
        self.bin_hz = bin_hz
        self.window_name = window
        self.detection_threshold_db = float(detection_threshold_db)
        self.coherence_frames = coherence_frames
        self.coherence_tolerance_hz = float(coherence_tolerance_hz)
        self.smoothing = float(smoothing)

        last_bin = fft_size // 2 - 1  # the peak needs a neighbour on both sides
        self._k_lo = max(1, math.ceil(frequency_min_hz / bin_hz))
        self._k_hi = min(last_bin, math.floor(frequency_max_hz / bin_hz))
        if self._k_hi < self._k_lo:
            raise DspError(
                f"frequency range [{frequency_min_hz:g}, {frequency_max_hz:g}] Hz holds no "
                f"usable FFT bin (bin width {bin_hz:g} Hz); widen it or raise fft_size"
            )
        scipy_name, half_width = WINDOWS[window]
        self._exclude = half_width + 1
        wanted = MIN_NOISE_BINS + 2 * self._exclude + 1
        self._noise_lo, self._noise_hi = self._k_lo, self._k_hi
        while self._noise_hi - self._noise_lo + 1 < wanted and (
            self._noise_lo > 1 or self._noise_hi < last_bin
        ):
            self._noise_lo = max(1, self._noise_lo - 1)
            self._noise_hi = min(last_bin, self._noise_hi + 1)

        self._window = cached_design("window", {"name": scipy_name, "n": fft_size},
                                     lambda: _scipy_window(scipy_name, fft_size))
        self._window_sum = float(np.sum(self._window))
        self._ratio_table, self._offset_table = self._build_ratio_table()
        # |W(delta)| on the same offset grid: interpolating it (relative error < 2e-6) costs a
        # table look-up per frame instead of an fft_size-long DTFT sum
        self._response_table = np.array(
            [kernels.window_response(self._window, d) for d in self._offset_table]
        )
        # magnitudes are needed for the noise range and the peak's neighbours only
        self._mag_lo = max(0, min(self._noise_lo, self._k_lo) - 1)
        self._mag_hi = min(fft_size // 2, max(self._noise_hi, self._k_hi) + 1)
        # Without a window, neighbouring bin magnitudes barely change near delta = 0, so the
        # magnitude ratio is noise-sensitive there; Jacobsen's estimator on the complex bins with
        # Candan's bias correction is exact for this window instead.
        self._complex_estimator = window == "rectangular"
        self._candan_factor = math.tan(math.pi / fft_size) / (math.pi / fft_size)

        self._history = np.zeros(fft_size, dtype=np.float64)
        self._windowed = np.zeros(fft_size, dtype=np.float64)
        self._spectrum = np.zeros(fft_size // 2 + 1, dtype=np.complex128)
        self._setup_band_path(spectrum, fold=fold)
        self._matched = amplitude_estimator == "matched"
        self._omega_per_bin = 2.0 * math.pi / fft_size
        self._lanes = np.zeros((4, band_kernels.BLOCK), dtype=np.float64)
        self._magnitude = np.zeros(fft_size // 2 + 1, dtype=np.float64)
        self._scratch = np.zeros(self._noise_hi - self._noise_lo + 1, dtype=np.float64)
        self._tables = np.ascontiguousarray(
            [self._ratio_table, self._offset_table, self._response_table], dtype=np.float64)
        self._layout = np.zeros(peak_kernels.LAYOUT_SIZE, dtype=np.int64)
        self._layout[peak_kernels.LAYOUT_MAG_LO] = self._mag_lo
        self._layout[peak_kernels.LAYOUT_MAG_HI] = self._mag_hi
        self._layout[peak_kernels.LAYOUT_K_LO] = self._k_lo
        self._layout[peak_kernels.LAYOUT_K_HI] = self._k_hi
        self._layout[peak_kernels.LAYOUT_NOISE_LO] = self._noise_lo
        self._layout[peak_kernels.LAYOUT_NOISE_HI] = self._noise_hi
        self._layout[peak_kernels.LAYOUT_EXCLUDE] = self._exclude
        self._layout[peak_kernels.LAYOUT_COMPLEX_ESTIMATOR] = self._complex_estimator
        self._layout[peak_kernels.LAYOUT_MATCHED] = self._matched
        self._params = np.zeros(peak_kernels.PARAMS_SIZE, dtype=np.float64)
        self._params[peak_kernels.PARAM_CANDAN] = self._candan_factor
        # bin k is the largest, so the tone is within half a bin of it unless noise says so
        self._params[peak_kernels.PARAM_MAX_OFFSET] = _MAX_OFFSET
        self._params[peak_kernels.PARAM_OMEGA_PER_BIN] = self._omega_per_bin
        self._params[peak_kernels.PARAM_AMPLITUDE_PER_MEDIAN] = 2.0 / (_SQRT_LN2 * self._window_sum)
        self._params[peak_kernels.PARAM_THRESHOLD_DB] = self.detection_threshold_db
        #: the magnitudes the peak search computed, as a view for a SpectrumTap to copy
        self.magnitude_view = self._magnitude[self._mag_lo:self._mag_hi + 1]
        #: magnitude -> sine amplitude in input units (on a bin centre)
        self.amplitude_scale = 2.0 / self._window_sum
        # a plain list: iterating it per frame is cheaper than iterating a numpy array
        self._recent: list[float] = [math.nan] * coherence_frames
        self.reset()

    def _setup_band_path(self, spectrum: SpectrumMethod, *, fold: bool) -> None:
        """Decide between the full FFT and the band's own bins; allocate the band path.

        The band path computes the rectangular bins ``mag_lo - half .. mag_hi + half`` and
        windows them by convolving with the window's DFT, which has ``2 * half + 1`` taps for
        every cosine-sum window (all of ``WINDOWS``). The bins come from the 16-fold split
        (``folded_dft``) when ``fft_size`` is a multiple of 128, else from a Goertzel bank over
        the whole record. ``auto`` takes the band path when the cost model
        (``folded_dft.folded_cheaper``, ``band_kernels.band_dft_cheaper``) says it is cheaper
        than the FFT.
        """
        n = self.fft_size
        w_dft = np.fft.fft(self._window).real / n  # symmetric periodic window: real DFT
        significant = np.abs(w_dft) > 1e-12 * abs(w_dft[0])
        half = int(np.max(np.nonzero(significant[: n // 2])[0]))
        sparse = not np.any(significant[half + 1 : n - half])
        needed = self._mag_hi - self._mag_lo + 1 + 2 * half
        # a multiple of eight: the bank's vector loop then has no scalar remainder (55 bins
        # took 1.5x the time of 56); the extra bins above the range are computed and unused
        bins = -(-needed // 8) * 8
        if spectrum == "band" and not sparse:  # pragma: no cover - every WINDOWS entry is sparse
            raise DspError(f"window={self.window_name!r} is not a cosine sum: no band path")
        folds = fold and folded_dft.foldable(n)
        cheaper = (folded_dft.folded_cheaper(needed, n) if folds
                   else band_kernels.band_dft_cheaper(bins, n))
        self._band = sparse and (spectrum == "band" or (spectrum == "auto" and cheaper))
        self._half = half
        self._first_bin = self._mag_lo - half
        self._kernel = np.ascontiguousarray(
            [w_dft[j % n] for j in range(-half, half + 1)], dtype=np.float64)
        self._folded = (folded_dft.FoldedBand.plan(self._first_bin, needed, n)
                        if self._band and folds else None)
        ks = np.arange(self._first_bin, self._first_bin + bins)
        omega = 2.0 * math.pi * ks / n
        self._bank = np.zeros((3, bins), dtype=np.float64)  # 2 cos(w), two state rows
        self._bank[0] = 2.0 * np.cos(omega)
        self._cbank = np.zeros((2, bins), dtype=np.complex128)  # exp(1j w), the bins
        self._cbank[0] = np.exp(1j * omega)

    @property
    def spectrum_method(self) -> Literal["fft", "band"]:
        """How the bins are computed: ``fft`` (windowed real FFT) or ``band`` (the searched
        and noise bins only)."""
        return "band" if self._band else "fft"

    @property
    def band_form(self) -> Literal["folded", "bank"] | None:
        """The band path's form: ``folded`` (16-fold split, ``folded_dft``), ``bank``
        (Goertzel bank over the record, for sizes not a multiple of 128); None on the FFT."""
        if not self._band:
            return None
        return "folded" if self._folded is not None else "bank"

    def _build_ratio_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Tabulate the three-point ratio against the offset; check it is strictly increasing."""
        offsets = np.linspace(-_TABLE_HALF_SPAN, _TABLE_HALF_SPAN, _TABLE_POINTS)
        ratios = np.empty_like(offsets)
        for i, d in enumerate(offsets):
            below = kernels.window_response(self._window, -1.0 - d)
            centre = kernels.window_response(self._window, -d)
            above = kernels.window_response(self._window, 1.0 - d)
            ratios[i] = (above - below) / (below + 2.0 * centre + above)
        if not np.all(np.diff(ratios) > 0):  # pragma: no cover - holds for every WINDOWS entry
            raise DspError(f"window={self.window_name!r}: the interpolation ratio is not monotonic")
        return ratios, offsets

    @property
    def search_bins(self) -> tuple[int, int]:
        """First and last FFT bin searched for the peak."""
        return self._k_lo, self._k_hi

    @property
    def magnitude_first_bin(self) -> int:
        """FFT bin of ``magnitude_view[0]``."""
        return self._mag_lo

    @property
    def noise_bins(self) -> tuple[int, int]:
        """First and last FFT bin of the noise-floor estimate (before the peak is left out)."""
        return self._noise_lo, self._noise_hi

    def reset(self) -> None:
        """Forget history, smoothing state and coherence (as after construction)."""
        self._history.fill(0.0)
        self._recent[:] = [math.nan] * self.coherence_frames
        self._recent_index = 0
        self._samples_seen = 0
        self._smoothed_frequency = math.nan
        self._smoothed_amplitude = math.nan

    def process(self, x: np.ndarray) -> PeakResult:
        """Add one frame (1-D, or a single row ``(1, n)``) and analyse the newest samples."""
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1:
            raise DspError(f"peak finder takes one channel; got an array of shape {x.shape}")
        self._samples_seen = min(self._samples_seen + x.shape[0], self.fft_size)
        folded = self._folded
        if folded is not None:
            folded_dft.folded_band_spectrum(
                self._history, x, folded.work, folded.bank, folded.cbank, folded.lanes,
                folded.sign, folded.rect, self._kernel, self._mag_lo, self._mag_hi,
                self._spectrum)
        elif self._band:
            band_kernels.band_spectrum(self._history, x, self._bank, self._cbank, self._kernel,
                                       self._mag_lo, self._mag_hi, self._spectrum)
        else:
            kernels.push_and_window(self._history, x, self._window, self._windowed)
            np.fft.rfft(self._windowed, out=self._spectrum)
        # the window's estimate decides detection (its side lobes keep a strong tone outside
        # the range from lifting a noise bump inside it); the reported amplitude is the
        # matched one when asked for
        k, offset, window_amplitude, matched_amplitude, noise_floor, snr_db, detected = (
            peak_kernels.estimate_peak(
                self._spectrum, self._magnitude, self._scratch, self._tables, self._history,
                self._lanes, self._layout, self._params, self._samples_seen >= self.fft_size))
        if not detected:
            nan = math.nan
            return PeakResult(False, nan, nan, nan, snr_db, noise_floor, 0.0, nan, nan)
        raw_frequency = (k + offset) * self.bin_hz
        raw_amplitude = matched_amplitude if self._matched else window_amplitude

        if math.isnan(self._smoothed_frequency):
            self._smoothed_frequency = raw_frequency
            self._smoothed_amplitude = raw_amplitude
        else:
            w = self.smoothing
            self._smoothed_frequency += w * (raw_frequency - self._smoothed_frequency)
            self._smoothed_amplitude += w * (raw_amplitude - self._smoothed_amplitude)

        recent = self._recent
        recent[self._recent_index] = raw_frequency
        self._recent_index = (self._recent_index + 1) % self.coherence_frames
        tolerance = self.coherence_tolerance_hz
        close = 0
        for f in recent:
            if abs(f - raw_frequency) <= tolerance:  # NaN compares False
                close += 1
        coherence = close / self.coherence_frames

        amplitude = self._smoothed_amplitude
        return PeakResult(
            detected=True,
            frequency_hz=self._smoothed_frequency,
            amplitude=amplitude,
            amplitude_db=20.0 * math.log10(amplitude),
            snr_db=snr_db,
            noise_floor=noise_floor,
            coherence=coherence,
            raw_frequency_hz=raw_frequency,
            raw_amplitude=raw_amplitude,
        )


def _scipy_window(name: ScipyWindow, size: int) -> np.ndarray:
    """The periodic window (on a design-cache miss only: scipy is big and slow to import)."""
    import scipy.signal

    window: np.ndarray = scipy.signal.get_window(name, size, fftbins=True)
    return window
