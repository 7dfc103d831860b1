"""The lock-in node (firmware/dsp/nodes/lockin.py): the reference must lie below Nyquist
(reported at reference_frequency), it publishes the amplitude, dB and phase of the reference
component with the frame's sequence and times, analyses the configured channel, and passes its
input on unchanged."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from firmware.errors import NodeParameterError
from firmware.state import ComputingState
from tests.dsp.nodes.building import FS, N, build, frame, tone


def run_tone(node: Any, signal_of: Any, frames: int = 20) -> None:
    for k in range(frames):
        node.process(signal_of(k), frame(sequence=k, timestamp=10.0 + k, wall_time=1e9 + k))


@pytest.mark.parametrize("reference", [FS / 2, FS / 2 + 1, 1e9])
def test_the_reference_must_be_below_nyquist(reference: float) -> None:
    with pytest.raises(NodeParameterError) as info:
        build("lockin", {"reference_frequency": reference}, node_id="li")
    assert info.value.key == "reference_frequency"
    assert str(info.value) == (f"node 'li' (lockin): reference_frequency {float(reference)} Hz "
                               f"must be below the Nyquist frequency 24000.0 Hz")


@pytest.mark.parametrize(("parameters", "key"), [
    ({"reference_frequency": 0}, "reference_frequency"),
    ({"time_constant_s": 0}, "time_constant_s"), ({"time_constant_s": 61}, "time_constant_s"),
    ({"filter_order": 0}, "filter_order"), ({"filter_order": 9}, "filter_order"),
    ({"channel": "C"}, "channel"), ({"phase": 1}, "phase"),
])
def test_parameter_limits(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("lockin", parameters)
    assert [e["loc"] for e in info.value.errors()] == [("parameters", key)]


def test_it_publishes_the_reference_components_amplitude() -> None:
    state = ComputingState()
    node = build("lockin", {"reference_frequency": 2000.0, "time_constant_s": 0.01},
                 node_id="li", input_channels=1, state=state)
    assert node.computing
    run_tone(node, lambda k: tone(2000.0, 0.2, start=k * N)[None, :])
    result = state.get("li")
    assert result is not None
    assert (result.kind, result.sequence, result.monotonic, result.timestamp) == (
        "lockin", 19, 29.0, 1e9 + 19)
    assert result.detected and result.frequency_hz == 2000.0
    assert result.amplitude == pytest.approx(0.2, rel=0.02)
    assert result.amplitude_db == pytest.approx(20 * math.log10(result.amplitude))
    assert -math.pi <= result.phase_rad <= math.pi
    assert node.get_status() == {"reference_frequency": 2000.0}


def test_a_tone_away_from_the_reference_is_rejected() -> None:
    state = ComputingState()
    node = build("lockin", {"reference_frequency": 2000.0, "time_constant_s": 0.05},
                 node_id="li", input_channels=1, state=state)
    run_tone(node, lambda k: tone(3000.0, 0.2, start=k * N)[None, :])
    result = state.get("li")
    assert result is not None and result.amplitude < 0.002


def test_silence_is_no_detection() -> None:
    state = ComputingState()
    node = build("lockin", node_id="li", input_channels=1, state=state)
    run_tone(node, lambda k: np.zeros((1, N)), frames=2)
    result = state.get("li")
    assert result is not None
    assert not result.detected and result.amplitude == 0.0
    assert result.amplitude_db == -math.inf
    assert result.to_dict()["amplitude_db"] is None


@pytest.mark.parametrize(("channel", "expected"), [("A", 0.1), ("B", 0.3)])
def test_a_stereo_input_is_analysed_on_the_configured_channel(channel: str,
                                                              expected: float) -> None:
    state = ComputingState()
    node = build("lockin", {"channel": channel, "time_constant_s": 0.01}, node_id="li",
                 state=state)
    run_tone(node, lambda k: np.vstack([tone(2000.0, 0.1, start=k * N),
                                               tone(2000.0, 0.3, start=k * N)]))
    result = state.get("li")
    assert result is not None and result.amplitude == pytest.approx(expected, rel=0.02)


def test_channel_b_of_a_mono_input_is_its_only_channel() -> None:
    state = ComputingState()
    node = build("lockin", {"channel": "B", "time_constant_s": 0.01}, node_id="li",
                 input_channels=1, state=state)
    run_tone(node, lambda k: tone(2000.0, 0.1, start=k * N)[None, :])
    result = state.get("li")
    assert result is not None and result.amplitude == pytest.approx(0.1, rel=0.02)


def test_the_input_passes_through() -> None:
    node = build("lockin")
    signal = np.vstack([tone(2000.0), tone(1000.0)])
    before = signal.copy()
    assert node.process(signal, frame()) is signal
    np.testing.assert_array_equal(signal, before)
    assert node.output_channels == 2
