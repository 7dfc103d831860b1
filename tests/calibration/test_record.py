"""Calibration records (firmware/calibration/record.py): JSON round trip, schema versions,
malformed documents, and the signal chain's fingerprint."""

from __future__ import annotations

import json
from typing import Any

import pytest

from firmware.app.analyzer import graph_specs
from firmware.calibration.errors import CalibrationError
from firmware.calibration.record import (
    CalibrationRecord,
    chain_fingerprint,
    new_record_id,
    signal_chain,
)
from firmware.config.loader import ConfigDocument
from tests.calibration.records import make_record
from tests.conftest import graph_node


def test_a_record_survives_a_json_round_trip() -> None:
    record = make_record("20260101T000000Z-aa")
    document = json.loads(json.dumps(record.to_dict()))
    assert document["schema"] == 1 and document["signal_chain"]["fingerprint"] == "f" * 64
    assert document["points"][1]["cylinder"] == "C1"
    assert CalibrationRecord.from_dict(document) == record


def test_a_newer_schema_or_a_missing_key_is_refused() -> None:
    document = make_record("x").to_dict()
    with pytest.raises(CalibrationError, match="schema 2 is newer"):
        CalibrationRecord.from_dict({**document, "schema": 2})
    del document["fit"]
    with pytest.raises(CalibrationError, match="malformed calibration record: KeyError"):
        CalibrationRecord.from_dict(document)


def test_ids_sort_by_time() -> None:
    assert new_record_id(0.0).startswith("19700101T000000Z-")
    assert new_record_id(0.0) < new_record_id(86400.0)


def chain_of(make_doc: Any, change: Any = None) -> dict[str, Any]:
    doc: ConfigDocument = make_doc(change)
    cfg = doc.config
    return signal_chain(graph_specs(doc), "concentration",
                        sample_rate=cfg.acquisition.sample_rate,
                        frame_size=cfg.acquisition.frame_size)


def test_the_chain_covers_what_changes_the_amplitude_and_nothing_else(make_doc: Any) -> None:
    base = chain_of(make_doc)
    assert [n["id"] for n in base["nodes"]] == ["input", "bandpass", "gain", "differential",
                                                "peak_finder"]
    assert base["calibrated_node"]["amplitude_unit"] == "linear"

    def gain(data: dict[str, Any]) -> None:
        graph_node(data, "gain")["parameters"]["gain_db"] = 6.0

    def coefficients(data: dict[str, Any]) -> None:
        graph_node(data, "concentration")["parameters"]["polynomial_coefficients"] = [0, 1]

    def threshold(data: dict[str, Any]) -> None:
        graph_node(data, "concentration")["parameters"]["max_ppm"] = 9000.0

    assert chain_fingerprint(chain_of(make_doc, gain)) != chain_fingerprint(base)
    assert chain_fingerprint(chain_of(make_doc, coefficients)) == chain_fingerprint(base)
    assert chain_fingerprint(chain_of(make_doc, threshold)) == chain_fingerprint(base)
