"""The tap (DSP-thread side) and the phase window (its average) of the measurement cycle."""

from __future__ import annotations

import math

import pytest

from firmware.app.cycle_average import (
    TAP_CAPACITY,
    CycleTap,
    PhaseWindow,
    average_node_id,
)
from firmware.state import ComputingResult, ComputingState


def result(node: str, sequence: int, phase: str | None, *, ppm: float = math.nan,
           amplitude: float = math.nan, detected: bool = True,
           monotonic: float = 10.0) -> ComputingResult:
    return ComputingResult(node, "concentration", 0.0, monotonic, sequence, detected,
                           amplitude=amplitude, concentration_ppm=ppm, phase=phase)


def test_the_tap_takes_each_new_measure_result_once_and_nothing_else() -> None:
    state = ComputingState()
    tap = CycleTap(state, ["co2", "peak"], frozenset({"measure"}))
    state.publish(result("co2", 1, "purge"))
    tap()
    state.publish(result("co2", 2, "measure"))
    tap()
    tap()  # no new result: nothing taken twice
    state.publish(result("other", 3, "measure"))  # not an averaged node
    tap()
    assert [(r.node_id, r.sequence) for r in tap.drain()] == [("co2", 2)]
    assert tap.drain() == []
    assert tap.frames == 4


def test_the_tap_publishes_what_the_cycle_leaves_on_the_dsp_thread() -> None:
    state = ComputingState()
    tap = CycleTap(state, ["co2"], frozenset({"measure"}))
    average = result("co2.cycle_average", 1, "measure")
    tap.publish_later(average)
    assert state.get("co2.cycle_average") is None  # not before the next frame
    tap()
    assert state.get("co2.cycle_average") is average


def test_a_full_tap_drops_the_oldest_and_counts() -> None:
    state = ComputingState()
    tap = CycleTap(state, ["co2"], frozenset({"measure"}))
    for sequence in range(TAP_CAPACITY + 3):
        state.publish(result("co2", sequence, "measure"))
        tap()
    taken = tap.drain()
    assert len(taken) == TAP_CAPACITY and tap.dropped == 3
    assert taken[0].sequence == 3


def test_the_window_averages_detected_results_of_its_phase() -> None:
    window = PhaseWindow("measure", "room", 2, {"co2": "concentration"}, 5.0)
    window.add([
        result("co2", 1, "measure", ppm=400.0, amplitude=0.01),
        result("co2", 2, "measure", ppm=410.0, amplitude=0.03),
        result("co2", 3, "measure", ppm=420.0, amplitude=0.02),
        result("co2", 4, "measure", ppm=9999.0, detected=False),  # no peak: left out
        result("co2", 5, "measure", ppm=9999.0, monotonic=4.0),  # an earlier window's
        result("co2", 6, "settle", ppm=9999.0),
    ])
    assert window.count("co2") == 4
    (average,) = window.averages(sequence=7, now_monotonic=20.0)
    assert average.node_id == "co2.cycle_average.room" and average.kind == "cycle_average"
    assert average.sequence == 7 and average.monotonic == 20.0 and average.detected
    assert average.concentration_ppm == pytest.approx(410.0)
    assert average.amplitude == pytest.approx(0.02)
    assert average.average is not None
    assert average.average.n == 3 and average.average.inlet == "room"
    assert average.average.cycle == 2
    assert average.average.concentration_std == pytest.approx(10.0)
    assert average.average.amplitude_std == pytest.approx(0.01)
    as_dict = average.to_dict()
    assert as_dict["average"]["n"] == 3 and as_dict["phase"] == "measure"


def test_a_window_without_results_gives_an_undetected_average() -> None:
    window = PhaseWindow("measure", None, 1, {"co2": "concentration"}, 0.0)
    window.add([result("co2", 1, "measure", ppm=400.0)])
    (one,) = window.averages(1, 1.0)
    assert one.average is not None and one.average.n == 1
    assert math.isnan(one.average.concentration_std)  # one value has no spread
    assert one.to_dict()["average"]["concentration_std"] is None
    (empty,) = PhaseWindow("measure", None, 1, {"co2": "concentration"}, 0.0).averages(2, 1.0)
    assert not empty.detected and math.isnan(empty.concentration_ppm)
    assert empty.average is not None and empty.average.n == 0


def test_average_node_ids() -> None:
    assert average_node_id("co2", None) == "co2.cycle_average"
    assert average_node_id("co2", "outdoor") == "co2.cycle_average.outdoor"
