"""`pafw bench modbus` in small: the figures are there and the load really happened (every
client read, nothing failed). Speed is the benchmark's business, not a test's."""

from __future__ import annotations

from firmware.bench.modbus import format_modbus_report, run_modbus_bench

CLIENTS = 5


def test_modbus_bench_polls_the_server_and_reports_its_figures():
    figures = run_modbus_bench(seconds=2.0, rounds=2, clients=CLIENTS, polls=20)

    assert figures["rounds"] == 2 and figures["clients"] == CLIENTS
    for kind in ("idle", "loaded"):
        side = figures[kind]
        assert len(side["realtime_factor"]) == 2 and side["realtime_factor_median"] > 0
        assert side["read_latency_ms"]["count"] == 2 * 20
        assert side["read_latency_ms"]["p95"] >= side["read_latency_ms"]["p50"] > 0
        assert side["probe_errors"] == 0
    assert figures["dsp_ratio"] > 0
    load = figures["load"]
    assert load["reads"] > 0 and load["errors"] == 0 and load["failed_clients"] == 0
    server = figures["server"]
    assert server["connections_total"] >= 2 * CLIENTS + 4  # the load's and the probe's
    assert server["errors"] == 0 and server["rejected_connections"] == 0
    report = format_modbus_report(figures)
    assert "read latency p95" in report and "DSP ratio" in report
