"""`pafw selftest` (firmware/tools/selftest.py): with no appliance running it checks the
configured source itself (the simulator passes; a WAV file recorded at another rate than the
configured one fails the sample-rate check, one with a dead microphone its level and the
coherence); with `pafw run` running on the same state dir it asks that appliance's web API,
which tests its live source. Exit 0 when every check passed, 1 otherwise."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from firmware.app.status_file import read_snapshot, snapshot_path
from firmware.cli import main
from firmware.config.loader import default_config_text, load_config
from firmware.dsp.sources.wav import WavWriter
from firmware.errors import PafwError
from firmware.tools.offline import simulate
from firmware.tools.selftest import offline_selftest, running_url, selftest_command
from tests.waiting import wait_until


@pytest.fixture
def config_file(tmp_path: Path, state_env: dict[str, str],
                monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in state_env.items():
        monkeypatch.setenv(key, value)
    data = yaml.safe_load(default_config_text())
    data["selftest"] = {"duration_s": 1.0}
    data["mqtt"]["enabled"] = False
    data["processing"]["default_graph"]["nodes"] = [
        n for n in data["processing"]["default_graph"]["nodes"] if n["type"] != "mqtt_action"]
    data["processing"]["default_graph"]["connections"] = [
        c for c in data["processing"]["default_graph"]["connections"] if c["to"] != "mqtt"]
    data["processing"]["status_interval_s"] = 0.5
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def test_offline_the_simulator_passes(config_file: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", "--config", str(config_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["trigger"] == "offline"
    assert report["source"] == "simulator"
    assert statuses(report)["sample_rate"] == "skip"
    assert main(["selftest", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "PASS  resonance_frequency" in out and out.rstrip().endswith("PASSED")


def test_a_recording_at_another_rate_fails_the_sample_rate(config_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    doc = load_config(config_file)
    data = yaml.safe_load(config_file.read_text())
    data["acquisition"]["sample_rate"] = 44100
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data, sort_keys=False))
    wav = tmp_path / "at44k.wav"
    simulate(load_config(other), seconds=1.5, out_path=wav, seed=1)
    report = offline_selftest(doc, wav_path=wav)
    assert report.failed == ["sample_rate"]
    check = {c.name: c for c in report.checks}["sample_rate"]
    assert check.value == 44100 and "declared by the file" in check.message
    assert main(["selftest", str(wav), "--config", str(config_file)]) == 1
    assert "FAILED: sample_rate" in capsys.readouterr().out


def test_a_recording_with_a_dead_microphone_fails(config_file: Path, tmp_path: Path) -> None:
    doc = load_config(config_file)
    good = tmp_path / "good.wav"
    simulate(doc, seconds=1.5, out_path=good, seed=1)
    from firmware.dsp.sources.wav import read_wav

    samples = read_wav(good)[0]
    samples[1] = 0.0
    dead = tmp_path / "dead_b.wav"
    with WavWriter(dead, sample_rate=48000, channels=2) as out:
        out.write(samples)
    report = offline_selftest(doc, wav_path=dead)
    assert set(report.failed) == {"mic_b_noise_floor", "channel_coherence"}
    with pytest.raises(PafwError, match="no such file"):
        offline_selftest(doc, wav_path=tmp_path / "missing.wav")


@pytest.fixture
def running(config_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                             str(config_file)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_with_an_appliance_running_its_api_runs_the_test(
        config_file: Path, running: subprocess.Popen[bytes],
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = load_config(config_file)
    path = snapshot_path(doc.config.paths.state_dir)

    def started() -> bool:
        snapshot = read_snapshot(path)
        return bool(snapshot and snapshot.get("state") == "running"
                    and (snapshot.get("selftest") or {}).get("runs"))

    wait_until(started, timeout_s=120, what="pafw run's snapshot with its first self-test")
    assert running_url(doc) is not None
    assert main(["selftest", "--config", str(config_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trigger"] == "api" and report["passed"]
    assert statuses(report)["sample_rate"] == "pass"  # the live, paced source: measured
    running.terminate()
    running.wait(timeout=30)
    assert running_url(doc) is None  # stopped: the next test runs offline
    assert selftest_command(doc)["trigger"] == "offline"


def test_an_appliance_running_without_its_api_is_named(config_file: Path) -> None:
    doc = load_config(config_file)
    path = snapshot_path(doc.config.paths.state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": "running", "pid": os.getpid(), "web": None}))
    with pytest.raises(PafwError, match="runs without its web API"):
        selftest_command(doc)


@pytest.mark.alsa
def test_offline_on_a_sound_card_the_rate_is_measured(tmp_path: Path,
                                                      state_env: dict[str, str]) -> None:
    """Real ALSA through libasound's file plugin (in a subprocess: libasound reads its
    configuration once per process): the pair passes every check but the sample rate, which
    is measured from the frames' arrival, and the plugin delivers far faster than 48 kHz."""
    if importlib.util.find_spec("alsaaudio") is None:
        pytest.skip("pyalsaaudio is not importable (the 'alsa' extra)")
    rate = 48000
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(0)
    tone, common = 0.05 * np.sin(2 * np.pi * 2000.0 * t), rng.normal(0.0, 0.02, t.shape[0])
    pair = np.column_stack([tone + common, -tone + common])
    raw = tmp_path / "in.raw"
    raw.write_bytes((pair * 2**15).astype("<i2").tobytes())
    conf = tmp_path / "asound.conf"
    conf.write_text(f'pcm.pafw_file {{\n type file\n slave.pcm {{ type null }}\n'
                    f' file "/dev/null"\n infile "{raw}"\n format "raw"\n}}\n')
    config = tmp_path / "alsa.yaml"
    config.write_text(yaml.safe_dump({
        "acquisition": {"source": "alsa", "alsa": {"device": "pafw_file",
                                                   "format": "S16_LE", "channels": 2}},
        "selftest": {"duration_s": 1.0}, "paths": {"state_dir": str(tmp_path / "state")}}))
    env = {**os.environ, **state_env, "ALSA_CONFIG_PATH": str(conf)}
    proc = subprocess.run([sys.executable, "-m", "firmware.cli", "selftest", "--config",
                           str(config), "--json"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"] == "alsa" and report["failed"] == ["sample_rate"]
    check = next(c for c in report["checks"] if c["name"] == "sample_rate")
    assert "arrival times" in check["message"] and check["value"] > 2 * rate
