"""Building the configured source (firmware/dsp/sources/factory.py): the simulator inverts its
own calibration or else the graph's (the message when it has neither, the error when the
calibration cannot reach a concentration), and the WAV and ALSA sources get their settings and
pacing, none of them opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.dsp.sources.alsa import AlsaSource
from firmware.dsp.sources.factory import MAX_DIFFERENTIAL_AMPLITUDE, make_source
from firmware.dsp.sources.settings import AcquisitionSettings
from firmware.dsp.sources.simulator import SimulatedSource
from firmware.dsp.sources.wav import WavSource, WavWriter
from firmware.errors import ConfigError, DspError

STEADY = {"modulation_hz": None, "temperature": {"swing_c": 0.0},
          "concentration": {"profile": "constant", "value_ppm": 1000.0}}


def settings(**acquisition: Any) -> AcquisitionSettings:
    return AcquisitionSettings.model_validate({"frame_size": 512, **acquisition})


def simulated_amplitude(source: Any) -> float:
    """The tone amplitude the simulator synthesises for its (constant) concentration."""
    with source:
        frame = source.read()
        assert frame is not None
        return float(frame.extra["amplitude"])


def test_the_simulator_inverts_the_graphs_calibration() -> None:
    source = make_source(settings(simulator=STEADY), realtime=False,
                         graph_calibration=[0.0, 50000.0])
    assert isinstance(source, SimulatedSource) and not source.is_open
    assert source.sample_rate == 48000 and source.frame_size == 512
    assert simulated_amplitude(source) == pytest.approx(1000.0 / 50000.0, rel=1e-9)


def test_the_simulators_own_calibration_wins() -> None:
    own = {**STEADY, "calibration": [0.0, 10000.0]}
    source = make_source(settings(simulator=own), realtime=False,
                         graph_calibration=[0.0, 50000.0])
    assert simulated_amplitude(source) == pytest.approx(0.1, rel=1e-9)
    alone = make_source(settings(simulator=own), realtime=False, graph_calibration=None)
    assert simulated_amplitude(alone) == pytest.approx(0.1, rel=1e-9)


def test_a_curved_calibration_is_inverted_on_its_rising_branch() -> None:
    # ppm = 20000 a + 125000 a^2: 1000 ppm at a = 0.04 (the other root is negative)
    source = make_source(settings(simulator=STEADY), realtime=False,
                         graph_calibration=[0.0, 20000.0, 125000.0])
    assert simulated_amplitude(source) == pytest.approx(0.04, rel=1e-9)


def test_a_simulator_without_any_calibration() -> None:
    with pytest.raises(ConfigError) as info:
        make_source(settings(), realtime=False, graph_calibration=None)
    assert str(info.value) == ("acquisition.simulator.calibration: the simulator needs a "
                               "calibration polynomial; set it or add a concentration node to "
                               "the graph")


def test_a_calibration_that_cannot_reach_a_simulated_concentration() -> None:
    """The noise is set at reference_ppm (2500): more than the cell's largest differential
    amplitude can give with this calibration."""
    with pytest.raises(DspError) as info:
        make_source(settings(), realtime=False, graph_calibration=[0.0, 100.0])
    assert str(info.value).startswith(
        f"ppm=2500 is not reached by the calibration [0.0, 100.0] on a rising branch in "
        f"[0, {MAX_DIFFERENTIAL_AMPLITUDE:g}]")


@pytest.mark.parametrize("realtime", [False, True])
def test_a_wav_source_reads_the_configured_file(tmp_path: Path, realtime: bool) -> None:
    path = tmp_path / "cell.wav"
    with WavWriter(path, sample_rate=8000, channels=2, sample_format="float32") as wav:
        wav.write(np.vstack([np.full(64, 0.5), np.full(64, -0.25)]))
    source = make_source(settings(source="wav", sample_rate=8000, frame_size=64,
                                  wav={"path": str(path)}),
                         realtime=realtime, graph_calibration=None)
    assert isinstance(source, WavSource) and not source.is_open
    assert source.realtime is realtime
    with source:
        frame = source.read()
        assert frame is not None
        assert frame.samples[:, 0].tolist() == [0.5, -0.25]


def test_an_alsa_source_is_paced_by_its_device() -> None:
    acquisition = settings(source="alsa", alsa={"device": "hw:CARD=nope", "channels": 1})
    source = make_source(acquisition, realtime=True, graph_calibration=[0.0, 1.0])
    assert isinstance(source, AlsaSource) and not source.is_open
    assert source.realtime is False  # the sound card sets the pace, not a timer
    assert source.settings.device == "hw:CARD=nope" and source.settings.channels == 1
    assert (source.sample_rate, source.frame_size) == (48000, 512)
