"""`pafw bench estimators` in small: every estimator is measured on the same records, the
figures are consistent, and the matched amplitude beats the Hann-windowed one."""

from __future__ import annotations

import json
import math

import pytest

from firmware.bench.estimators import (
    format_estimator_report,
    lockin_effective_samples,
    lockin_time_constant,
    run_estimator_bench,
)
from firmware.config.loader import load_config


def test_one_stage_lockin_has_the_textbook_effective_length() -> None:
    alpha = 0.01
    assert lockin_effective_samples(alpha, 1) == pytest.approx((2 - alpha) / alpha, rel=1e-9)
    tau = lockin_time_constant(4096, 48000.0, 2)
    alpha2 = -math.expm1(-1.0 / (tau * 48000.0))
    assert lockin_effective_samples(alpha2, 2) == pytest.approx(4096, rel=1e-3)


def test_estimator_bench_reports_every_estimator_at_every_snr() -> None:
    doc = load_config(None)  # the built-in default
    figures = run_estimator_bench(doc, trials=40, snrs_db=(0.0, 20.0))
    rows = {(r["estimator"], r["snr_db"]): r for r in figures["rows"]}
    names = ("peak_finder (matched)", "peak_finder (window)", "lockin")
    assert set(rows) == {(n, s) for n in names for s in (0.0, 20.0)}
    for (name, _snr), row in rows.items():
        assert row["detected"] == 1.0
        assert 0.3 < row["var_over_crb"] < 3.0
        assert row["lod_ppm"] > 0
        assert (row["frequency_hz"] is None) == (name == "lockin")
    # same records: the matched estimate varies less than the Hann-windowed one
    for snr in (0.0, 20.0):
        matched = rows[("peak_finder (matched)", snr)]["var_over_crb"]
        assert matched < rows[("peak_finder (window)", snr)]["var_over_crb"]
    # the LOD scales with the noise: 20 dB less noise, a tenth of the LOD
    lod = rows[("lockin", 0.0)]["lod_ppm"] / rows[("lockin", 20.0)]["lod_ppm"]
    assert 5 < lod < 20
    report = format_estimator_report(figures)
    assert "var/CRB" in report and "peak_finder (matched)" in report


def test_pafw_bench_estimators_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    from firmware.cli import main

    assert main(["bench", "estimators", "--trials", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["trials"] == 4 and len(figures["rows"]) == 3 * 5  # 3 estimators, 5 SNRs
