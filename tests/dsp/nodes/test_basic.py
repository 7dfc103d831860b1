"""The signal-routing nodes (firmware/dsp/nodes/basic.py): input, channel selector, channel
mixer, differential and gain: their output for known input, their channel counts, reused
output buffers, the stereo requirement's message and their parameters' limits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from firmware.errors import ConfigError
from tests.dsp.nodes.building import N, build, frame

A = np.linspace(-1.0, 1.0, N)
B = np.cos(np.arange(N) / 7.0) * 0.3
STEREO = np.vstack([A, B])


def run(node: Any, signal: np.ndarray = STEREO) -> np.ndarray:
    return node.process(np.ascontiguousarray(signal), frame(STEREO))


def test_input_passes_the_frame_itself() -> None:
    node = build("input", input_channels=1)
    assert node.output_channels == 2  # the source's frame is always stereo
    f = frame(STEREO)
    assert node.process(np.zeros((1, N)), f) is f.samples


@pytest.mark.parametrize(("channel", "expected"), [("A", A), ("B", B)])
def test_channel_selector_keeps_one_channel(channel: str, expected: np.ndarray) -> None:
    node = build("channel_selector", {"channel": channel})
    assert node.output_channels == 1
    out = run(node)
    assert out.shape == (1, N)
    np.testing.assert_array_equal(out[0], expected)
    assert run(node) is out  # one preallocated buffer, refilled


def test_channel_selector_defaults_to_a() -> None:
    np.testing.assert_array_equal(run(build("channel_selector"))[0], A)


@pytest.mark.parametrize(("parameters", "expected"), [
    ({"strategy": "add"}, A + B),
    ({"strategy": "subtract"}, A - B),
    ({"strategy": "average"}, (A + B) / 2),
    ({}, (A + B) / 2),
    ({"strategy": "weighted", "weight_a": 2.0, "weight_b": -0.25}, 2 * A - 0.25 * B),
    # weights apply to the weighted strategy only
    ({"strategy": "add", "weight_a": 3.0, "weight_b": 3.0}, A + B),
])
def test_channel_mixer_strategies(parameters: dict[str, Any], expected: np.ndarray) -> None:
    node = build("channel_mixer", parameters)
    assert node.output_channels == 1
    out = run(node)
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-15)
    assert run(node) is out


def test_differential_is_a_minus_b() -> None:
    node = build("differential")
    assert node.output_channels == 1
    out = run(node)
    np.testing.assert_allclose(out[0], A - B, rtol=0, atol=1e-15)
    # antiphase signal doubles, common-mode noise cancels
    common = np.full(N, 0.5)
    np.testing.assert_allclose(run(node, np.vstack([A + common, -A + common]))[0], 2 * A,
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("type_name", ["channel_selector", "channel_mixer", "differential"])
def test_combiners_need_a_stereo_input(type_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(type_name, node_id="x", input_channels=1, upstream=["input", "diff"])
    assert str(info.value) == (f"node 'x' ({type_name}) needs a stereo input, but its input "
                               f"'input' gives 1 channel")
    with pytest.raises(ConfigError, match=r"its input '\?' gives 1 channel"):
        build(type_name, node_id="x", input_channels=1)


@pytest.mark.parametrize(("gain_db", "factor"), [(20.0, 10.0), (-20.0, 0.1), (6.0, 1.99526),
                                                 (-120.0, 1e-6)])
@pytest.mark.parametrize("channels", [1, 2])
def test_gain_scales_every_channel(gain_db: float, factor: float, channels: int) -> None:
    node = build("gain", {"gain_db": gain_db}, input_channels=channels)
    assert node.output_channels == channels
    signal = STEREO[:channels].copy()
    out = run(node, signal)
    assert out is not signal
    np.testing.assert_allclose(out, signal * factor, rtol=1e-5)
    np.testing.assert_array_equal(signal, STEREO[:channels])  # the input is left alone
    assert run(node, signal) is out


def test_zero_db_passes_the_input_buffer_on() -> None:
    node = build("gain", {"gain_db": 0.0})
    signal = STEREO.copy()
    assert node.process(signal, frame(STEREO)) is signal


def test_class_flags_tell_the_fusion_what_commutes() -> None:
    assert build("gain").per_channel_linear and not build("gain").channel_combiner
    for type_name in ("channel_selector", "channel_mixer", "differential"):
        node = build(type_name)
        assert node.channel_combiner and not node.per_channel_linear
    assert not build("input").channel_combiner and not build("input").per_channel_linear


@pytest.mark.parametrize(("type_name", "parameters", "key"), [
    ("gain", {"gain_db": 121}, "gain_db"),
    ("gain", {"gain_db": -121}, "gain_db"),
    ("gain", {"gain_db": "loud"}, "gain_db"),
    ("channel_mixer", {"weight_a": 101}, "weight_a"),
    ("channel_mixer", {"weight_b": -101}, "weight_b"),
    ("channel_mixer", {"strategy": "max"}, "strategy"),
    ("channel_selector", {"channel": "C"}, "channel"),
    ("input", {"channel": "A"}, "channel"),
    ("differential", {"invert": True}, "invert"),
])
def test_parameter_limits(type_name: str, parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(type_name, parameters)
    assert [e["loc"] for e in info.value.errors()] == [("parameters", key)]
