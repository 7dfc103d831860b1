"""The appliance's calibration (firmware/app/calibration.py): built for the configured node,
the active record applied at start (a restart keeps it), a record made through another
signal chain refused at start with the reason, the YAML coefficients applying meanwhile."""

from __future__ import annotations

import time
from typing import Any

from firmware.app.appliance import Appliance
from firmware.calibration.manager import CalibrationManager
from tests.calibration.records import make_record
from tests.conftest import graph_node


def running(doc: Any) -> Appliance:
    appliance = Appliance(doc, realtime=True)
    appliance.start()
    return appliance


def manager_of(appliance: Appliance) -> CalibrationManager:
    assert appliance.calibration is not None
    return appliance.calibration


def wait_ppm(appliance: Appliance, lo: float, hi: float) -> float:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = appliance.analyzer.state.get("concentration")
        if result is not None and lo < result.concentration_ppm < hi:
            return float(result.concentration_ppm)
        time.sleep(0.05)
    raise AssertionError(f"no concentration in ({lo}, {hi})")


def constant(ppm: float) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["acquisition"]["simulator"]["concentration"] = {"profile": "constant",
                                                              "value_ppm": ppm}
        data["acquisition"]["simulator"]["calibration"] = [0.0, 50000.0]
        data["calibration"] = {"interval_days": 365}
    return change


def test_the_active_record_survives_a_restart_and_another_chain_is_refused(
        make_doc: Any) -> None:
    doc = make_doc(constant(1000.0))
    first = running(doc)
    try:
        manager = manager_of(first)
        record = make_record("20260101T000000Z-abc", coefficients=(0.0, 40000.0),
                             fingerprint=manager.fingerprint, created=time.time())
        manager.store.save(record)
        manager.activate(record.id, operator="Gus")
        wait_ppm(first, 780.0, 820.0)  # 1000 ppm of the cell read with 40000 A
    finally:
        first.stop()

    second = running(doc)
    try:
        assert manager_of(second).node.active.record_id == record.id
        wait_ppm(second, 780.0, 820.0)
        status = second.get_status()["calibration"]
        assert status["source"] == "record" and status["due"]["state"] == "ok"
        assert status["problem"] is None
    finally:
        second.stop()

    def more_gain(data: dict[str, Any]) -> None:
        constant(1000.0)(data)
        graph_node(data, "gain")["parameters"]["gain_db"] = 0.5

    third = running(make_doc(more_gain))
    try:
        manager = manager_of(third)
        assert manager.node.active.record_id is None
        assert "different signal chain" in (manager.problem or "")
        assert manager.store.active_id() == record.id  # refused, not forgotten
        assert third.analyzer.state.marks.flags == ("calibration_due",)
    finally:
        third.stop()


def test_no_concentration_node_no_calibration(make_doc: Any) -> None:
    def without(data: dict[str, Any]) -> None:
        graph = data["processing"]["default_graph"]
        graph["nodes"] = [n for n in graph["nodes"] if n["type"] not in (
            "concentration", "mqtt_action", "relay_action", "led_action")]
        graph["connections"] = [c for c in graph["connections"]
                                if c["to"] in {n["id"] for n in graph["nodes"]}]
        data["acquisition"]["simulator"]["calibration"] = [0.0, 50000.0]

    appliance = Appliance(make_doc(without), realtime=True)
    assert appliance.calibration is None and "calibration" not in appliance.status_parts
