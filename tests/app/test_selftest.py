"""The self-test of a running appliance (firmware/app/selftest.py), on the real appliance with
its simulator paced in real time: at start it runs beside the DSP loop (the first result
does not wait for it), passes with the sample rate measured from the frames' arrival, and
leaves no flag; a failed check becomes a flag on every result until a test passes it; a DSP
loop that stops gives a report saying so instead of a hang. The frame collector copies what
the DSP thread hands it into its buffer and measures the rate from arrival times."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.app.appliance import Appliance
from firmware.app.selftest import FrameCollector, SelfTest, format_report, selftest_limits
from firmware.config.loader import ConfigDocument
from firmware.dsp.sources.wav import WavWriter
from tests.waiting import wait_until


@pytest.fixture
def start(make_doc: Callable[..., ConfigDocument]) -> Iterator[Callable[..., Appliance]]:
    started: list[Appliance] = []

    def build(change: Callable[[dict[str, Any]], None] | None = None) -> Appliance:
        def edit(data: dict[str, Any]) -> None:
            data["selftest"] = {"duration_s": 1.0}
            if change is not None:
                change(data)

        appliance = Appliance(make_doc(edit), realtime=True)
        started.append(appliance)
        return appliance

    yield build
    for appliance in started:
        appliance.stop()


def test_at_start_it_passes_beside_the_dsp_loop(start: Callable[..., Appliance]) -> None:
    appliance = start()
    first_frame: list[float] = []
    appliance.analyzer.frame_taps.append(
        lambda frame: first_frame.append(frame.wall_time) if not first_frame else None)
    appliance.start()
    wait_until(lambda: appliance.selftest.last is not None, what="the self-test at start")
    report = appliance.selftest.last
    assert report is not None
    assert report.trigger == "start" and report.passed, format_report(report.to_dict())
    checks = {c.name: c for c in report.checks}
    assert set(checks) == {"mic_a_noise_floor", "mic_b_noise_floor", "mic_a_clipping",
                           "mic_b_clipping", "channel_coherence", "resonance_frequency",
                           "sample_rate"}
    assert checks["sample_rate"].status == "pass"  # paced: measured from arrival times
    assert checks["sample_rate"].value == pytest.approx(48000.0, rel=0.01)
    assert checks["resonance_frequency"].value == pytest.approx(2000.0, abs=5.0)
    # the first result came a frame after the start, long before the test had its frames
    assert first_frame[0] < report.timestamp + report.duration_s - 0.5
    result = appliance.analyzer.state.get("concentration")
    assert result is not None and result.flags == ()
    status = appliance.get_status()["selftest"]
    assert status["runs"] == 1 and status["failures"] == 0 and status["last"]["passed"]


def test_a_failed_check_flags_every_result_until_a_test_passes(
        start: Callable[..., Appliance]) -> None:
    def misconfigured(data: dict[str, Any]) -> None:
        data["selftest"].update(resonance_hz=2100.0, band_hz=600.0)

    appliance = start(misconfigured)
    appliance.start()
    wait_until(lambda: appliance.selftest.last is not None, what="the self-test at start")
    assert appliance.selftest.last is not None
    assert appliance.selftest.last.failed == ["resonance_frequency"]
    state = appliance.analyzer.state
    seen = state.updates
    wait_until(lambda: state.updates > seen + 4, what="new results")
    for result in state.snapshot().values():
        assert result.flags == ("resonance_frequency",), result
    latest = state.get("concentration")
    assert latest is not None and latest.to_dict()["flags"] == ["resonance_frequency"]

    appliance.selftest.limits = dataclasses.replace(appliance.selftest.limits,
                                                    resonance_hz=2000.0)
    report = appliance.selftest.run("api")
    assert report.passed and report.trigger == "api"
    seen = state.updates
    wait_until(lambda: state.updates > seen + 4, what="new results")
    assert all(r.flags == () for r in state.snapshot().values())
    assert appliance.get_status()["selftest"]["failures"] == 1


def test_a_dsp_loop_that_stops_gives_a_report_not_a_hang(
        start: Callable[..., Appliance], tmp_path: Path) -> None:
    wav = tmp_path / "short.wav"
    with WavWriter(wav, sample_rate=48000, channels=2) as out:
        out.write(np.zeros((2, 4096 * 3)))

    def short_file(data: dict[str, Any]) -> None:
        data["acquisition"].update(source="wav", wav={"path": str(wav), "loop": False})
        data["selftest"]["at_start"] = False

    appliance = start(short_file)
    appliance.start()
    wait_until(appliance.analyzer.finished.is_set, what="the end of the file")
    report = appliance.selftest.run("api")
    assert report.failed == ["frames"]
    assert "the DSP loop stopped (the source ended)" in report.checks[0].message
    assert report.duration_s < 5.0


def test_the_collector_keeps_frames_and_measures_their_rate(
        make_doc: Callable[..., ConfigDocument]) -> None:
    from firmware.dsp.frame import Frame

    collector = FrameCollector(3, 4)
    frame = Frame.empty(4, 100)
    collector.tap(frame)  # not armed: ignored
    collector.arm()
    for k in range(4):  # the fourth comes after the buffer is full: ignored
        frame.samples[:] = k
        frame.sequence, frame.timestamp = 10 + k, 5.0 + 0.04 * k
        collector.tap(frame)
    assert collector.done.is_set()
    np.testing.assert_array_equal(collector.samples[0], [0] * 4 + [1] * 4 + [2] * 4)
    assert collector.measured_rate() == pytest.approx(100.0)
    collector.release()  # the buffers go with the test
    assert collector.samples.size == 0
    collector.tap(frame)  # released: ignored
    assert collector.samples.size == 0
    limits = selftest_limits(make_doc().config)
    assert (limits.resonance_hz, limits.band_hz) == (2000.0, 600.0)  # the peak finder's


def test_the_rate_follows_the_least_delayed_frames_not_a_late_first_one() -> None:
    """Frames of a 48 kHz source arrive 0-3 ms late at random, the first one 20 ms late and
    the next ones in a catch-up burst: first-to-last arrival reads the rate 2 % fast, the
    lower envelope of the arrival times reads it within 0.05 %."""
    from firmware.dsp.frame import Frame

    frame_size, rate, frames = 1024, 48000.0, 48
    rng = np.random.default_rng(7)
    produced = 100.0 + np.arange(frames) * frame_size / rate
    arrival = produced + rng.uniform(0.0, 0.003, frames)
    arrival[:3] = produced[2] + 0.020 + np.arange(3) * 1e-4  # a late start, then a burst
    collector = FrameCollector(frames, frame_size)
    frame = Frame.empty(frame_size, rate)
    collector.arm()
    for k in range(frames):
        frame.sequence, frame.timestamp = 500 + k, float(arrival[k])
        collector.tap(frame)
    first_to_last = (frames - 1) * frame_size / (arrival[-1] - arrival[0])
    assert abs(first_to_last / rate - 1.0) > 0.02
    assert collector.measured_rate() == pytest.approx(rate, rel=5e-4)


def test_limits_follow_a_lockin_when_there_is_no_peak_finder(
        make_doc: Callable[..., ConfigDocument]) -> None:
    def lockin(data: dict[str, Any]) -> None:
        for node in data["processing"]["default_graph"]["nodes"]:
            if node["id"] == "peak_finder":
                node["type"] = "lockin"
                node["parameters"] = {"reference_frequency": 1800.0}

    limits = selftest_limits(make_doc(lockin).config)
    assert (limits.resonance_hz, limits.band_hz) == (1800.0, 180.0)


def test_a_self_test_needs_no_running_appliance_to_be_built(
        make_doc: Callable[..., ConfigDocument]) -> None:
    doc = make_doc()
    appliance = Appliance(doc, realtime=True)
    try:
        test = appliance.selftest
        assert isinstance(test, SelfTest) and test.get_status() == {
            "running": None, "runs": 0, "failures": 0, "last": None}
    finally:
        appliance.stop()
