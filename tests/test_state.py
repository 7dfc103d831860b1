"""ComputingState and its data (firmware/state.py): ``json_safe`` turns anything into plain
JSON types without raising, ``iso_utc`` formats epoch seconds, a ComputingResult is immutable
with NaN for unknown values (None once serialised), and ComputingState keeps the latest result
per node, counts what each node published and gives readers on other threads whole,
consistent results."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType

import numpy as np
import pytest

from firmware.state import ComputingResult, ComputingState, iso_utc, json_safe

# -- json_safe ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 10**30, 1.5, -0.0, "", "CO₂"])
def test_plain_json_values_pass_unchanged(value: object) -> None:
    assert json_safe(value) == value and type(json_safe(value)) is type(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"),
                                   np.float32("inf"), np.float16("-inf")])
def test_non_finite_floats_become_none(value: object) -> None:
    assert json_safe(value) is None


def test_numpy_values_become_python_values() -> None:
    converted = json_safe({"f32": np.float32(0.5), "i64": np.int64(-3), "u8": np.uint8(200),
                           "b": np.bool_(True), "arr": np.array([[1.0, np.nan], [np.inf, 2.0]]),
                           "ints": np.arange(3), "f64": np.float64(2.25)})
    assert converted == {"f32": 0.5, "i64": -3, "u8": 200, "b": True,
                         "arr": [[1.0, None], [None, 2.0]], "ints": [0, 1, 2], "f64": 2.25}
    assert type(converted["i64"]) is int and type(converted["b"]) is bool
    assert type(converted["f32"]) is float


def test_containers_become_lists_and_dicts_with_string_keys() -> None:
    converted = json_safe({1: (1, 2), None: {3}, 2.5: frozenset(), "m": MappingProxyType(
        {"x": [math.nan]}), "o": OrderedDict(a=1)})
    assert converted == {"1": [1, 2], "None": [3], "2.5": [], "m": {"x": [None]},
                         "o": {"a": 1}}


def test_times_become_iso_strings_and_other_objects_their_str() -> None:
    when = datetime(2026, 12, 3, 7, 0, 0, 250000, tzinfo=UTC)
    assert json_safe(when) == "2026-12-03T07:00:00.250000+00:00"
    assert json_safe(date(2026, 12, 3)) == "2026-12-03"
    assert json_safe(Decimal("1.10")) == "1.10"
    assert json_safe(b"\x00ab") == "b'\\x00ab'"
    assert json_safe(ValueError("bad")) == "bad"


def test_an_object_whose_tolist_fails_falls_back_to_its_str() -> None:
    class Broken:
        def tolist(self) -> list[int]:
            raise RuntimeError("no")

        def __str__(self) -> str:
            return "broken thing"

    assert json_safe([Broken()]) == ["broken thing"]


def test_the_result_always_serialises_as_strict_json() -> None:
    messy = {"a": [math.nan, np.float32("nan"), {"b": (np.inf, date(2026, 1, 1))}],
             7: object(), "s": {np.int8(1)}}
    text = json.dumps(json_safe(messy), allow_nan=False)
    assert json.loads(text)["a"][:2] == [None, None]


# -- iso_utc ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("epoch", "text"), [
    (0.0, "1970-01-01T00:00:00.000+00:00"),
    (1.2349, "1970-01-01T00:00:01.234+00:00"),  # milliseconds, cut not rounded
    (1_796_281_200.5, "2026-12-03T07:00:00.500+00:00"),
    (-0.5, "1969-12-31T23:59:59.500+00:00"),
])
def test_iso_utc(epoch: float, text: str) -> None:
    assert iso_utc(epoch) == text


# -- ComputingResult ----------------------------------------------------------------------------


def test_unknown_values_are_nan_and_serialise_as_none() -> None:
    result = ComputingResult("conc", "concentration", 1_796_281_200.5, 12.0, 7, detected=True,
                             concentration_ppm=812.5)
    assert math.isnan(result.frequency_hz) and math.isnan(result.snr_db)
    assert result.source_node_id is None and result.clamped is False
    as_dict = result.to_dict()
    assert as_dict["concentration_ppm"] == 812.5 and as_dict["frequency_hz"] is None
    assert as_dict["time"] == "2026-12-03T07:00:00.500+00:00"
    assert as_dict["sequence"] == 7 and as_dict["detected"] is True
    assert set(as_dict) == {*ComputingResult._fields, "time"}
    json.dumps(as_dict, allow_nan=False)


def test_a_result_cannot_be_changed() -> None:
    result = ComputingResult("peak", "peak", 0.0, 0.0, 1)
    with pytest.raises(AttributeError):
        result.amplitude = 1.0  # type: ignore[misc]
    changed = result._replace(amplitude=1.0)
    assert changed.amplitude == 1.0 and math.isnan(result.amplitude)


def test_age_counts_from_the_frames_monotonic_time() -> None:
    result = ComputingResult("peak", "peak", 0.0, 100.0, 1)
    assert result.age_s(102.5) == 2.5
    assert result.age_s() > 0  # against time.monotonic(): the frame is long past


# -- ComputingState -----------------------------------------------------------------------------


def result(node_id: str, sequence: int, ppm: float = 0.0) -> ComputingResult:
    return ComputingResult(node_id, "concentration", 0.0, float(sequence), sequence,
                           concentration_ppm=ppm)


def test_the_latest_result_per_node() -> None:
    state = ComputingState()
    assert state.get("conc") is None and state.snapshot() == {} and state.updates == 0
    state.publish(result("conc", 1, 400.0))
    state.publish(result("peak", 1))
    state.publish(result("conc", 2, 410.0))
    latest = state.get("conc")
    assert latest is not None and (latest.sequence, latest.concentration_ppm) == (2, 410.0)
    assert sorted(state.snapshot()) == ["conc", "peak"] and state.updates == 3


def test_a_snapshot_is_a_copy() -> None:
    state = ComputingState()
    state.publish(result("conc", 1))
    snapshot = state.snapshot()
    snapshot.clear()
    state.publish(result("new", 1))
    assert sorted(state.snapshot()) == ["conc", "new"] and snapshot == {}


def test_each_node_counts_what_it_published() -> None:
    state = ComputingState()
    assert state.published() == {}
    for seq in (1, 2, 3):
        state.publish(result("conc", seq))
    state.publish(result("peak", 1))
    counts = state.published()
    assert counts == {"conc": 3, "peak": 1} and state.updates == 4
    counts.clear()
    assert state.published() == {"conc": 3, "peak": 1}, "a copy"


def test_status_is_json_safe() -> None:
    state = ComputingState()
    state.publish(result("conc", 5, 812.5))
    status = state.get_status()
    assert status["updates"] == 1
    assert status["results"]["conc"]["concentration_ppm"] == 812.5
    assert status["results"]["conc"]["amplitude"] is None
    json.dumps(status, allow_nan=False)


def test_readers_on_other_threads_see_whole_results_in_order() -> None:
    state = ComputingState()
    state.publish(result("conc", 0, 0.0))
    done = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        last = -1
        while not done.is_set():
            for r in (state.get("conc"), state.snapshot()["conc"]):
                if r is None or r.concentration_ppm != r.sequence or r.monotonic != r.sequence:
                    problems.append(f"torn result {r}")
                elif r.sequence < last:
                    problems.append(f"went back from {last} to {r.sequence}")
                else:
                    last = r.sequence

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for seq in range(1, 20_001):
        state.publish(result("conc", seq, float(seq)))
    done.set()
    for t in readers:
        t.join()
    assert problems == []
    assert state.updates == 20_001
