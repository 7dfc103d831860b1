"""`pafw bench web` in small: the figures are there and the load really happened (clients
received events, the slowloris and the stalled reader were cut by the server). Speed is the
benchmark's business, not a test's."""

from __future__ import annotations

from firmware.bench.web import format_web_report, run_web_bench

CLIENTS = 20


def test_web_bench_loads_the_server_and_reports_its_figures():
    figures = run_web_bench(seconds=10.0, rounds=2, clients=CLIENTS)

    assert set(figures) == {"machine", "setup", "dsp", "cpu", "clients", "slowloris",
                            "stalled", "memory", "server"}
    assert figures["machine"]["cpu_count"] >= 1
    assert figures["setup"]["rounds"] == 2 and figures["setup"]["clients"] == CLIENTS

    dsp = figures["dsp"]
    assert len(dsp["idle_rounds"]) == len(dsp["loaded_rounds"]) == 2
    for key in ("realtime_factor_idle", "realtime_factor_loaded", "ratio",
                "ratio_uncontended"):
        assert isinstance(dsp[key], float) and dsp[key] > 0
    assert isinstance(dsp["meets_target"], bool)
    assert all(isinstance(v, float) for v in figures["cpu"].values() if v is not None)
    assert figures["cpu"]["dsp_thread_percent_idle"] > 0

    clients = figures["clients"]
    assert clients["connected_min"] == clients["ready_min"] == CLIENTS
    assert clients["events_per_client_per_s"] > 0 and clients["bytes_per_client_per_s"] > 0
    assert clients["cut_by_server"] == 0  # readers that keep up are never dropped
    assert clients["connect_errors"] == {} and clients["http_statuses"] == {"200": 3 * CLIENTS}

    slowloris = figures["slowloris"]
    assert slowloris["cut"] > 0 and slowloris["statuses"].get("408", 0) > 0
    assert slowloris["cut_after_s"] >= figures["setup"]["request_timeout_s"] * 0.9

    stalled = figures["stalled"]
    assert stalled["dropped"] >= 1 and stalled["dropped_after_s"] is not None

    server = figures["server"]
    assert server["streams_loaded"] >= CLIENTS
    assert server["dropped_slow_streams"] >= 1
    assert server["timed_out_requests"] >= slowloris["cut"]
    assert server["rejected_connections"] == 0

    memory = figures["memory"]
    assert len(memory["rss_loaded_mb"]) == 2
    assert memory["rss_max_mb"] >= memory["rss_start_mb"] > 0
    assert isinstance(memory["growth_over_loaded_rounds_mb"], float)

    report = format_web_report(figures)
    assert "real-time factor" in report and "slowloris" in report
