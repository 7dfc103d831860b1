"""The action events on disk: a log line per crossing, a bounded rotated JSON-lines file, and
what survives a restart of the real appliance."""

from __future__ import annotations

import json
import logging
import time

from firmware.actions.event_log import ActionEventLog
from firmware.actions.event_store import EventStore, events_path
from firmware.app.appliance import Appliance
from tests.actions.test_builtin_actions import (
    STEP_FRAMES,
    handler,
    run_frames,
    scenario,
    wait_until,
)
from tests.conftest import graph_node


def test_store_rotates_and_stays_bounded(tmp_path):
    store = EventStore(tmp_path / "events.jsonl", max_bytes=2000, backups=2)
    for seq in range(1, 501):
        store.append({"seq": seq, "id": "relay", "kind": "trigger", "timestamp": float(seq),
                      "data": {"value": seq * 1.5}})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 3 * 2000
    kept = [e["seq"] for e in store.read()]
    assert kept == list(range(kept[0], 501))  # the newest, in order, none missing
    assert store.rotations > 2 and store.write_errors == 0


def test_a_torn_line_is_skipped_and_numbering_goes_on(tmp_path):
    path = tmp_path / "events.jsonl"
    log = ActionEventLog(store=EventStore(path))
    log.record("relay", "trigger", {"value": float("nan")})
    log.record("relay", "clear", {})
    log.close()
    with path.open("a") as out:
        out.write('{"seq": 3, "id": "rel')  # a power cut in the middle of a line
    again = ActionEventLog(store=EventStore(path))
    assert [(e.seq, e.kind) for e in again.entries()] == [(1, "trigger"), (2, "clear")]
    assert again.entries()[0].data == {"value": None}
    assert again.record("relay", "acknowledged", {}).seq == 3


def test_a_disk_that_refuses_writes_is_counted_not_raised(tmp_path):
    blocker = tmp_path / "events"
    blocker.write_text("a file where the directory should be")
    log = ActionEventLog(store=EventStore(blocker / "events.jsonl"))
    assert log.record("relay", "trigger", {}).seq == 1
    status = log.get_status()["store"]
    assert status["write_errors"] == 1 and status["last_error"]


def test_crossings_are_logged_and_survive_a_restart(make_doc, caplog):
    doc = make_doc(lambda d: scenario(d, [500.0, 3000.0, 500.0]))
    caplog.set_level(logging.INFO, logger="pafw.actions")
    appliance = Appliance(doc, realtime=False)
    try:
        run_frames(appliance, 3 * STEP_FRAMES)
        relay = handler(appliance, "alarm_relay")
        assert wait_until(lambda: relay.clears == 1)
    finally:
        appliance.stop()
    fired = [r for r in caplog.records if "alarm_relay: trigger high_gas fired" in r.message]
    cleared = [r for r in caplog.records if "alarm_relay: trigger high_gas cleared" in r.message]
    assert len(fired) == 1 and fired[0].levelno == logging.WARNING
    assert "above 2000 ppm" in fired[0].message and "concentration" in fired[0].message
    assert len(cleared) == 1 and cleared[0].levelno == logging.INFO
    assert "back past 2000 ppm with hysteresis 100 ppm" in cleared[0].message

    path = events_path(doc.config.paths.state_dir)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [(e["id"], e["kind"]) for e in lines]
    assert ("alarm_relay", "trigger") in kinds and ("alarm_relay", "clear") in kinds
    last_seq = lines[-1]["seq"]

    restarted = Appliance(doc, realtime=False)
    try:
        assert restarted.action_events.last_seq == last_seq
        assert restarted.action_events.get_status()["restored"] == len(lines)
        history = [e.kind for e in handler(restarted, "alarm_relay").history.recent()]
        assert history.count("trigger") == 1 and history.count("clear") == 1
        assert restarted.action_events.record("alarm_relay", "enabled", {}).seq == last_seq + 1
    finally:
        restarted.stop()


def test_a_slow_warm_up_is_not_a_data_timeout(make_doc, monkeypatch):
    """The kernels compile before the actions start: a first start on a Pi (seconds of
    compiling) must not fire every data timeout and light the fault LED."""
    def slow_timeout(data):
        scenario(data, [500.0])
        for trigger in graph_node(data, "status_led")["parameters"]["triggers"]:
            if trigger["type"] == "data_timeout":
                trigger["timeout_s"] = 2.0

    appliance = Appliance(make_doc(slow_timeout), realtime=True)
    warm_up = appliance.analyzer.warm_up

    def slow_warm_up(*args, **kwargs):
        seconds = warm_up(*args, **kwargs)
        time.sleep(3.0)  # a compile longer than the data timeout
        return seconds + 3.0

    monkeypatch.setattr(appliance.analyzer, "warm_up", slow_warm_up)
    try:
        appliance.start()
        led = handler(appliance, "status_led")
        assert wait_until(lambda: led.updates > 5, timeout=30)
    finally:
        appliance.stop()
    fired = [e for e in appliance.action_events.entries() if e.kind == "trigger"]
    assert fired == [] and led.triggers == 0
