"""`pafw allan` (firmware/tools/allan.py): the configured graph run offline over N seconds of
the simulator at a constant concentration gives an Allan deviation that falls as tau^-1/2
(white noise) and no step; over a WAV file whose true concentration rises as a first-order
response, it finds the step and a T90 within tolerance of the truth. The command prints a
table or JSON, and refuses bad arguments with a clear message."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from firmware.cli import main
from firmware.config.loader import ConfigDocument, default_config_text
from firmware.dsp.step_response import find_step
from firmware.errors import PafwError
from firmware.tools.allan import (
    ConcentrationSeries,
    allan_report,
    concentration_node,
    record_series,
    simulator_document,
)
from firmware.tools.offline import simulate
from tests.conftest import graph_node

RATE, SIZE = 16000, 1024
FRAME_S = SIZE / RATE
TAU_S = 2.0  # the first-order response of the step record


def quiet(data: dict[str, Any]) -> None:
    """A smaller, quicker stream; a steady cell (no temperature swing) and a peak finder whose
    FFT is one frame (a longer one overlaps frames: neighbouring values would be correlated),
    so the values are white noise."""
    data["acquisition"].update(sample_rate=RATE, frame_size=SIZE)
    data["acquisition"]["simulator"]["temperature"]["swing_c"] = 0.0
    graph_node(data, "peak_finder")["parameters"]["fft_size"] = SIZE


@pytest.fixture
def doc(make_doc: Callable[..., ConfigDocument]) -> ConfigDocument:
    return make_doc(quiet)


def test_a_constant_concentration_gives_white_noise(doc: ConfigDocument,
                                                    tmp_path: Path) -> None:
    sim = simulator_document(doc, concentration="constant:1000", seed=7)
    series = record_series(sim, seconds=60.0, state_dir=tmp_path / "state")
    assert series.values.shape[0] == math.ceil(60.0 / FRAME_S)
    assert series.dt_s == FRAME_S and series.node_id == "concentration"
    report = allan_report(series)
    adev = report.adev
    assert adev.tau_s[0] == FRAME_S
    assert adev.tau_s[-1] <= 20.0 + FRAME_S  # a third of the record
    assert adev.slope(FRAME_S, 2.0) == pytest.approx(-0.5, abs=0.1)
    # sigma(tau) follows the white-noise line within the estimate's scatter
    short = adev.tau_s <= 2.0
    np.testing.assert_allclose(adev.sigma[short], adev.white_sigma(adev.tau_s[short]),
                               rtol=0.25)
    assert np.nanmean(series.values) == pytest.approx(1000.0, rel=0.02)
    assert report.step is None
    figures = report.to_dict()
    assert figures["lod_1s"] == pytest.approx(3 * report.sigma_1s)
    assert figures["optimum_tau_s"] > 1.0  # white noise: averaging keeps helping
    assert "no step in the record" in report.format_text()


def first_order_profile(path: Path, *, pre: float, post: float, at_s: float,
                        length_s: float) -> None:
    """A csv profile: ``pre``, then from ``at_s`` a first-order rise to ``post``."""
    t = np.arange(0.0, length_s + 0.05, 0.05)
    c = pre + (post - pre) * np.where(t >= at_s, 1.0 - np.exp(-(t - at_s) / TAU_S), 0.0)
    path.write_text("time_s,concentration_ppm\n"
                    + "".join(f"{a:.3f},{b:.4f}\n" for a, b in zip(t, c, strict=True)))


def test_a_step_in_a_recording_gives_its_t90(doc: ConfigDocument, tmp_path: Path) -> None:
    profile = tmp_path / "step.csv"
    first_order_profile(profile, pre=500.0, post=2500.0, at_s=25.0, length_s=60.0)
    wav = tmp_path / "step.wav"
    truth_csv = simulate(doc, seconds=60.0, out_path=wav, concentration=f"csv:{profile}",
                         seed=2)
    report = allan_report(record_series(doc, wav_path=wav, state_dir=tmp_path / "state"))
    step = report.step
    assert step is not None
    truth = np.loadtxt(truth_csv, delimiter=",", skiprows=1)[:, 1]
    truth_step = find_step(truth, FRAME_S)
    assert truth_step is not None
    assert truth_step.t90_s == pytest.approx(TAU_S * math.log(9.0), rel=0.05)
    assert step.t90_s == pytest.approx(truth_step.t90_s, rel=0.15)
    assert step.pre == pytest.approx(500.0, rel=0.03)
    assert step.post == pytest.approx(2500.0, rel=0.03)
    text = report.format_text()
    assert "T90 (10 % -> 90 %)" in text and str(wav) in text
    assert "includes the step" in text


def test_too_few_values_and_bad_nodes_are_refused(doc: ConfigDocument) -> None:
    with pytest.raises(PafwError, match="only 3 frames with a concentration"):
        allan_report(ConcentrationSeries("c", 0.1, np.array([1.0, 2.0, 3.0, np.nan]), "x"))
    with pytest.raises(PafwError, match="--node peak_finder: not a concentration node"):
        concentration_node(doc, "peak_finder")
    with pytest.raises(PafwError, match="no such file"):
        record_series(doc, wav_path=Path("/nonexistent.wav"))


# ---------------------------------------------------------------------------- command
@pytest.fixture
def config_file(tmp_path: Path, state_env: dict[str, str],
                monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in state_env.items():
        monkeypatch.setenv(key, value)
    data = yaml.safe_load(default_config_text())
    quiet(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_command_prints_json_and_a_table(config_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["allan", "--simulate", "12", "--concentration", "constant:800", "--seed", "3",
                 "--config", str(config_file), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["node"] == "concentration" and figures["unit"] == "ppm"
    assert figures["frames"] == math.ceil(12 / FRAME_S)
    assert figures["curve"][0]["tau_s"] == pytest.approx(FRAME_S)
    assert figures["lod_optimum"] <= figures["lod_1s"]
    assert figures["step"] is None
    plot = config_file.parent / "allan.png"
    assert main(["allan", "--simulate", "6", "--config", str(config_file), "--plot",
                 str(plot)]) == 0
    captured = capsys.readouterr()
    assert "LOD (3 sigma) at 1 s:" in captured.out and "tau (s)" in captured.out
    assert f"wrote {plot}" in captured.err
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("args", "message"), [
    (["allan"], "give a WAV file or --simulate SECONDS"),
    (["allan", "x.wav", "--simulate", "3"], "give a WAV file or --simulate SECONDS"),
    (["allan", "x.wav", "--seed", "3"], "--concentration and --seed go with --simulate"),
    (["allan", "/nonexistent/x.wav"], "/nonexistent/x.wav: no such file"),
    (["allan", "--simulate", "0"], "expected a positive number of seconds"),
])
def test_the_command_refuses_bad_arguments(args: list[str], message: str, config_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "--config", str(config_file)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
