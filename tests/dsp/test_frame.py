"""The frame that flows from a source into the graph (firmware/dsp/frame.py): the buffer
``Frame.empty`` allocates, the derived size and duration, and the "unknown" defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.dsp.frame import Frame


def test_empty_allocates_a_zeroed_stereo_float64_buffer() -> None:
    frame = Frame.empty(4096, 48000)
    assert frame.samples.shape == (2, 4096)
    assert frame.samples.dtype == np.float64
    assert frame.samples.flags.c_contiguous and frame.samples.flags.writeable
    assert not frame.samples.any()
    assert frame.sample_rate == 48000
    assert (frame.sequence, frame.timestamp, frame.wall_time) == (0, 0.0, 0.0)


def test_truth_and_temperature_are_unknown_unless_a_source_knows_them() -> None:
    frame = Frame.empty(64, 8000)
    assert math.isnan(frame.truth_ppm) and math.isnan(frame.temperature_c)
    assert frame.extra == {}


def test_each_frame_has_its_own_buffer_and_extra() -> None:
    a, b = Frame.empty(64, 8000), Frame.empty(64, 8000)
    a.samples[0, 0] = 1.0
    a.extra["resonance_hz"] = 2000.0
    assert b.samples[0, 0] == 0.0 and b.extra == {}


@pytest.mark.parametrize(("size", "rate", "duration"), [(4096, 48000, 4096 / 48000),
                                                        (400, 8000, 0.05), (1, 1, 1.0)])
def test_frame_size_and_duration(size: int, rate: int, duration: float) -> None:
    frame = Frame.empty(size, rate)
    assert frame.frame_size == size and isinstance(frame.frame_size, int)
    assert frame.duration_s == pytest.approx(duration)


def test_size_follows_the_buffer_a_source_hands_in() -> None:
    frame = Frame(samples=np.zeros((2, 100)), sample_rate=1000)
    assert frame.frame_size == 100 and frame.duration_s == pytest.approx(0.1)


def test_frames_have_fixed_fields() -> None:
    """slots: a typo in a source (frame.sequnce = 3) raises instead of adding a field."""
    frame = Frame.empty(64, 8000)
    with pytest.raises(AttributeError):
        frame.sequnce = 3  # type: ignore[attr-defined]
