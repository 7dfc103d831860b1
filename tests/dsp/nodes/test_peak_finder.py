"""The peak-finder node (firmware/dsp/nodes/peak_finder.py): its search band given by
min/max or by centre and width (and the message for each inconsistent combination), the
Nyquist check at the parameter the user wrote, impossible bands as config errors, the result it
publishes for a tone and for noise, the analysed channel, the spectrum copied only while
someone looks, and its input passed on."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from firmware.dsp.nodes.peak_finder import PeakFinderParams
from firmware.errors import ConfigError, NodeParameterError
from firmware.state import ComputingState
from tests.dsp.nodes.building import FS, N, build, frame, tone

FRAMES = 6  # a 4096-point FFT over 1024-sample frames is full after 4


def test_the_band_by_centre_and_width() -> None:
    params = PeakFinderParams.model_validate({"center_frequency": 2000, "bandwidth": 600})
    assert (params.frequency_min, params.frequency_max) == (1700.0, 2300.0)
    assert PeakFinderParams().frequency_min == 1500.0  # the defaults otherwise


@pytest.mark.parametrize(("parameters", "message"), [
    ({"center_frequency": 2000}, "center_frequency and bandwidth go together"),
    ({"bandwidth": 600}, "center_frequency and bandwidth go together"),
    ({"center_frequency": 2000, "bandwidth": 600, "frequency_min": 1000},
     "give either center_frequency+bandwidth or frequency_min+frequency_max, not both (got "
     "frequency_min too)"),
    ({"center_frequency": 2000, "bandwidth": 600, "frequency_min": 1000,
      "frequency_max": 3000},
     "give either center_frequency+bandwidth or frequency_min+frequency_max, not both (got "
     "frequency_max, frequency_min too)"),
    ({"center_frequency": 200, "bandwidth": 400},
     "bandwidth 400 Hz reaches below 0 Hz around center_frequency 200 Hz"),
    ({"frequency_min": 2500, "frequency_max": 2500},
     "frequency_max (2500.0) must be above frequency_min (2500.0)"),
    ({"frequency_min": 3000}, "frequency_max (2500.0) must be above frequency_min (3000.0)"),
])
def test_inconsistent_bands(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        PeakFinderParams.model_validate(parameters)
    assert [e["msg"] for e in info.value.errors()] == [f"Value error, {message}"]


@pytest.mark.parametrize(("parameters", "key"), [
    ({"fft_size": 32}, "fft_size"), ({"fft_size": 65537}, "fft_size"),
    ({"window": "hamming"}, "window"), ({"detection_threshold_db": -1}, "detection_threshold_db"),
    ({"coherence_frames": 0}, "coherence_frames"), ({"smoothing": 0}, "smoothing"),
    ({"smoothing": 1.5}, "smoothing"), ({"channel": "C"}, "channel"),
    ({"frequency_min": -1}, "frequency_min"),
])
def test_parameter_limits(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("peak_finder", parameters)
    assert [e["loc"] for e in info.value.errors()] == [("parameters", key)]


@pytest.mark.parametrize(("parameters", "key", "maximum"), [
    ({"frequency_min": 1000, "frequency_max": 30000}, "frequency_max", 30000.0),
    ({"center_frequency": 23900, "bandwidth": 600}, "center_frequency", 24200.0),
])
def test_a_band_beyond_nyquist_names_the_parameter_written(parameters: dict[str, Any],
                                                           key: str, maximum: float) -> None:
    with pytest.raises(NodeParameterError) as info:
        build("peak_finder", parameters, node_id="pk")
    assert info.value.key == key
    assert str(info.value) == (f"node 'pk' (peak_finder): frequency_max {maximum} Hz is above "
                               f"the Nyquist frequency 24000.0 Hz of a 48000 Hz stream")


def test_a_band_without_a_usable_bin_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        build("peak_finder", {"fft_size": 64, "frequency_min": 1000, "frequency_max": 1100},
              node_id="pk")
    assert not isinstance(info.value, NodeParameterError)
    assert str(info.value).startswith("node 'pk' (peak_finder): frequency range [1000, 1100] Hz "
                                      "holds no usable FFT bin (bin width 750 Hz)")


def feed(node: Any, signal_of: Any, frames: int = FRAMES, timestamp: float = 50.0) -> None:
    for k in range(frames):
        node.process(signal_of(k), frame(sequence=k, timestamp=timestamp + k,
                                         wall_time=1e9 + k))


def stereo_tones(k: int) -> np.ndarray:
    return np.vstack([tone(2010.0, 0.1, start=k * N), tone(1800.0, 0.3, start=k * N)])


def test_a_tone_in_the_band_is_found() -> None:
    state = ComputingState()
    node = build("peak_finder", node_id="pk", state=state)
    assert node.computing
    feed(node, stereo_tones)
    result = state.get("pk")
    assert result is not None
    assert (result.kind, result.sequence, result.monotonic, result.timestamp) == (
        "peak", FRAMES - 1, 50.0 + FRAMES - 1, 1e9 + FRAMES - 1)
    assert result.detected
    assert result.frequency_hz == pytest.approx(2010.0, abs=FS / 4096 / 10)
    assert result.amplitude == pytest.approx(0.1, rel=0.01)
    assert result.amplitude_db == pytest.approx(-20.0, abs=0.1)
    assert result.snr_db > 40
    assert 0 < node.get_status()["detections"] < FRAMES  # none until the FFT window is full


def test_channel_b_and_the_band_decide_which_tone() -> None:
    state = ComputingState()
    node = build("peak_finder", {"channel": "B"}, node_id="pk", state=state)
    feed(node, stereo_tones)
    result = state.get("pk")
    assert result is not None and result.frequency_hz == pytest.approx(1800.0, abs=1.0)
    assert result.amplitude == pytest.approx(0.3, rel=0.01)
    # a band that holds neither tone finds nothing
    outside = build("peak_finder", {"frequency_min": 3000, "frequency_max": 4000},
                    node_id="out", state=state)
    feed(outside, stereo_tones)
    missed = state.get("out")
    assert missed is not None and not missed.detected
    assert outside.get_status() == {"detections": 0, "spectrum_method": "band",
                                    "band_form": "folded"}


def test_noise_alone_is_not_detected() -> None:
    state = ComputingState()
    node = build("peak_finder", node_id="pk", state=state)
    rng = np.random.default_rng(3)
    feed(node, lambda k: rng.standard_normal((2, N)) * 0.01, frames=12)
    result = state.get("pk")
    assert result is not None and not result.detected
    assert np.isnan(result.frequency_hz) and np.isnan(result.amplitude)
    assert node.get_status() == {"detections": 0, "spectrum_method": "band",
                                 "band_form": "folded"}


def test_the_input_passes_through() -> None:
    node = build("peak_finder", input_channels=1)
    signal = tone(2000.0)[None, :]
    assert node.process(signal, frame()) is signal
    assert node.output_channels == 1


def test_the_spectrum_is_copied_only_while_someone_looks() -> None:
    node = build("peak_finder", node_id="pk")
    tap = node.spectrum_tap
    now = time.monotonic()
    feed(node, stereo_tones, timestamp=now)
    assert tap.read() is None  # nobody asked before: nothing was copied
    assert tap.wanted_until > now
    # the node compares its frame's capture time with the interest's end
    node.process(stereo_tones(FRAMES), frame(sequence=FRAMES, timestamp=tap.wanted_until))
    snapshot = tap.read()
    assert snapshot is not None and snapshot.sequence == FRAMES
    assert snapshot.search_hz == (1500.0, 2500.0)
    strongest = snapshot.frequencies_hz[int(np.argmax(snapshot.amplitudes))]
    assert strongest == pytest.approx(2010.0, abs=FS / 4096)
    assert snapshot.amplitudes.max() == pytest.approx(0.1, rel=0.2)
    # a frame captured after the interest lapsed is not copied
    node.process(stereo_tones(0), frame(sequence=FRAMES + 1, timestamp=tap.wanted_until + 0.1))
    later = tap.read()
    assert later is not None and later.sequence == FRAMES


def test_narrow_band_uses_the_band_path_and_finds_the_same_peak() -> None:
    state = ComputingState()
    params = {"center_frequency": 2000.0, "bandwidth": 600.0}
    band = build("peak_finder", params, node_id="band", state=state)
    fft = build("peak_finder", {**params, "spectrum": "fft"}, node_id="fft", state=state)
    assert band.get_status()["spectrum_method"] == "band"
    assert fft.get_status() == {"detections": 0, "spectrum_method": "fft", "band_form": None}
    rng = np.random.default_rng(5)
    for k in range(6):  # the 4096-sample history fills after four frames
        x = rng.standard_normal((2, N)) * 0.01
        x[0] += 0.1 * np.sin(2 * np.pi * 2011.0 * np.arange(k * N, (k + 1) * N) / FS)
        band.process(x, frame(x, sequence=k))
        fft.process(x, frame(x, sequence=k))
    a, b = state.get("fft"), state.get("band")
    assert a is not None and b is not None and a.detected and b.detected
    assert b.frequency_hz == pytest.approx(a.frequency_hz, abs=1e-6)
    assert b.amplitude == pytest.approx(a.amplitude, rel=1e-9)
    assert b.snr_db == pytest.approx(a.snr_db, abs=1e-7)
