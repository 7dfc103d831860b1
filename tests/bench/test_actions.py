"""`pafw bench actions` in a short form: it starts its own Mosquitto and webhook sink on
loopback, measures the result -> subscriber latency, the outbox throughput and the DSP cost of
the built-in actions, and reports every figure it promises (their values are the bench's
business, not the test's)."""

from __future__ import annotations

import math
import socket

from firmware.bench.actions import format_actions_report, private_mosquitto, run_actions_bench


def test_every_figure_is_measured_and_reported() -> None:
    figures = run_actions_bench(seconds=3.0, messages=200, frames=24, rounds=1)
    latency, outbox, dsp = figures["latency"], figures["outbox"], figures["dsp"]
    assert latency["messages"] > 0
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert outbox["messages"] == 200 and outbox["messages_per_s"] > 0
    assert dsp["frames"] == 24 and dsp["rounds"] == 1
    for key in ("realtime_factor_with_actions", "realtime_factor_without_actions",
                "throughput_ratio"):
        assert math.isfinite(dsp[key]) and dsp[key] > 0
    report = format_actions_report(figures).splitlines()
    assert [line.split(" ")[0] for line in report] == ["result", "outbox", "DSP"]


def test_its_broker_listens_on_loopback_only(tmp_path) -> None:
    with private_mosquitto(tmp_path) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        conf = next(tmp_path.glob("*.conf")).read_text()
        assert f"listener {port} 127.0.0.1" in conf
