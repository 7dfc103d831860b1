"""Filter design validation and the streaming filter against scipy.signal.sosfilt."""

import numpy as np
import pytest
import scipy.signal

from firmware.dsp.filters import BANDS, FAMILIES, StreamingSosFilter, design_sos
from firmware.errors import DspError

FS = 48000


def _edges(band):
    if band in ("bandpass", "bandstop"):
        return {"low_hz": 1800.0, "high_hz": 2200.0}
    return {"cutoff_hz": 2000.0}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("order", [1, 4, 7, 12])
def test_streaming_filter_equals_sosfilt_over_frames(family, band, order):
    sos = design_sos(family=family, band=band, order=order, sample_rate=FS, **_edges(band))
    frame_size = 480
    # three channels: a pair (two-channel kernels) and a lone one (four-section kernel)
    flt = StreamingSosFilter(sos, channels=3, frame_size=frame_size)
    rng = np.random.default_rng(order)
    signal = rng.standard_normal((3, frame_size * 8))
    zi = np.zeros((3, sos.shape[0], 2))
    worst = 0.0
    for start in range(0, signal.shape[1], frame_size):
        frame = np.ascontiguousarray(signal[:, start : start + frame_size])
        out = flt.process(frame)
        for c in range(3):
            expected, zi[c] = scipy.signal.sosfilt(sos, frame[c], zi=zi[c])
            worst = max(worst, float(np.max(np.abs(out[c] - expected))))
    assert worst < 1e-9


def test_design_matches_scipy_and_is_normalised():
    sos = design_sos(family="elliptic", band="bandpass", order=3, sample_rate=FS,
                     low_hz=1900.0, high_hz=2100.0, ripple_db=0.5, attenuation_db=60.0)
    expected = scipy.signal.ellip(3, 0.5, 60.0, [1900.0, 2100.0], "bandpass", fs=FS,
                                  output="sos")
    np.testing.assert_allclose(sos, expected)
    assert sos.flags.c_contiguous and sos.dtype == np.float64
    np.testing.assert_array_equal(sos[:, 3], 1.0)


def test_bandpass_passes_centre_and_rejects_far_tone():
    sos = design_sos(family="butterworth", band="bandpass", order=4, sample_rate=FS,
                     low_hz=1800.0, high_hz=2200.0)
    _, h = scipy.signal.sosfreqz(sos, worN=[2000.0, 500.0, 8000.0], fs=FS)
    assert abs(h[0]) == pytest.approx(1.0, abs=0.01)
    assert abs(h[1]) < 1e-4 and abs(h[2]) < 1e-4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "gauss"}, r"family='gauss'.*expected one of"),
        ({"band": "notch"}, r"band='notch'.*expected one of"),
        ({"order": 0}, r"order=0 is out of range; expected 1 to 12"),
        ({"order": 13}, r"order=13 is out of range"),
        ({"order": 2.5}, r"order=2.5 must be an integer"),
        ({"low_hz": None}, r"low_hz is required for a bandpass"),
        ({"high_hz": 24000.0}, r"high_hz=24000.0 Hz is outside \(0, 24000\)"),
        ({"low_hz": 0.0}, r"low_hz=0.0 Hz is outside"),
        ({"low_hz": 2500.0}, r"low_hz=2500 must be below high_hz=2200"),
        ({"cutoff_hz": 100.0}, r"cutoff_hz=100.0 does not apply to a bandpass"),
        ({"sample_rate": 0}, r"sample_rate=0 must be a positive"),
        ({"family": "elliptic", "ripple_db": 0.0}, r"ripple_db=0.0 must be a positive"),
        ({"family": "chebyshev2", "attenuation_db": -3.0}, r"attenuation_db=-3.0 must be"),
    ],
)
def test_bad_design_parameters_raise(kwargs, match):
    params = {"family": "butterworth", "band": "bandpass", "order": 2, "sample_rate": FS,
              "low_hz": 1800.0, "high_hz": 2200.0}
    params.update(kwargs)
    with pytest.raises(DspError, match=match):
        design_sos(**params)


def test_lowpass_needs_cutoff_not_band_edges():
    with pytest.raises(DspError, match=r"cutoff_hz is required for a lowpass"):
        design_sos(family="bessel", band="lowpass", order=2, sample_rate=FS)
    with pytest.raises(DspError, match=r"low_hz/high_hz .* do not apply to a highpass"):
        design_sos(family="bessel", band="highpass", order=2, sample_rate=FS, cutoff_hz=100.0,
                   low_hz=50.0)


def test_unstable_sos_is_rejected():
    unstable = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 1.01]])  # poles at |z| > 1
    with pytest.raises(DspError, match=r"section 0 is unstable"):
        StreamingSosFilter(unstable, channels=1, frame_size=8)
    with pytest.raises(DspError, match=r"non-finite"):
        StreamingSosFilter(np.array([[np.nan, 0, 0, 1, 0, 0]]), channels=1, frame_size=8)


def test_process_returns_own_buffer_and_checks_shape():
    sos = design_sos(family="butterworth", band="lowpass", order=2, sample_rate=FS,
                     cutoff_hz=1000.0)
    flt = StreamingSosFilter(sos, channels=2, frame_size=16)
    first = flt.process(np.ones((2, 16)))
    second = flt.process(np.ones((2, 16)))
    assert first is second
    assert flt.order == 2 and flt.n_sections == 1 and flt.channels == 2
    with pytest.raises(DspError, match=r"frame has shape \(2, 15\); this filter expects \(2, 16\)"):
        flt.process(np.ones((2, 15)))
    with pytest.raises(DspError, match=r"C-contiguous float64"):
        flt.process(np.ones((2, 16), dtype=np.float32))


def test_reset_restores_initial_state():
    sos = design_sos(family="chebyshev1", band="bandpass", order=3, sample_rate=FS,
                     low_hz=1500.0, high_hz=2500.0)
    flt = StreamingSosFilter(sos, channels=1, frame_size=64)
    x = np.random.default_rng(0).standard_normal((1, 64))
    first = flt.process(x).copy()
    flt.process(x)
    assert np.any(flt.state != 0)
    flt.reset()
    np.testing.assert_array_equal(flt.process(x), first)


def test_sos_with_a0_not_one_is_normalised():
    sos = design_sos(family="butterworth", band="lowpass", order=2, sample_rate=FS,
                     cutoff_hz=3000.0)
    flt = StreamingSosFilter(sos * 2.0, channels=1, frame_size=32)
    x = np.random.default_rng(1).standard_normal((1, 32))
    np.testing.assert_allclose(flt.process(x)[0], scipy.signal.sosfilt(sos, x[0]), atol=1e-12)
