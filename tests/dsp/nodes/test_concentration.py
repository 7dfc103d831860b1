"""The concentration node (firmware/dsp/nodes/concentration.py): its parameters' checks, how it
finds its amplitude source (named, or the nearest peak finder or lock-in upstream) and the
message when it cannot, and what it publishes for fresh, stale, undetected, clamped,
temperature-compensated and dB inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from firmware.errors import ConfigError
from firmware.state import ComputingResult, ComputingState
from tests.dsp.nodes.building import build, frame

UPSTREAM = {"upstream": ["input", "pk", "gain"],
            "types": {"input": "input", "pk": "peak_finder", "gain": "gain"}}


def peak(amplitude: float = 0.02, *, detected: bool = True, monotonic: float = 100.0,
         node_id: str = "pk") -> ComputingResult:
    return ComputingResult(node_id=node_id, kind="peak", timestamp=1.7e9, monotonic=monotonic,
                           sequence=41, detected=detected, frequency_hz=2001.0,
                           amplitude=amplitude if detected else math.nan,
                           amplitude_db=20 * math.log10(amplitude) if detected else math.nan,
                           snr_db=30.0, coherence=0.9)


def node_with(parameters: dict[str, Any] | None = None, **source: Any) -> tuple[Any,
                                                                                ComputingState]:
    state = ComputingState()
    node = build("concentration", {"polynomial_coefficients": [0.0, 50000.0],
                                   **(parameters or {})},
                 node_id="ppm", state=state, **UPSTREAM)
    state.publish(peak(**source))
    return node, state


def step(node: Any, state: ComputingState, *, timestamp: float = 100.5,
         temperature_c: float = math.nan) -> ComputingResult | None:
    f = frame(timestamp=timestamp)
    f.temperature_c = temperature_c
    signal = np.zeros((1, 8))
    assert node.process(signal, f) is signal  # a pass-through
    return state.get("ppm")


@pytest.mark.parametrize(("parameters", "message"), [
    ({"min_ppm": 100, "max_ppm": 100}, "max_ppm (100.0) must be above min_ppm (100.0)"),
    ({"max_ppm": -5}, "max_ppm (-5.0) must be above min_ppm (0.0)"),
    ({"polynomial_coefficients": [0, float("nan")]},
     "polynomial_coefficients must be finite numbers"),
    ({"polynomial_coefficients": [float("inf")]},
     "polynomial_coefficients must be finite numbers"),
])
def test_inconsistent_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("concentration", parameters, **UPSTREAM)
    assert [e["msg"] for e in info.value.errors()] == [f"Value error, {message}"]


@pytest.mark.parametrize(("parameters", "key"), [
    ({"polynomial_coefficients": []}, "polynomial_coefficients"),
    ({"polynomial_coefficients": [1, 2, 3, 4, 5, 6]}, "polynomial_coefficients"),
    ({"amplitude_unit": "volt"}, "amplitude_unit"),
    ({"temperature_coefficient_per_c": 2}, "temperature_coefficient_per_c"),
    ({"max_input_age_s": 0}, "max_input_age_s"),
])
def test_parameter_limits(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("concentration", parameters, **UPSTREAM)
    assert [e["loc"] for e in info.value.errors()] == [("parameters", key)]


def test_an_impossible_calibration_is_a_config_error_of_the_node() -> None:
    with pytest.raises(ConfigError, match=r"^node 'ppm' \(concentration\): min_ppm=inf must be "
                                          r"a finite number$"):
        build("concentration", {"min_ppm": float("inf")}, node_id="ppm", **UPSTREAM)


def test_the_source_is_the_nearest_amplitude_node_upstream() -> None:
    node = build("concentration", upstream=["input", "pk", "li", "gain"],
                 types={"pk": "peak_finder", "li": "lockin", "gain": "gain"})
    assert node.source_node == "li"
    assert build("concentration", **UPSTREAM).source_node == "pk"


def test_a_named_source_anywhere_in_the_graph() -> None:
    node = build("concentration", {"source_node": "other"}, upstream=["input"],
                 types={"other": "lockin"})
    assert node.source_node == "other"
    assert node.get_status() == {"source_node": "other", "stale_inputs": 0, "clamped": 0,
                                 "calibration_record": None, "coefficients": [0.0, 50000.0],
                                 "outside_calibrated_range": 0, "pressure_hpa": None}


@pytest.mark.parametrize(("parameters", "message"), [
    ({"source_node": "nope"}, "source_node 'nope' is not a node of the graph"),
    ({"source_node": "gain"}, "source_node 'gain' is a gain node; expected one of peak_finder, "
                              "lockin"),
])
def test_a_named_source_must_be_an_amplitude_node(parameters: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build("concentration", parameters, node_id="ppm", **UPSTREAM)
    assert str(info.value) == f"node 'ppm' (concentration): {message}"


def test_without_an_amplitude_node_upstream() -> None:
    with pytest.raises(ConfigError) as info:
        build("concentration", node_id="ppm", upstream=["input", "gain"],
              types={"gain": "gain"})
    assert str(info.value) == ("node 'ppm' (concentration): no peak_finder or lockin node "
                               "upstream; connect one before it or set source_node")


def test_a_fresh_detection_becomes_a_concentration() -> None:
    node, state = node_with({"polynomial_coefficients": [10.0, 50000.0, 1000.0]})
    assert node.computing and node.calibration == [10.0, 50000.0, 1000.0]
    result = step(node, state)
    assert result is not None
    assert result.concentration_ppm == pytest.approx(10.0 + 50000.0 * 0.02 + 1000.0 * 0.02 ** 2)
    # the rest is the source's, so a reading names what it came from
    assert (result.kind, result.source_node_id, result.sequence, result.timestamp,
            result.monotonic) == ("concentration", "pk", 41, 1.7e9, 100.0)
    assert (result.frequency_hz, result.amplitude, result.snr_db, result.coherence) == (
        2001.0, 0.02, 30.0, 0.9)
    assert result.detected and not result.clamped


def test_no_detection_publishes_no_concentration() -> None:
    node, state = node_with(detected=False)
    result = step(node, state)
    assert result is not None and not result.detected
    assert math.isnan(result.concentration_ppm) and not result.clamped


def test_a_stale_or_missing_source_publishes_nothing_and_is_counted() -> None:
    node, state = node_with({"max_input_age_s": 2.0}, monotonic=100.0)
    assert step(node, state, timestamp=102.5) is None
    assert step(node, state, timestamp=102.0) is not None  # exactly the limit is fresh
    assert node.get_status()["stale_inputs"] == 1
    empty = ComputingState()
    lonely = build("concentration", node_id="ppm", state=empty, **UPSTREAM)
    assert step(lonely, empty) is None
    assert lonely.get_status()["stale_inputs"] == 1


def test_the_result_is_clamped_to_the_range_and_counted() -> None:
    node, state = node_with({"max_ppm": 500.0})
    result = step(node, state)
    assert result is not None and result.concentration_ppm == 500.0 and result.clamped
    node, state = node_with({"polynomial_coefficients": [-2000.0, 50000.0], "min_ppm": 0.0})
    result = step(node, state)
    assert result is not None and result.concentration_ppm == 0.0 and result.clamped
    step(node, state)
    assert node.get_status()["clamped"] == 2


def test_temperature_from_the_frame_else_the_fixed_one() -> None:
    compensated = {"temperature_coefficient_per_c": 0.01, "reference_temperature_c": 25.0}
    node, state = node_with(compensated)
    result = step(node, state, temperature_c=35.0)
    # the amplitude is referred to 25 C: 0.02 / (1 + 0.01 * 10)
    assert result is not None and result.concentration_ppm == pytest.approx(50000 * 0.02 / 1.1)
    node, state = node_with({**compensated, "temperature_c": 15.0})
    result = step(node, state)
    assert result is not None and result.concentration_ppm == pytest.approx(50000 * 0.02 / 0.9)
    result = step(node, state, temperature_c=25.0)  # a reading wins over the fixed value
    assert result is not None and result.concentration_ppm == pytest.approx(50000 * 0.02)
    node, state = node_with(compensated)
    result = step(node, state)  # no reading at all: uncompensated
    assert result is not None and result.concentration_ppm == pytest.approx(50000 * 0.02)


def test_a_db_calibration_uses_the_amplitude_in_db() -> None:
    node, state = node_with({"amplitude_unit": "db", "polynomial_coefficients": [5000.0, 100.0],
                             "min_ppm": -1e9})
    result = step(node, state)
    assert result is not None
    assert result.concentration_ppm == pytest.approx(5000.0 + 100.0 * 20 * math.log10(0.02))


def test_calibration_is_a_copy() -> None:
    node, _ = node_with()
    node.calibration.append(1.0)
    assert node.calibration == [0.0, 50000.0]


def test_a_swapped_calibration_applies_from_the_next_frame_and_flags_its_range() -> None:
    node, state = node_with()
    state.marks.set_flags("calibration", ["calibration_due"])
    first = step(node, state)
    assert first is not None and first.concentration_ppm == pytest.approx(1000.0)
    assert first.flags == ("calibration_due",)
    node.use_calibration([0.0, 40000.0], record_id="r1", lower_ppm=0.0, upper_ppm=500.0)
    second = step(node, state)
    assert second is not None and second.concentration_ppm == pytest.approx(800.0)
    assert second.flags == ("calibration_due", "outside_calibrated_range")
    assert node.get_status()["calibration_record"] == "r1"
    assert node.get_status()["outside_calibrated_range"] == 1
    state.marks.set_flags("calibration", [])
    third = step(node, state)
    assert third is not None and third.flags == ("outside_calibrated_range",)
    node.use_yaml()
    fourth = step(node, state)
    assert fourth is not None and fourth.concentration_ppm == pytest.approx(1000.0)
    assert fourth.flags == ()


def test_invalid_coefficients_leave_the_running_calibration() -> None:
    from firmware.errors import DspError

    node, state = node_with()
    with pytest.raises(DspError, match="not a finite number"):
        node.use_calibration([0.0, math.inf], record_id="bad", lower_ppm=0, upper_ppm=1)
    assert node.active.record_id is None
    result = step(node, state)
    assert result is not None and result.concentration_ppm == pytest.approx(1000.0)


def test_pressure_configured_then_supplied_then_back() -> None:
    node, state = node_with({"pressure_coefficient_per_hpa": 0.001,
                             "reference_pressure_hpa": 1000.0, "pressure_hpa": 1100.0})
    result = step(node, state)
    assert result is not None and result.concentration_ppm == pytest.approx(1000.0 / 1.1)
    node.set_pressure(1000.0)
    result = step(node, state)
    assert result is not None and result.concentration_ppm == pytest.approx(1000.0)
    node.set_pressure(None)
    assert node.pressure_hpa == 1100.0
    with pytest.raises(Exception, match="expected a positive number"):
        node.set_pressure(-5.0)
