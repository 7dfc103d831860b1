"""Cross-checks of the signal chain: a chain that can never detect is refused with
file:line:key, one that works badly is accepted with a located warning, and `pafw analyze`
names the likely cause when a detector detected nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.config.loader import default_config_text, load_config
from firmware.errors import ConfigError

#: the default peak finder's search band, as written in the default config
SEARCH = ("center_frequency: *resonance_hz   # search band: the filter's (or frequency_min\n"
          "          bandwidth: *band_hz               # and frequency_max in Hz)")


def variant(replacements: dict[str, str]) -> str:
    """The default config with each key's text replaced by its value."""
    text = default_config_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def line_of(text: str, fragment: str) -> int:
    return next(i for i, t in enumerate(text.splitlines(), 1) if fragment in t)


def test_a_bandpass_that_misses_the_search_band_is_an_error(tmp_path: Path) -> None:
    text = variant({SEARCH: "frequency_min: 2100.0\n          frequency_max: 2700.0",
                    "center_frequency: *resonance_hz\n": "center_frequency: 5000.0\n"})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.yaml", text=text)
    [problem] = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'c.yaml'}:{line_of(text, 'frequency_min: 2100')}:11:"
                              " processing.default_graph.nodes[peak_finder].parameters"
                              ".frequency_min: ")
    assert "2100-2700 Hz" in problem and "'bandpass'" in problem and "4700-5300 Hz" in problem
    assert "can never detect" in problem


@pytest.mark.parametrize(("band", "detail"), [
    ("band: lowpass\n          cutoff_hz: 1000.0", "0-1000 Hz"),
    ("band: highpass\n          cutoff_hz: 3000.0", "above 3000 Hz"),
    ("band: bandstop\n          low_hz: 1600.0\n          high_hz: 2400.0", "1600-2400 Hz"),
])
def test_other_filters_that_block_the_search_band(band: str, detail: str) -> None:
    text = default_config_text().replace(
        "band: bandpass        # bandpass | bandstop | lowpass | highpass\n"
        "          order: 4\n          center_frequency: *resonance_hz\n"
        "          bandwidth: *band_hz",
        f"{band}\n          order: 4")
    assert band in text
    with pytest.raises(ConfigError, match=detail) as caught:
        load_config(text=text)
    assert "can never detect" in str(caught.value)


def test_a_lockin_reference_outside_the_pass_band_is_an_error() -> None:
    text = default_config_text().replace(SEARCH, "").replace(
        "type: peak_finder\n        parameters:\n          fft_size: 4096",
        "type: lockin\n        parameters:\n          reference_frequency: 3000.0\n"
        "          time_constant_s: 0.05\n          # fft_size: 4096")
    for key in ("window", "detection_threshold_db", "coherence_frames", "smoothing"):
        text = text.replace(f"          {key}:", f"          # {key}:")
    with pytest.raises(ConfigError) as caught:
        load_config(text=text)
    [problem] = caught.value.problems
    assert ".parameters.reference_frequency: lockin 'peak_finder' listens to 3000 Hz" in problem


def test_a_partial_overlap_and_a_misplaced_simulator_are_warnings() -> None:
    text = variant({SEARCH: "frequency_min: 1500.0\n          frequency_max: 2300.0",
                    "resonance_hz: *resonance_hz": "resonance_hz: 2600.0"})
    doc = load_config(text=text)
    assert len(doc.warnings) == 2
    partial, simulator = doc.warnings
    line = line_of(text, "frequency_min: 1500")
    assert partial.startswith(f"<text>:{line}:11: processing.default_graph.nodes[peak_finder]"
                              ".parameters.frequency_min: ")
    assert "25 % of the search band is attenuated" in partial
    assert "resonance_hz: 2600 Hz) is outside the search band 1500-2300 Hz" in simulator
    assert load_config().warnings == ()  # the default config agrees with itself


def test_a_frequency_trigger_expecting_an_unsearched_frequency_is_a_warning() -> None:
    text = variant({"expected_hz: *resonance_hz": "expected_hz: 2600.0"})
    [warning] = load_config(text=text).warnings
    line = line_of(text, "expected_hz: 2600")
    assert warning.startswith(f"<text>:{line}:15: processing.default_graph.nodes[mqtt]"
                              ".parameters.triggers[1].expected_hz: ")
    assert "fires as soon as a peak is found" in warning


def pafw(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, cwd=cwd)


def test_config_check_prints_warnings_and_analyze_names_why_nothing_was_detected(
        state_env: dict[str, str], tmp_path: Path) -> None:
    off = tmp_path / "off.yaml"
    off.write_text(variant({SEARCH: "frequency_min: 2100.0\n          frequency_max: 2700.0",
                            "center_frequency: *resonance_hz\n": "center_frequency: 2400.0\n"}))
    checked = pafw(["config", "check", str(off)], state_env, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "OK (9 nodes, 1 warning)" in checked.stdout
    assert "resonance_hz: 2000 Hz) is outside the search band 2100-2700 Hz" in checked.stderr

    wav = tmp_path / "sim.wav"
    assert pafw(["simulate", "--seconds", "3", "--out", str(wav)], state_env,
                tmp_path).returncode == 0
    done = pafw(["analyze", str(wav), "--config", str(off), "--out", str(tmp_path / "a.csv")],
                state_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "simulator" not in done.stderr  # analyze reads the file, not the simulator
    [warning] = [line for line in done.stderr.splitlines() if "detected nothing" in line]
    assert "nodes[peak_finder]: peak_finder 'peak_finder' detected nothing in " in warning
    assert "search band 2100-2700 Hz" in warning
    tone = float(warning.split("strongest tone is at ")[1].split(" Hz")[0])
    assert abs(tone - 2000.0) < 30.0  # the simulated cell's resonance
