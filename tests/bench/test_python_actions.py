"""`pafw bench python-actions` in a short form: trigger latency through a real worker, the DSP
real-time factor with four script actions against none and against them idle (on one graph),
the idle actions' CPU, worker start and memory, and the reload latency are all measured
and reported (their values are the bench's business)."""

from __future__ import annotations

import math

from firmware.bench.python_actions import format_python_report, run_python_bench


def test_every_figure_is_measured_and_reported() -> None:
    figures = run_python_bench(seconds=1.0, frames=24, rounds=2, reloads=1, round_s=0.02)
    latency, dsp, reload = figures["latency"], figures["dsp"], figures["reload"]
    for phase in ("entry", "return"):
        timing = latency[phase]
        assert timing["count"] > 0
        assert 0 < timing["p50_ms"] <= timing["p95_ms"] <= timing["p99_ms"]
    assert latency["worker_start_ms"] > 0
    assert 0 < latency["worker_uss_mb"] <= latency["worker_rss_mb"]
    assert dsp["frames"] == 24 and dsp["python_actions"] == 4
    assert dsp["workers_running"] == 4, "the measured appliance ran its four scripts"
    for key in ("realtime_factor_with", "realtime_factor_idle", "realtime_factor_without",
                "throughput_ratio", "idle_throughput_ratio", "batches_per_s"):
        assert math.isfinite(dsp[key]) and dsp[key] > 0, key
    assert dsp["idle_control_cpu_percent"] >= 0 and dsp["idle_workers_cpu_percent"] >= 0
    assert dsp["rounds"] == 2 and dsp["passes_per_round"] >= 1
    low, high = dsp["throughput_ratio_range"]
    assert low <= dsp["throughput_ratio"] <= high
    assert reload["count"] == 1 and reload["p50_ms"] > 0
    report = format_python_report(figures).splitlines()
    assert [line.split(" ")[0] for line in report] == ["trigger", "trigger", "worker:", "DSP",
                                                       "reload"]
