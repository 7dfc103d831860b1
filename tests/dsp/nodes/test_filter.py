"""The filter node (firmware/dsp/nodes/filter.py): the ways its band is given and the message
for each inconsistent combination, edges beyond Nyquist reported at the parameter the user
wrote, other impossible designs as config errors, and a band-pass that passes its band and
rejects the rest with state carried across frames, on every channel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.signal
from pydantic import ValidationError

from firmware.dsp.filters import design_sos
from firmware.dsp.nodes.filter import FilterParams
from firmware.errors import ConfigError, NodeParameterError
from tests.dsp.nodes.building import FS, N, build, frame, tone

BAND = {"center_frequency": 2000.0, "bandwidth": 400.0}


@pytest.mark.parametrize(("parameters", "message"), [
    ({**BAND, "low_hz": 1800, "high_hz": 2200},
     "give either center_frequency+bandwidth or low_hz+high_hz"),
    ({"center_frequency": 2000}, "center_frequency and bandwidth go together"),
    ({"bandwidth": 400}, "center_frequency and bandwidth go together"),
    ({"low_hz": 1800}, "low_hz and high_hz go together"),
    ({}, "a bandpass filter needs center_frequency+bandwidth"),
    ({"band": "bandstop"}, "a bandstop filter needs center_frequency+bandwidth"),
    ({**BAND, "cutoff_hz": 100}, "cutoff_hz is for lowpass/highpass, not bandpass"),
    ({"band": "lowpass"}, "a lowpass filter needs cutoff_hz"),
    ({"band": "highpass", "cutoff_hz": 100, "low_hz": 50}, "a highpass filter takes cutoff_hz "
                                                           "only"),
    ({"band": "lowpass", "cutoff_hz": 100, "center_frequency": 50}, "a lowpass filter takes "
                                                                    "cutoff_hz only"),
])
def test_inconsistent_band_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        FilterParams.model_validate(parameters)
    assert [e["msg"] for e in info.value.errors()] == [f"Value error, {message}"]


@pytest.mark.parametrize(("parameters", "key"), [
    ({**BAND, "order": 0}, "order"), ({**BAND, "order": 13}, "order"),
    ({**BAND, "family": "gauss"}, "family"), ({**BAND, "band": "notch"}, "band"),
    ({"center_frequency": -1, "bandwidth": 4}, "center_frequency"),
    ({"band": "lowpass", "cutoff_hz": 0}, "cutoff_hz"),
    ({**BAND, "ripple_db": 0}, "ripple_db"), ({**BAND, "attenuation_db": 201}, "attenuation_db"),
])
def test_parameter_limits(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        FilterParams.model_validate(parameters)
    assert [e["loc"] for e in info.value.errors()] == [(key,)]


def test_band_edges_from_either_way_of_giving_them() -> None:
    assert FilterParams.model_validate(BAND).band_edges() == (1800.0, 2200.0)
    assert FilterParams.model_validate({"low_hz": 1500, "high_hz": 2500}).band_edges() == (
        1500.0, 2500.0)
    assert FilterParams.model_validate({"band": "lowpass", "cutoff_hz": 300}).band_edges() == (
        None, None)


@pytest.mark.parametrize(("parameters", "key", "detail"), [
    ({"center_frequency": 23900.0, "bandwidth": 600.0}, "center_frequency",
     "high_hz=24200.0 Hz is outside (0, 24000) Hz"),
    ({"low_hz": 2000.0, "high_hz": 25000.0}, "high_hz",
     "high_hz=25000.0 Hz is outside (0, 24000) Hz"),
    ({"low_hz": 24100.0, "high_hz": 25000.0}, "low_hz",
     "low_hz=24100.0 Hz is outside (0, 24000) Hz"),
    ({"band": "lowpass", "cutoff_hz": 24000.0}, "cutoff_hz",
     "cutoff_hz=24000.0 Hz is outside (0, 24000) Hz"),
    ({"low_hz": 3000.0, "high_hz": 1000.0}, "low_hz",
     "low_hz=3000 must be below high_hz=1000 for a bandpass filter"),
])
def test_edges_beyond_nyquist_name_the_parameter_written(parameters: dict[str, Any], key: str,
                                                         detail: str) -> None:
    with pytest.raises(NodeParameterError) as info:
        build("filter", parameters, node_id="bp")
    assert info.value.key == key
    assert str(info.value).startswith(f"node 'bp' (filter): {detail}")


def test_other_impossible_designs_are_config_errors_of_the_node() -> None:
    parameters = {**BAND, "family": "elliptic", "ripple_db": 10.0, "attenuation_db": 5.0}
    with pytest.raises(ConfigError) as info:
        build("filter", parameters, node_id="bp")
    assert not isinstance(info.value, NodeParameterError)
    assert str(info.value) == ("node 'bp' (filter): attenuation_db=5 must exceed ripple_db=10 "
                               "for an elliptic filter")


def steady_amplitude(node: Any, frequency: float, channels: int = 1,
                     frames: int = 8) -> np.ndarray:
    """Peak output per channel over the last frame of a tone run through ``node``."""
    out = np.zeros((channels, N))
    for k in range(frames):
        signal = np.tile(tone(frequency, start=k * N), (channels, 1))
        out = node.process(signal, frame(sequence=k))
    return np.max(np.abs(out), axis=1)


def test_a_bandpass_passes_its_band_and_rejects_the_rest() -> None:
    node = build("filter", {**BAND, "order": 4}, input_channels=1)
    assert steady_amplitude(node, 2000.0)[0] == pytest.approx(1.0, abs=0.05)
    far = build("filter", {**BAND, "order": 4}, input_channels=1)
    assert steady_amplitude(far, 500.0)[0] < 0.01
    stop = build("filter", {**BAND, "band": "bandstop"}, input_channels=1)
    assert steady_amplitude(stop, 2000.0)[0] < 0.05


def test_state_carries_across_frames_like_one_long_run() -> None:
    parameters = {"low_hz": 1500.0, "high_hz": 2500.0, "order": 3, "family": "chebyshev1"}
    node = build("filter", parameters, input_channels=2)
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((2, 4 * N))
    out = np.hstack([node.process(np.ascontiguousarray(signal[:, k * N:(k + 1) * N]),
                                  frame()).copy() for k in range(4)])
    sos = design_sos(family="chebyshev1", band="bandpass", order=3, sample_rate=FS,
                     low_hz=1500.0, high_hz=2500.0)
    expected = scipy.signal.sosfilt(sos, signal, axis=1)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_channels_are_filtered_independently() -> None:
    node = build("filter", {**BAND}, input_channels=2)
    out = np.zeros((2, N))
    for k in range(8):
        signal = np.vstack([tone(2000.0, start=k * N), np.zeros(N)])
        out = node.process(signal, frame())
    assert np.max(np.abs(out[0])) == pytest.approx(1.0, abs=0.05)
    assert not out[1].any()
    assert node.output_channels == 2


def test_status_names_the_design_and_the_form() -> None:
    bessel = build("filter", {**BAND, "family": "bessel", "order": 2})
    status = bessel.get_status()
    assert status.pop("form") == bessel._filter.form in ("lanes", "plain")  # measured here
    assert status == {"family": "bessel", "band": "bandpass", "order": 2, "low_hz": 1800.0,
                      "high_hz": 2200.0, "cutoff_hz": None}
    highpass = build("filter", {"band": "highpass", "cutoff_hz": 100}).get_status()
    assert highpass.pop("form") in ("lanes", "plain")
    assert highpass == {"family": "butterworth", "band": "highpass", "order": 4,
                        "low_hz": None, "high_hz": None, "cutoff_hz": 100.0}
