"""The `pafw` command line, run as users run it: a separate process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

PAFW = [sys.executable, "-m", "firmware.cli"]


def pafw(args, env, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(PAFW + args, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_config_default_is_a_valid_commented_config(state_env, tmp_path):
    out = pafw(["config", "default"], state_env)
    assert out.returncode == 0
    assert out.stdout.count("#") > 20
    path = tmp_path / "c.yaml"
    path.write_text(out.stdout)
    check = pafw(["config", "check", str(path)], state_env)
    assert check.returncode == 0, check.stderr
    assert "OK (9 nodes)" in check.stdout


def test_config_check_reports_file_line_and_key_without_traceback(state_env, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("acquisition:\n  sample_rate: 48000\n  frame_sise: 4096\n")
    out = pafw(["config", "check", str(path)], state_env)
    assert out.returncode == 2
    assert f"{path}:3:3" in out.stderr
    assert "acquisition.frame_sise" in out.stderr and "frame_size" in out.stderr
    assert "Traceback" not in out.stderr


def test_build_time_error_is_reported_at_the_node(state_env, tmp_path):
    data = yaml.safe_load(pafw(["config", "default"], state_env).stdout)
    for node in data["processing"]["default_graph"]["nodes"]:
        if node["id"] == "peak_finder":
            del node["parameters"]["center_frequency"], node["parameters"]["bandwidth"]
            node["parameters"].update(frequency_min=1700.0, frequency_max=30000.0)
    path = tmp_path / "nyquist.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = pafw(["config", "check", str(path)], state_env)
    assert out.returncode == 2
    assert str(path) in out.stderr and "Nyquist" in out.stderr
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if "frequency_max: 30000" in t)
    assert f"{path}:{line}:" in out.stderr  # the key's own line
    assert "nodes[peak_finder].parameters.frequency_max: " in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_config_file_is_a_clear_error(state_env, tmp_path):
    out = pafw(["run", "--config", str(tmp_path / "nope.yaml")], state_env)
    assert out.returncode == 2
    assert "nope.yaml" in out.stderr and "Traceback" not in out.stderr


def test_bench_rounds_below_one_is_a_usage_error(state_env):
    for bad in ("0", "-1", "two"):
        out = pafw(["bench", "python-actions", "--rounds", bad], state_env)
        assert out.returncode == 2, bad
        assert "--rounds" in out.stderr and "Traceback" not in out.stderr


def test_simulate_then_analyze_recovers_the_truth(state_env, tmp_path):
    wav = tmp_path / "sim.wav"
    sim = pafw(["simulate", "--seconds", "6", "--out", str(wav),
                "--concentration", "steps:800,2400:3", "--seed", "7"], state_env)
    assert sim.returncode == 0, sim.stderr
    truth_rows = list(csv.DictReader((tmp_path / "sim.truth.csv").open()))
    assert list(truth_rows[0]) == ["time_s", "concentration_ppm"]
    out = pafw(["analyze", str(wav), "--format", "csv"], state_env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(out.stdout.splitlines()))
    for column in ("time_s", "node_id", "frequency_hz", "amplitude", "amplitude_db", "snr_db",
                   "concentration_ppm"):
        assert column in rows[0]
    conc = [r for r in rows if r["node_id"] == "concentration"]
    assert len(conc) == len(truth_rows)
    for row, truth in zip(conc, truth_rows, strict=True):
        assert float(row["time_s"]) == pytest.approx(float(truth["time_s"]), abs=1e-6)
    settled = [(float(r["concentration_ppm"]), float(t["concentration_ppm"]))
               for r, t in zip(conc, truth_rows, strict=True)
               if float(t["concentration_ppm"]) in (800.0, 2400.0)]
    errors = sorted(abs(r - t) / t for r, t in settled)
    assert errors[len(errors) // 2] < 0.02


def test_analyze_jsonl(state_env, tmp_path):
    wav = tmp_path / "s.wav"
    assert pafw(["simulate", "--seconds", "1", "--out", str(wav)], state_env).returncode == 0
    out = pafw(["analyze", str(wav), "--format", "jsonl"], state_env)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert {line["node_id"] for line in lines} == {"peak_finder", "concentration"}


def test_analyze_missing_file(state_env, tmp_path):
    out = pafw(["analyze", str(tmp_path / "none.wav")], state_env)
    assert out.returncode == 1 and "none.wav" in out.stderr and "Traceback" not in out.stderr


def test_run_logs_status_lines_and_stops_on_sigterm(state_env, tmp_path):
    env = {**os.environ, **state_env}
    config = tmp_path / "fast-status.yaml"
    config.write_text(pafw(["config", "default"], state_env).stdout.replace(
        "status_interval_s: 5.0", "status_interval_s: 0.5"))
    proc = subprocess.Popen([*PAFW, "run", "--config", str(config)], env=env,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "ppm" in line and "fps" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, "".join(lines) + rest
    status = next(line for line in lines if "ppm" in line and "fps" in line)  # not the first,
    # which may come before the first frame on a loaded machine
    assert "concentration" in status and "Hz" in status and "SNR" in status
    assert "cpu" in status and "truth" in status
    assert "stopped cleanly" in rest


def test_bench_json_has_the_documented_figures(state_env):
    out = pafw(["bench", "--json", "--frames", "20", "--rounds", "1"], state_env, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    for key in ("realtime_factor", "speedup_vs_reference", "first_result_s", "per_node_us"):
        assert key in figures
    # the product's requirement, not a figure: the graph keeps up with the audio. It runs
    # ~100x faster than real time even on a loaded machine; the figures are the bench's
    assert figures["realtime_factor"] > 1
    assert figures["first_result_s"] > 0


def test_help_lists_commands():
    out = subprocess.run([*PAFW, "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "config", "analyze", "simulate", "bench"):
        assert command in out.stdout
    assert Path("README.md").read_text().count("pafw ") > 5
