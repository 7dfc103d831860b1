"""The self-test's checks (firmware/dsp/selftest_checks.py) on synthetic microphone pairs: a
healthy pair (antiphase tone at the resonance, common and own noise) passes every check; a
dead microphone, a clipping one, a resonance off its configured frequency and a wrong sample
rate each fail their own check and no other; nothing to compare with is a skip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware.dsp.selftest_checks import (
    SelftestLimits,
    band_coherence,
    level_dbfs,
    run_checks,
    strongest_tone,
    welch_spectra,
)

RATE = 48000
LIMITS = SelftestLimits(
    min_noise_dbfs=-90.0, max_noise_dbfs=-6.0, clip_level=0.999, max_clipped_fraction=0.001,
    min_coherence=0.3, resonance_hz=2000.0, band_hz=600.0, max_resonance_deviation_hz=10.0,
    sample_rate=RATE, max_sample_rate_error_percent=1.0)


def pair(*, tone_hz: float = 2000.0, seconds: float = 3.0, seed: int = 4) -> np.ndarray:
    """Two microphones: the tone in antiphase, ambient noise common to both, own noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.02 * np.sin(2 * np.pi * tone_hz * t)
    common = rng.normal(0.0, 0.01, t.shape[0])
    return np.vstack([tone + common + rng.normal(0.0, 0.003, t.shape[0]),
                      -tone + common + rng.normal(0.0, 0.003, t.shape[0])])


def verdicts(samples: np.ndarray, limits: SelftestLimits = LIMITS,
             measured: float | None = RATE * 1.0) -> dict[str, str]:
    checks = run_checks(samples, limits, sample_rate=RATE, measured_rate=measured,
                        rate_basis="test")
    return {c.name: c.status for c in checks}


ALL_PASS = {"mic_a_noise_floor": "pass", "mic_b_noise_floor": "pass", "mic_a_clipping": "pass",
            "mic_b_clipping": "pass", "channel_coherence": "pass",
            "resonance_frequency": "pass", "sample_rate": "pass"}


def test_a_healthy_pair_passes_everything() -> None:
    checks = run_checks(pair(), LIMITS, sample_rate=RATE, measured_rate=48010.0,
                        rate_basis="arrival times")
    assert {c.name: c.status for c in checks} == ALL_PASS
    by_name = {c.name: c for c in checks}
    assert by_name["resonance_frequency"].value == pytest.approx(2000.0, abs=0.5)
    assert "deviation" in by_name["resonance_frequency"].message
    assert by_name["channel_coherence"].to_dict()["low"] == 0.3


def test_a_dead_microphone_fails_its_level_and_the_coherence() -> None:
    samples = pair()
    samples[1] = 0.0
    assert verdicts(samples) == {**ALL_PASS, "mic_b_noise_floor": "fail",
                                 "channel_coherence": "fail"}


def test_a_clipping_microphone_fails_its_clipping_check() -> None:
    samples = pair()
    samples[0] = np.clip(samples[0] * 80.0, -1.0, 1.0)
    result = verdicts(samples)
    assert result["mic_a_clipping"] == "fail"
    assert result["mic_b_clipping"] == "pass"


def test_a_resonance_off_the_configured_one_fails() -> None:
    checks = run_checks(pair(tone_hz=2060.0), LIMITS, sample_rate=RATE, measured_rate=None,
                        rate_basis="not paced")
    by_name = {c.name: c for c in checks}
    assert by_name["resonance_frequency"].status == "fail"
    assert by_name["resonance_frequency"].value == pytest.approx(2060.0, abs=1.0)
    assert "+60" in by_name["resonance_frequency"].message
    assert by_name["sample_rate"].status == "skip"
    assert by_name["sample_rate"].failed is False


def test_a_wrong_sample_rate_fails() -> None:
    assert verdicts(pair(), measured=44100.0)["sample_rate"] == "fail"


def test_without_a_resonance_the_band_checks_are_skipped() -> None:
    limits = dataclasses.replace(LIMITS, resonance_hz=float("nan"))
    result = verdicts(pair(), limits)
    assert result["channel_coherence"] == result["resonance_frequency"] == "skip"


def test_the_measures() -> None:
    assert level_dbfs(np.zeros(100)) == -200.0
    samples = pair()
    assert band_coherence(samples[0], samples[1], RATE, 1700, 2300) > 0.8
    rng = np.random.default_rng(0)
    assert band_coherence(rng.normal(size=RATE), rng.normal(size=RATE), RATE, 1700,
                          2300) < 0.1
    assert np.isnan(strongest_tone(samples[0], RATE, 30000, 31000))


def test_the_welch_spectra_equal_scipys_coherence_and_psd() -> None:
    """numpy's Welch (no scipy in a running appliance) gives scipy.signal's coherence and the
    same PSD up to one scale factor, for segments shorter than, and longer than, the record."""
    import scipy.signal

    rng = np.random.default_rng(1)
    fs = 48000.0
    t = np.arange(3 * 48000) / fs
    a = 0.1 * np.sin(2 * np.pi * 2003.3 * t) + rng.normal(0, 0.05, t.size)
    b = 0.08 * np.sin(2 * np.pi * 2003.3 * t + 0.3) + rng.normal(0, 0.05, t.size)
    for nperseg in (256, 1000, 4096, 10 * t.size):
        freqs, paa, pbb, pab = welch_spectra(a, b, fs, nperseg)
        ref_f, ref_coh = scipy.signal.coherence(a, b, fs=fs, nperseg=min(nperseg, t.size))
        assert np.array_equal(freqs, ref_f)
        np.testing.assert_allclose(np.abs(pab) ** 2 / (paa * pbb), ref_coh, atol=1e-12)
        _, ref_psd = scipy.signal.welch(a, fs=fs, nperseg=min(nperseg, t.size))
        ratio = ref_psd[1:-1] / paa[1:-1]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
