"""JSON for what leaves the process (firmware/actions/mqtt/payload.py): ``encode_json`` never
raises on NaN, infinities, numpy values or unknown objects and writes compact UTF-8;
``stamped`` puts a valid ``ts`` and ``time`` first and drops a caller's ``seq``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from firmware.actions.mqtt.payload import encode_json, stamped
from firmware.state import ComputingResult, iso_utc


def test_encode_json_is_compact_utf8() -> None:
    data = encode_json({"gas": "CO₂", "ppm": 412.5, "ok": True, "none": None, "list": [1, 2]})
    assert data == '{"gas":"CO₂","ppm":412.5,"ok":true,"none":null,"list":[1,2]}'.encode()
    assert isinstance(data, bytes)


def test_encode_json_turns_what_json_lacks_into_null_or_plain_values() -> None:
    payload = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf,
               "f32": np.float32("nan"), "i64": np.int64(7), "arr": np.array([1.5, np.nan]),
               "bool": np.bool_(True), "tuple": (1, 2), 3: "int key",
               "when": datetime(2026, 12, 3, 7, 0, tzinfo=UTC), "obj": object}
    decoded = json.loads(encode_json(payload))
    assert decoded == {"nan": None, "inf": None, "ninf": None, "f32": None, "i64": 7,
                       "arr": [1.5, None], "bool": True, "tuple": [1, 2], "3": "int key",
                       "when": "2026-12-03T07:00:00+00:00", "obj": "<class 'object'>"}


def test_a_result_encodes_with_unknown_values_as_null() -> None:
    result = ComputingResult("conc", "concentration", 1.5, 2.0, 3, concentration_ppm=812.0)
    decoded = json.loads(encode_json(result.to_dict()))
    assert decoded["concentration_ppm"] == 812.0 and decoded["frequency_hz"] is None


def test_stamped_adds_ts_and_time_first() -> None:
    out = stamped({"value": 1, "node": "conc"})
    assert list(out) == ["ts", "time", "value", "node"]
    assert isinstance(out["ts"], float) and out["time"] == iso_utc(out["ts"])


def test_stamped_keeps_a_valid_ts_and_time_and_drops_seq() -> None:
    out = stamped({"seq": 9, "value": 1, "time": "given", "ts": 100})
    assert out == {"ts": 100, "time": "given", "value": 1}
    assert list(out) == ["ts", "time", "value"]
    assert stamped({"ts": 0.5})["time"] == "1970-01-01T00:00:00.500+00:00"


@pytest.mark.parametrize("bad_ts", [math.nan, math.inf, "100", True, None, [1]])
def test_stamped_replaces_a_ts_that_is_not_a_finite_number(bad_ts: object) -> None:
    out = stamped({"ts": bad_ts, "value": 1})
    assert isinstance(out["ts"], float) and math.isfinite(out["ts"]) and out["ts"] > 1e9
    assert out["time"] == iso_utc(out["ts"])


def test_stamped_replaces_a_time_that_is_not_a_string() -> None:
    assert stamped({"ts": 0, "time": 12})["time"] == "1970-01-01T00:00:00.000+00:00"


def test_stamped_does_not_change_its_argument() -> None:
    given = {"seq": 1, "value": 2}
    stamped(given)
    assert given == {"seq": 1, "value": 2}
