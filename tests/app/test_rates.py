"""RateSampler: the log's and the dashboard's frames/s agree, whatever their sampling."""

from __future__ import annotations

import time

import pytest

from firmware.app.rates import RateSampler


class FakeAnalyzer:
    """The counters RateSampler reads, advanced by the test (a clock it controls)."""

    frame_size = 4096
    sample_rate = 48000

    def __init__(self) -> None:
        self.frames = 0
        self.last_frame_done: float | None = None
        self.dsp_cpu_s = 0.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_one_second_samples_and_five_second_samples_agree(clock: list[float]) -> None:
    analyzer = FakeAnalyzer()
    fast = RateSampler(analyzer)  # the web server: every second
    slow = RateSampler(analyzer)  # the status line: every 5 s
    frame_s = 4096 / 48000  # 11.72 frames per second
    next_frame = clock[0] + frame_s
    for tick in range(1, 301):  # 30 s in steps of 0.1 s
        clock[0] = 1000.0 + tick * 0.1
        while next_frame <= clock[0]:
            analyzer.frames += 1
            analyzer.last_frame_done = next_frame
            analyzer.dsp_cpu_s += 0.002
            next_frame += frame_s
        if tick % 10 == 0:
            fast.sample()
            # a one-second window counts 11 or 12 frames: never 11.0 here
            assert fast.frames_per_s is not None
            if tick >= 60:
                assert fast.frames_per_s == pytest.approx(1 / frame_s, abs=0.02)
        if tick % 50 == 0:
            slow.sample()
    assert slow.frames_per_s == pytest.approx(1 / frame_s, abs=0.02)
    assert fast.realtime_factor == pytest.approx(1.0, abs=0.002)
    assert fast.dsp_cpu_percent == pytest.approx(100 * 0.002 / frame_s, rel=0.05)


def test_a_stall_reads_zero(clock: list[float]) -> None:
    analyzer = FakeAnalyzer()
    rates = RateSampler(analyzer)
    for second in range(1, 4):
        clock[0] = 1000.0 + second
        analyzer.frames += 12
        analyzer.last_frame_done = clock[0]
        rates.sample()
    assert rates.frames_per_s is not None and rates.frames_per_s > 10
    for second in range(4, 12):  # no frame any more
        clock[0] = 1000.0 + second
        rates.sample()
    assert rates.frames_per_s == 0.0
