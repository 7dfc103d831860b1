"""The audio-source contract (firmware/dsp/sources/base.py): what ``AudioSource`` does for every
source (one reused frame, sequence numbers and timestamps, end of stream, open/close any number
of times, the status), the ``RealtimePacer``'s fixed grid, late frames and resyncs, and the
``deinterleave_scaled`` kernel the WAV and ALSA sources convert with."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from firmware.dsp.frame import Frame
from firmware.dsp.sources.base import AudioSource, RealtimePacer, deinterleave_scaled
from firmware.errors import SourceError


class Counting(AudioSource):
    """A real source of ``length`` frames; frame k holds the value k everywhere."""

    kind = "counting"

    def __init__(self, length: int = 3, **kwargs: Any) -> None:
        super().__init__(**{"sample_rate": 8000, "frame_size": 16, **kwargs})
        self.length = length
        self.calls: list[str] = []
        self._k = 0

    def warm_up(self) -> None:
        self.calls.append("warm_up")  # fills with numpy only: no kernel to compile

    def _open(self, frame: Frame) -> None:
        self.calls.append("open")
        self._k = 0

    def _fill(self, frame: Frame) -> bool:
        self.calls.append("fill")
        if self._k >= self.length:
            return False
        frame.samples[:] = self._k
        self._k += 1
        return True

    def _close(self) -> None:
        self.calls.append("close")

    def _extra_status(self) -> dict[str, Any]:
        return {"position": self._k}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_rate": 0}, "counting: sample_rate must be > 0, got 0"),
    ({"sample_rate": -8000}, "counting: sample_rate must be > 0, got -8000"),
    ({"frame_size": 0}, "counting: frame_size must be > 0, got 0"),
])
def test_impossible_geometry_is_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SourceError) as info:
        Counting(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, OSError)


def test_reading_needs_an_open_source() -> None:
    source = Counting()
    assert not source.is_open
    with pytest.raises(SourceError, match=r"^counting: read\(\) on a source that is not open; "
                                          r"call open\(\)$"):
        source.read()
    assert source.calls == []


def test_one_frame_refilled_with_sequence_and_timestamps() -> None:
    source = Counting(sample_rate=8000, frame_size=16)
    source.open()
    assert source.is_open and (source.sample_rate, source.frame_size) == (8000, 16)
    before_mono, before_wall = time.monotonic(), time.time()
    first = source.read()
    assert first is not None
    buffer = first.samples
    assert first.samples.shape == (2, 16) and first.sample_rate == 8000
    assert (first.sequence, first.samples[0, 0]) == (0, 0.0)
    assert before_mono <= first.timestamp <= time.monotonic()
    assert before_wall <= first.wall_time <= time.time()
    stamp = first.timestamp
    second = source.read()
    assert second is first and second.samples is buffer
    assert (second.sequence, second.samples[1, 15]) == (1, 1.0)
    assert second.timestamp >= stamp
    assert source.frames_read == 2
    source.close()


def test_end_of_stream_is_none_for_good() -> None:
    source = Counting(length=2)
    with source:
        assert [source.read() is not None for _ in range(2)] == [True, True]
        assert source.read() is None
        assert source.read() is None
        assert source.calls.count("fill") == 3  # the source is not asked again
        assert source.get_status()["ended"] is True
        assert source.frames_read == 2


def test_open_twice_is_one_open_and_close_is_idempotent() -> None:
    source = Counting()
    source.open()
    frame = source.read()
    source.open()
    assert source.read() is frame and frame is not None and frame.sequence == 1
    source.close()
    source.close()
    assert source.calls == ["open", "fill", "fill", "close"]
    assert not source.is_open


def test_reopening_starts_a_new_stream() -> None:
    source = Counting(length=1)
    with source:
        first = source.read()
        assert source.read() is None
    with source:
        again = source.read()
        assert again is not None and again is not first  # a fresh frame per open
        assert again.sequence == 0 and source.get_status()["ended"] is False
    assert source.frames_read == 2  # a counter over the source's life


def test_the_context_manager_closes_on_an_exception() -> None:
    source = Counting()
    with pytest.raises(RuntimeError), source:
        source.read()
        raise RuntimeError("consumer failed")
    assert not source.is_open and source.calls[-1] == "close"


def test_a_failing_open_leaves_the_source_closed() -> None:
    class Broken(Counting):
        def _open(self, frame: Frame) -> None:
            raise SourceError("broken: no such device")

    source = Broken()
    with pytest.raises(SourceError, match="no such device"):
        source.open()
    assert not source.is_open
    source.close()  # nothing to release
    assert source.calls == []


def test_status_is_a_fresh_json_safe_dict() -> None:
    source = Counting()
    with source:
        source.read()
        status = source.get_status()
    assert status == {
        "kind": "counting", "open": True, "ended": False, "sample_rate": 8000,
        "frame_size": 16, "realtime": False, "frames_read": 1, "overruns": 0, "reopens": 0,
        "pacer_resyncs": 0, "pacer_late_frames": 0, "last_error": None, "position": 1}
    assert json.loads(json.dumps(status)) == status
    status["frames_read"] = 99
    assert source.get_status()["frames_read"] == 1 and source.get_status()["open"] is False


def test_a_realtime_source_is_paced_to_its_frame_period() -> None:
    source = Counting(length=4, sample_rate=8000, frame_size=400, realtime=True)  # 50 ms
    with source:
        start = time.monotonic()
        stamps = []
        while (frame := source.read()) is not None:
            stamps.append(frame.timestamp)
    # frame k is due k periods after the first read began: a missing pacer fails this, a slow
    # machine only makes the run longer (late frames catch up with the grid, so only the
    # last one is bound)
    assert len(stamps) == 4 and stamps[-1] - start >= 4 * 0.05 - 1e-9
    assert source.get_status()["realtime"] is True


def test_a_realtime_source_makes_a_period_after_it_has_elapsed() -> None:
    """As a capture device: wait for the period, then produce it (producing first kept the
    DSP thread busy right after the control loop had been woken for the last results)."""
    source = Counting(length=2, sample_rate=8000, frame_size=400, realtime=True)
    fake = FakeClock()

    def sleep(s: float) -> None:
        source.calls.append("sleep")
        fake.sleep(s)

    with source:
        source._pacer = RealtimePacer(0.05, clock=fake.clock, sleep=sleep)
        source.read()
        source.read()
    waits_and_fills = [c for c in source.calls if c in ("sleep", "fill")]
    # each frame waits for its period to elapse, then is made
    assert waits_and_fills == ["sleep", "fill", "sleep", "fill"]


class FakeClock:
    """Time that moves only when the pacer sleeps (or the test moves it)."""

    def __init__(self, *, slept_fraction: float = 1.0, overshoot: float = 0.0003) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.slept_fraction = slept_fraction
        self.overshoot = overshoot

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        # sleeps overshoot a little (or, with slept_fraction < 1, wake early)
        self.now += s * self.slept_fraction + self.overshoot


def test_pacer_keeps_a_fixed_grid_without_drift() -> None:
    fake = FakeClock()
    pacer = RealtimePacer(0.1, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        fake.now += 0.02  # work per frame
        pacer.wait()
    # 100 periods after the first call, overshoot does not accumulate
    assert fake.now == pytest.approx(100.02 + 100 * 0.1, abs=0.001)
    assert pacer.late_frames == 0


def test_pacer_sleeps_again_when_woken_early() -> None:
    fake = FakeClock(slept_fraction=0.5)  # every sleep ends half way
    pacer = RealtimePacer(0.1, clock=fake.clock, sleep=fake.sleep)
    assert pacer.wait() == 0.0
    assert fake.now >= 100.1 and len(fake.sleeps) > 1


def test_pacer_counts_late_frames_and_resyncs_when_far_behind() -> None:
    fake = FakeClock()
    pacer = RealtimePacer(0.1, clock=fake.clock, sleep=fake.sleep, max_lag_s=0.5)
    pacer.wait()
    fake.now += 0.35  # behind, but within max_lag_s: no sleep, the frame is late
    sleeps = len(fake.sleeps)
    # due at 100.2; the first wait slept to 100.1003
    assert pacer.wait() == pytest.approx(0.1003 + 0.35 - 0.2, abs=1e-9)
    assert (pacer.late_frames, pacer.resyncs, len(fake.sleeps)) == (1, 0, sleeps)
    fake.now += 2.0
    assert pacer.wait() > 1.0
    assert pacer.resyncs == 1
    # the grid restarts at the resync: the next frame is due one period later
    resync_at = fake.now
    pacer.wait()
    assert fake.now == pytest.approx(resync_at + 0.1, abs=0.001)


def test_pacer_reset_and_disabled() -> None:
    fake = FakeClock()
    pacer = RealtimePacer(0.1, clock=fake.clock, sleep=fake.sleep)
    pacer.wait()
    fake.now += 10.0
    pacer.reset()  # a new grid: no lag, no resync
    start = fake.now
    assert pacer.wait() == 0.0 and pacer.wait() == 0.0
    assert pacer.resyncs == 0 and fake.now == pytest.approx(start + 0.2, abs=0.001)
    off = RealtimePacer(0.1, enabled=False, clock=fake.clock, sleep=fake.sleep)
    before = len(fake.sleeps)
    assert off.wait() == 0.0 and len(fake.sleeps) == before


@pytest.mark.parametrize("period", [0.0, -0.1])
def test_pacer_needs_a_positive_period(period: float) -> None:
    with pytest.raises(ValueError, match="period_s must be > 0"):
        RealtimePacer(period)


def test_deinterleave_stereo_with_scale_and_offset() -> None:
    src = np.array([1, -1, 2, -2, 3, -3], dtype=np.int16)
    out = np.full((2, 5), 9.0)
    deinterleave_scaled(src, 3, 2, 0.5, out, 1, False)
    assert out.tolist() == [[9.0, 0.5, 1.0, 1.5, 9.0], [9.0, -0.5, -1.0, -1.5, 9.0]]


def test_deinterleave_takes_the_first_two_of_more_channels() -> None:
    src = np.arange(8, dtype=np.int32)  # two frames of four channels
    out = np.zeros((2, 2))
    deinterleave_scaled(src, 2, 4, 1.0, out, 0, False)
    assert out.tolist() == [[0.0, 4.0], [1.0, 5.0]]


@pytest.mark.parametrize(("duplicate", "row_b"), [(True, [0.25, -0.5]), (False, [0.0, 0.0])])
def test_deinterleave_mono_fills_a_and_copies_or_zeroes_b(duplicate: bool,
                                                          row_b: list[float]) -> None:
    src = np.array([0.25, -0.5], dtype=np.float32)
    out = np.full((2, 2), 7.0)
    deinterleave_scaled(src, 2, 1, 1.0, out, 0, duplicate)
    assert out.tolist() == [[0.25, -0.5], row_b]
