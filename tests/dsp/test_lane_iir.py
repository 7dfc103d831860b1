"""The lane form of a biquad cascade (firmware/dsp/lane_iir.py) equals the plain recurrence.

The lane form cuts each frame into four lanes, filters them side by side from a zero state
and adds each lane's response to its true start state. Linear algebra says the result is the
plain cascade's; these tests hold it to rounding for every design family and band, one and
two channels, across frames (the carried state), and against scipy over the whole signal.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from numba.core import config as numba_config

from firmware.dsp import kernels, lane_iir
from firmware.dsp.filters import StreamingSosFilter, design_sos

RATE = 48000

DESIGNS = [
    dict(family="butterworth", band="bandpass", order=4, low_hz=1700.0, high_hz=2300.0),
    dict(family="butterworth", band="bandpass", order=4, low_hz=1950.0, high_hz=2050.0),
    dict(family="butterworth", band="bandpass", order=1, low_hz=1000.0, high_hz=3000.0),
    dict(family="chebyshev1", band="bandpass", order=3, low_hz=1800.0, high_hz=2200.0),
    dict(family="elliptic", band="bandpass", order=2, low_hz=1800.0, high_hz=2200.0),
    dict(family="butterworth", band="lowpass", order=8, cutoff_hz=500.0),
    dict(family="chebyshev2", band="highpass", order=3, cutoff_hz=300.0),
]
#: poles so near the unit circle that the stitch's rounding shows (1e-8 of the output)
ILL_CONDITIONED = [
    dict(family="bessel", band="bandstop", order=2, low_hz=45.0, high_hz=55.0),
    dict(family="chebyshev2", band="highpass", order=5, cutoff_hz=100.0),
]


def sos_of(design: dict) -> np.ndarray:
    return design_sos(sample_rate=RATE, cutoff_hz=design.get("cutoff_hz"),
                      low_hz=design.get("low_hz"), high_hz=design.get("high_hz"),
                      ripple_db=1.0, attenuation_db=40.0, family=design["family"],
                      band=design["band"], order=design["order"])


def frames_of(rng: np.random.Generator, channels: int, frame_size: int, count: int) -> np.ndarray:
    """Noise plus a tone, with one frame 1000x louder (a step in level the state carries)."""
    n = frame_size * count
    t = np.arange(n) / RATE
    x = rng.standard_normal((channels, n)) + np.sin(2 * np.pi * 2000.0 * t)
    x[:, frame_size:2 * frame_size] *= 1000.0
    return x.reshape(channels, count, frame_size).transpose(1, 0, 2).copy()


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: f"{d['family']}-{d['band']}-{d['order']}")
@pytest.mark.parametrize(("channels", "frame_size"), [(1, 4096), (2, 1024), (1, 256)])
def test_lanes_equal_the_plain_cascade_frame_after_frame(design: dict, channels: int,
                                                         frame_size: int) -> None:
    sos = sos_of(design)
    rng = np.random.default_rng(sos.shape[0] * frame_size)
    laned = StreamingSosFilter(sos, channels=channels, frame_size=frame_size, form="lanes")
    assert laned._lanes is not None
    zi = np.zeros((channels, sos.shape[0], 2))
    plain = np.zeros((channels, frame_size))
    for frame in frames_of(rng, channels, frame_size, 6):
        kernels.sos_filter(sos, zi, frame, plain)
        got = laned.process(frame)
        scale = np.max(np.abs(plain))
        np.testing.assert_allclose(got, plain, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(laned.state, zi, rtol=0, atol=1e-12 * max(scale, 1.0))


def test_the_laned_stream_is_scipy_over_the_whole_signal() -> None:
    sos = sos_of(DESIGNS[0])
    rng = np.random.default_rng(3)
    frames = frames_of(rng, 2, 4096, 5)
    laned = StreamingSosFilter(sos, channels=2, frame_size=4096, form="lanes")
    got = np.concatenate([laned.process(f).copy() for f in frames], axis=1)
    whole = np.concatenate(list(frames), axis=1)
    want = scipy.signal.sosfilt(sos, whole, axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.max(np.abs(want)))
    laned.reset()
    again = laned.process(frames[0])
    np.testing.assert_allclose(again, want[:, :4096], rtol=0,
                               atol=1e-12 * np.max(np.abs(want)))


def exact_cascade(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The cascade in extended precision (numpy's longdouble), from a zero state."""
    y = x.astype(np.longdouble)
    for b0, b1, b2, _, a1, a2 in sos.astype(np.longdouble):
        z1 = z2 = np.longdouble(0.0)
        out = np.empty_like(y)
        for i, v in enumerate(y):
            o = b0 * v + z1
            z1 = b1 * v + z2 - a1 * o
            z2 = b2 * v - a2 * o
            out[i] = o
        y = out
    return y


@pytest.mark.parametrize("design", [*ILL_CONDITIONED, dict(
    family="butterworth", band="lowpass", order=8, cutoff_hz=2.0)],
    ids=lambda d: f"{d['family']}-{d['band']}-{d['order']}")
def test_with_poles_near_the_unit_circle_lanes_drift_like_the_plain_recurrence(
        design: dict) -> None:
    """Both forms round; measured against extended precision, the lane form stays within a
    few times the plain recurrence's drift and far below anything a measurement sees."""
    sos = sos_of(design)
    frame_size = 1024
    frames = frames_of(np.random.default_rng(2 * frame_size), 1, frame_size, 4)
    laned = StreamingSosFilter(sos, channels=1, frame_size=frame_size, form="lanes")
    assert laned._lanes is not None
    zi = np.zeros((1, sos.shape[0], 2))
    plain, lanes = [], []
    for frame in frames:
        out = np.zeros((1, frame_size))
        kernels.sos_filter(sos, zi, frame, out)
        plain.append(out[0])
        lanes.append(laned.process(frame)[0].copy())
    exact = exact_cascade(sos, np.concatenate([f[0] for f in frames]))
    peak = float(np.max(np.abs(exact)))
    plain_drift = float(np.max(np.abs(np.concatenate(plain) - exact))) / peak
    lane_drift = float(np.max(np.abs(np.concatenate(lanes) - exact))) / peak
    assert lane_drift <= max(20.0 * plain_drift, 1e-14)
    assert lane_drift < 1e-10


@pytest.mark.parametrize(("sections", "frame_size"), [(5, 4096), (4, 4094), (4, 128)])
def test_what_does_not_fit_in_lanes_runs_the_plain_kernel(sections: int,
                                                          frame_size: int) -> None:
    sos = sos_of(dict(family="butterworth", band="bandpass", order=sections, low_hz=1700.0,
                      high_hz=2300.0))
    assert sos.shape[0] == sections
    flt = StreamingSosFilter(sos, channels=1, frame_size=frame_size, form="lanes")
    assert flt._lanes is None and flt.form == "plain"
    x = np.random.default_rng(1).standard_normal((1, frame_size))
    want = scipy.signal.sosfilt(sos, x, axis=1)
    np.testing.assert_allclose(flt.process(x), want, rtol=0, atol=1e-12 * np.max(np.abs(want)))
    with pytest.raises(ValueError, match="do not run in lanes"):
        lane_iir.LaneCascade(sos, channels=1, frame_size=frame_size)


def test_the_vectoriser_switch_is_only_on_while_the_kernel_compiles() -> None:
    seen: list[int] = []
    before = numba_config.SLP_VECTORIZE
    lane_iir.compile_with_slp(lambda: seen.append(numba_config.SLP_VECTORIZE))
    assert seen == [1]
    assert before == numba_config.SLP_VECTORIZE

    def fails() -> None:
        raise RuntimeError("a compile error")

    with pytest.raises(RuntimeError):
        lane_iir.compile_with_slp(fails)
    assert before == numba_config.SLP_VECTORIZE


def test_the_tables_are_the_cascade_from_each_unit_state() -> None:
    sos = lane_iir.padded_sections(sos_of(DESIGNS[3]))
    response, carry = lane_iir.lane_tables(sos, 512)
    # from a mix of unit states, the plain kernel's output and end state are the tables' sums
    start = np.random.default_rng(5).standard_normal(lane_iir.STATES)
    zi = start.reshape(1, lane_iir.SECTIONS, 2).copy()
    out = np.zeros((1, 512))
    kernels.sos_filter(sos, zi, np.zeros((1, 512)), out)
    np.testing.assert_allclose(out[0], start @ response, rtol=0,
                               atol=1e-10 * np.max(np.abs(out)))
    np.testing.assert_allclose(zi.reshape(-1), carry @ start, rtol=0,
                               atol=1e-10 * np.max(np.abs(zi)))


def test_the_form_is_measured_once_per_shape_and_can_be_pinned(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sos = sos_of(DESIGNS[0])
    monkeypatch.setattr(lane_iir, "_faster", {})
    chosen = lane_iir.faster_here(sos, channels=1, frame_size=2048)
    assert isinstance(chosen, bool)
    assert StreamingSosFilter(sos, channels=1, frame_size=2048).form == (
        "lanes" if chosen else "plain")
    assert StreamingSosFilter(sos, channels=1, frame_size=2048, form="lanes").form == "lanes"
    assert StreamingSosFilter(sos, channels=1, frame_size=2048, form="plain").form == "plain"

    def no_more_timing(*_args: object) -> None:
        raise AssertionError("the choice is measured once per shape")

    monkeypatch.setattr(lane_iir.kernels, "sos_filter", no_more_timing)
    assert lane_iir.faster_here(sos, channels=1, frame_size=2048) is chosen
    assert not lane_iir.faster_here(sos, channels=1, frame_size=2046)  # no lanes: no timing
