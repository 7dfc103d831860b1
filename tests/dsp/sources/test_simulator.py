"""SimulatedSource: determinism, the differential model, noise levels, truth and pacing (the
pacer itself: test_base.py)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from firmware.dsp.sources.settings import SimulatorSettings
from firmware.dsp.sources.simulator import SimulatedSource, resonator_gain
from firmware.errors import SourceError

FS = 48000


def amp_for_ppm(ppm: float) -> float:
    """Linear test calibration: 2500 ppm -> 0.05 full scale in A - B."""
    return ppm * 2e-5


def make(fs: int = FS, n: int = 4096, realtime: bool = False, **changes: object) -> SimulatedSource:
    settings = SimulatorSettings.model_validate(changes)
    return SimulatedSource(
        settings, sample_rate=fs, frame_size=n, realtime=realtime, amplitude_for_ppm=amp_for_ppm
    )


def capture(src: SimulatedSource, frames: int) -> tuple[np.ndarray, list[dict]]:
    blocks, meta = [], []
    with src:
        for _ in range(frames):
            frame = src.read()
            assert frame is not None
            blocks.append(frame.samples.copy())
            meta.append(
                {
                    "seq": frame.sequence,
                    "truth": frame.truth_ppm,
                    "temp": frame.temperature_c,
                    **frame.extra,
                }
            )
    return np.concatenate(blocks, axis=1), meta


def fit_tone(x: np.ndarray, f: float, fs: int) -> tuple[float, np.ndarray]:
    """Least-squares amplitude of a tone at ``f`` and the residual."""
    t = np.arange(x.size) / fs
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t), np.ones_like(t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return float(np.hypot(coef[0], coef[1])), x - basis @ coef


QUIET = {"noise": {"snr_db": 250.0, "hum_level": 0.0}}
FIXED = {"modulation_hz": 2000.0, "temperature": {"swing_c": 0.0}}


def test_same_seed_same_samples_other_seed_differs():
    a, _ = capture(make(seed=7), 5)
    b, _ = capture(make(seed=7), 5)
    c, _ = capture(make(seed=8), 5)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_realtime_does_not_change_samples():
    fast, _ = capture(make(fs=8000, n=400, seed=3), 4)
    t0 = time.monotonic()
    paced, meta = capture(make(fs=8000, n=400, seed=3, realtime=True), 4)
    elapsed = time.monotonic() - t0
    assert np.array_equal(fast, paced)
    assert [m["seq"] for m in meta] == [0, 1, 2, 3]
    # pacing is the behaviour: four 50 ms frames on a grid take at least three periods; the
    # upper bound (10x) only leaves a loaded machine room, a missing pacer fails the lower
    assert 0.18 < elapsed < 2.0


def test_frame_fields_and_reuse():
    src = make()
    with src:
        first = src.read()
        buf = first.samples
        second = src.read()
        assert second is first and second.samples is buf  # one Frame, refilled
        assert second.sequence == 1
        assert second.timestamp >= 0 and second.wall_time > 1e9
        assert second.samples.shape == (2, 4096) and second.samples.dtype == np.float64
        assert second.truth_ppm == 1000.0
        assert "resonance_hz" in second.extra
        status = src.get_status()
    json.dumps(status)
    assert status["frames_read"] == 2 and status["kind"] == "simulator"
    src.close()  # idempotent
    with pytest.raises(SourceError, match="not open"):
        src.read()


def test_antiphase_tone_and_common_mode_cancel():
    """The tone is +A/2 on mic A and -A/2 on mic B; ambient noise cancels in A - B."""
    src = make(
        seed=1,
        concentration={"profile": "constant", "value_ppm": 2500},
        noise={"common_mode_db": 20.0, "hum_hz": 0.0, "pink_fraction": 0.0},
        **FIXED,
    )
    x, _ = capture(src, 60)
    sigma_u = src.sigma_uncorrelated
    amp_a, res_a = fit_tone(x[0], 2000.0, FS)
    amp_b, _ = fit_tone(x[1], 2000.0, FS)
    amp_d, res_d = fit_tone(x[0] - x[1], 2000.0, FS)
    assert amp_a == pytest.approx(0.025, rel=0.01)
    assert amp_b == pytest.approx(0.025, rel=0.01)
    assert amp_d == pytest.approx(0.05, rel=0.01)
    # A + B: the tone cancels, common mode doubles
    amp_s, _ = fit_tone(x[0] + x[1], 2000.0, FS)
    assert amp_s < 0.001
    # per mic: uncorrelated + 20 dB common mode; difference: only sqrt(2) * uncorrelated
    assert np.std(res_a) == pytest.approx(sigma_u * math.sqrt(1 + 100), rel=0.05)
    assert np.std(res_d) == pytest.approx(sigma_u * math.sqrt(2), rel=0.05)


@pytest.mark.parametrize("pink_fraction", [0.0, 0.5, 1.0])
def test_snr_at_reference_matches_setting(pink_fraction):
    """(A_ref / sqrt 2) / rms(noise_A - noise_B) = 10^(snr_db / 20) at reference_ppm."""
    src = make(
        seed=2,
        concentration={"profile": "constant", "value_ppm": 2500},
        noise={
            "snr_db": 25.0,
            "reference_ppm": 2500,
            "hum_hz": 0.0,
            "pink_fraction": pink_fraction,
        },
        **FIXED,
    )
    x, _ = capture(src, 120)  # ~10 s
    amp, residual = fit_tone(x[0] - x[1], 2000.0, FS)
    snr_db = 20 * math.log10((amp / math.sqrt(2)) / np.std(residual))
    assert snr_db == pytest.approx(25.0, abs=0.7)


def test_hum_differs_between_mics_by_imbalance():
    src = make(seed=4, noise={"snr_db": 250.0, "hum_level": 0.01, "hum_imbalance": 0.1}, **FIXED)
    x, _ = capture(src, 12)
    hum_a, _ = fit_tone(x[0], 50.0, FS)
    hum_d, _ = fit_tone(x[0] - x[1], 50.0, FS)
    assert hum_a == pytest.approx(0.01, rel=0.02)
    assert hum_d == pytest.approx(0.001, rel=0.05)


def test_phase_continuous_across_frames():
    """Frames of any size concatenate to the same clean tone as the analytic expression."""
    big, _ = capture(make(n=4096, **QUIET, **FIXED), 6)
    small, _ = capture(make(n=1000, **QUIET, **FIXED), 25)
    k = big.shape[1]
    assert np.max(np.abs(big - small[:, :k])) < 1e-9
    n = np.arange(k)
    # 1000 ppm -> A = 0.02, A/2 per mic; the phase advances before each sample
    expected = 0.01 * np.sin(2 * np.pi * 2000.0 * (n + 1) / FS)
    assert np.max(np.abs(big[0] - expected)) < 1e-9
    assert np.max(np.abs(big[1] + expected)) < 1e-9


def test_tracking_tone_has_no_jump_at_frame_boundaries():
    src = make(n=1024, **QUIET, temperature={"swing_c": 20.0, "period_s": 2.0})
    x, _ = capture(src, 40)
    d = x[0] - x[1]
    second_diff = np.abs(np.diff(d, 2))
    boundaries = np.arange(1024, d.size - 1, 1024) - 1
    assert second_diff[boundaries].max() <= second_diff.max() * 1.0001
    assert second_diff.max() < 0.02 * (2 * np.pi * 2100 / FS) ** 2 * 1.01


def test_truth_follows_steps():
    src = make(
        n=4800, concentration={"profile": "steps", "levels_ppm": [0, 1000, 2000], "step_s": 1.0}
    )
    _, meta = capture(src, 35)
    truth = [m["truth"] for m in meta]
    assert truth[:10] == pytest.approx([0.0] * 10)
    assert truth[10:20] == pytest.approx([1000.0] * 10)
    assert truth[20:30] == pytest.approx([2000.0] * 10)
    assert truth[30:35] == pytest.approx([0.0] * 5)  # repeats
    assert all(type(t) is float for t in truth)


def test_truth_follows_ramp_and_amplitude_tracks_it():
    src = make(
        n=4800,
        concentration={"profile": "ramp", "start_ppm": 0, "end_ppm": 1000, "duration_s": 2.0},
        **QUIET,
    )
    x, meta = capture(src, 25)
    truth = np.array([m["truth"] for m in meta])
    expected = np.minimum(500.0 * (np.arange(25) + 0.5) * 0.1, 1000.0)
    expected[19] = 975.0
    assert np.allclose(truth[:20], expected[:20])
    assert np.allclose(truth[20:], 1000.0)
    amp, _ = fit_tone(x[0, -4800:] - x[1, -4800:], meta[-1]["modulation_hz"], FS)
    assert amp == pytest.approx(amp_for_ppm(1000.0), rel=0.01)


def test_truth_follows_csv(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_text("time_s,concentration_ppm\n0,100\n1,100\n1,3000\n5,3000\n")
    _, meta = capture(make(n=4800, concentration={"profile": "csv", "path": str(path)}), 15)
    truth = [m["truth"] for m in meta]
    assert truth[:10] == pytest.approx([100.0] * 10)
    assert truth[10:] == pytest.approx([3000.0] * 5)


def test_temperature_drift_moves_the_resonance():
    tracking = make(n=4800, **QUIET, temperature={"swing_c": 10.0, "period_s": 40.0})
    x, meta = capture(tracking, 101)
    at_peak = meta[99]  # t = 9.95 s: a quarter period, T ~ mean + swing
    expected = 2000.0 * math.sqrt((at_peak["temp"] + 273.15) / 298.15)
    assert at_peak["temp"] == pytest.approx(35.0, abs=0.01)
    assert at_peak["resonance_hz"] == pytest.approx(expected)
    assert meta[0]["resonance_hz"] == pytest.approx(2000.0, abs=0.5)
    # the tone really is at the drifted resonance
    block = x[0, 99 * 4800 : 100 * 4800] - x[1, 99 * 4800 : 100 * 4800]
    spectrum = np.abs(np.fft.rfft(block * np.hanning(block.size), 16 * block.size))
    peak_hz = np.argmax(spectrum) * FS / (16 * block.size)
    assert peak_hz == pytest.approx(expected, abs=2.0)
    # with a fixed modulation the drift detunes the cell and the amplitude drops
    fixed = make(
        n=4800, **QUIET, modulation_hz=2000.0, temperature={"swing_c": 10.0, "period_s": 40.0}
    )
    _, meta_f = capture(fixed, 101)
    gain = resonator_gain(2000.0, meta_f[99]["resonance_hz"], 50.0)
    assert gain < 0.6
    assert meta_f[99]["amplitude"] == pytest.approx(amp_for_ppm(1000.0) * gain, rel=0.02)


def test_quantize_16_bits_steps_and_clipping():
    x, _ = capture(make(quantize_bits=16), 3)
    scaled = x * 32768
    assert np.array_equal(scaled, np.round(scaled))
    clipped, _ = capture(
        make(quantize_bits=16, concentration={"profile": "constant", "value_ppm": 150000}), 2
    )
    assert clipped.max() == 32767 / 32768 and clipped.min() == -1.0
    unquantized, _ = capture(make(), 1)
    assert not np.array_equal(unquantized * 32768, np.round(unquantized * 32768))


def test_bad_amplitude_callback_is_a_source_error():
    settings = SimulatorSettings()
    with pytest.raises(SourceError, match=r"amplitude_for_ppm\(2500.0\) returned nan"):
        SimulatedSource(
            settings,
            sample_rate=FS,
            frame_size=1024,
            realtime=False,
            amplitude_for_ppm=lambda ppm: math.nan,
        )


def test_fast_enough_for_minutes_of_audio():
    src = make(n=4096)
    with src:
        src.read()  # compile / load the cached kernel
        t0 = time.perf_counter()
        for _ in range(int(60 * FS / 4096)):
            src.read()
        elapsed = time.perf_counter() - t0
    # The simulator must outpace real time with room to spare for the DSP graph: a minute of
    # stereo audio in under 15 s. (It takes about 1.2 s on a loaded 2-core machine; its
    # speed is measured by `pafw bench`, this bound only catches a per-sample slow path.)
    assert elapsed < 15.0


def test_set_gas_overrides_the_profile_from_the_next_frame_until_cleared():
    src = make(n=4800, concentration={"profile": "steps", "levels_ppm": [0, 1000],
                                      "step_s": 1.0}, **QUIET, **FIXED)
    truths = []
    with src:
        for i in range(30):
            if i == 5:
                src.set_gas(700.0)
            if i == 15:
                src.set_gas(None)
            frame = src.read()
            assert frame is not None
            truths.append(frame.truth_ppm)
            if i == 14:
                amp, _ = fit_tone(frame.samples[0] - frame.samples[1], 2000.0, FS)
                assert amp == pytest.approx(amp_for_ppm(700.0), rel=0.01)
                assert src.get_status()["gas_ppm"] == 700.0
    assert truths[:5] == [0.0] * 5
    assert truths[5:15] == [700.0] * 10
    assert truths[15:20] == [1000.0] * 5 and truths[20:30] == [0.0] * 10  # the profile's time
    assert src.gas_ppm is None


@pytest.mark.parametrize(("ppm", "message"), [(-1.0, "expected a number >= 0"),
                                              (math.inf, "expected a number >= 0")])
def test_set_gas_refuses_impossible_gases(ppm, message):
    src = make()
    with pytest.raises(SourceError, match=message):
        src.set_gas(ppm)
    assert src.gas_ppm is None


def test_set_gas_refuses_a_gas_the_cell_cannot_produce():
    def inverted(ppm: float) -> float:
        from firmware.errors import DspError

        if ppm > 5000:
            raise DspError(f"ppm={ppm:g} is not reached by the calibration")
        return ppm * 2e-5

    src = SimulatedSource(SimulatorSettings(), sample_rate=FS, frame_size=1024, realtime=False,
                          amplitude_for_ppm=inverted)
    with pytest.raises(SourceError, match="simulator gas 9000 ppm: ppm=9000 is not reached"):
        src.set_gas(9000.0)
