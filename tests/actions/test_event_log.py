"""ActionEventLog (firmware/actions/event_log.py): sequence numbers from 1, a bounded memory
that drops the oldest first, ``since`` for readers that poll (and learn what they missed),
thread-safe appends, the JSON-safe entry form, and what is read back from an EventStore at
start (sequence numbers go on; entries that are broken or out of order are skipped).

Rotation, torn lines and unwritable disks of the store itself are covered by
tests/actions/test_event_store.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from firmware.actions.event_log import ActionEventLog, ActionLogEntry
from firmware.actions.event_store import EventStore


def kinds(entries: list[ActionLogEntry]) -> list[str]:
    return [e.kind for e in entries]


def test_an_empty_log() -> None:
    log = ActionEventLog()
    assert log.last_seq == 0
    assert log.entries() == [] and log.since(0) == []
    assert log.get_status() == {"kept": 0, "capacity": 1000, "last_seq": 0, "restored": 0,
                                "store": None}


def test_entries_are_numbered_from_one_in_order() -> None:
    log = ActionEventLog()
    first = log.record("relay", "trigger", {"value": 2153.25}, timestamp=1_700_000_000.5)
    second = log.record("relay", "outcome", {"success": True})
    assert (first.seq, second.seq, log.last_seq) == (1, 2, 2)
    assert first == ActionLogEntry(1, "relay", "trigger", 1_700_000_000.5, {"value": 2153.25})
    assert second.timestamp >= first.timestamp  # "now" when no timestamp is given
    assert kinds(log.entries()) == ["trigger", "outcome"]


def test_to_dict_is_the_json_safe_stream_event() -> None:
    entry = ActionEventLog().record("led", "clear", {"trigger": "high"}, timestamp=0.25)
    as_dict = entry.to_dict()
    assert as_dict == {"seq": 1, "id": "led", "kind": "clear", "timestamp": 0.25,
                       "time": "1970-01-01T00:00:00.250+00:00", "data": {"trigger": "high"}}
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_since_gives_what_came_after_a_sequence_number() -> None:
    log = ActionEventLog()
    for kind in ("trigger", "outcome", "repeat", "outcome", "clear"):
        log.record("relay", kind, {})
    assert [e.seq for e in log.since(0)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.since(3)] == [4, 5]
    assert log.since(5) == [] and log.since(99) == []
    assert [e.seq for e in log.since(0, limit=2)] == [4, 5]  # the newest ``limit``
    assert [e.seq for e in log.since(1, limit=10)] == [2, 3, 4, 5]
    assert [e.seq for e in log.since(-1)] == [1, 2, 3, 4, 5]


def test_the_oldest_entries_go_first_and_a_late_reader_sees_the_gap() -> None:
    log = ActionEventLog(capacity=3)
    for i in range(10):
        log.record("relay", f"k{i}", {})
    assert [e.seq for e in log.entries()] == [8, 9, 10] and log.last_seq == 10
    newer = log.since(2)  # a reader that last saw seq 2
    assert [e.seq for e in newer] == [8, 9, 10]
    assert newer[0].seq - 2 - 1 == 5  # seq 3..7 are gone: the reader can tell how many
    assert log.get_status()["kept"] == 3 and log.get_status()["capacity"] == 3


def test_concurrent_appends_get_unique_consecutive_numbers() -> None:
    log = ActionEventLog(capacity=10_000)
    threads = [threading.Thread(target=lambda n=n: [log.record(f"a{n}", "outcome", {})
                                                    for _ in range(500)])
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in log.entries()]
    assert seqs == list(range(1, 4001)) and log.last_seq == 4000
    for n in range(8):
        assert sum(e.action_id == f"a{n}" for e in log.entries()) == 500


def test_entries_go_to_the_store_and_come_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = ActionEventLog(store=EventStore(path))
    log.record("relay", "trigger", {"value": 2500.0}, timestamp=100.0)
    log.record("relay", "outcome", {"success": False, "error": "RuntimeError: x"},
               timestamp=101.0)
    log.close()
    log.close()  # idempotent
    stored = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["seq"] for s in stored] == [1, 2] and stored[0]["time"].startswith("1970-")

    again = ActionEventLog(store=EventStore(path))
    assert again.restored == 2 and again.last_seq == 2
    assert again.entries() == log.entries()
    assert again.record("relay", "clear", {}).seq == 3
    status = again.get_status()
    assert (status["restored"], status["last_seq"], status["kept"]) == (2, 3, 3)
    assert status["store"]["written"] == 1 and status["store"]["path"] == str(path)


def test_a_record_after_close_opens_the_store_again(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = ActionEventLog(store=EventStore(path))
    log.record("relay", "trigger", {})
    log.close()
    log.record("relay", "clear", {})
    log.close()
    assert [json.loads(line)["kind"] for line in path.read_text().splitlines()] == [
        "trigger", "clear"]


def test_restoring_keeps_only_the_newest_capacity(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = ActionEventLog(store=EventStore(path))
    for i in range(7):
        log.record("relay", f"k{i}", {})
    log.close()
    small = ActionEventLog(capacity=3, store=EventStore(path))
    assert [e.seq for e in small.entries()] == [5, 6, 7]
    assert small.restored == 3 and small.last_seq == 7


def write_lines(path: Path, lines: list[object]) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                            for x in lines))


def test_restoring_skips_broken_entries_and_never_reorders(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = {"seq": 1, "id": "relay", "kind": "trigger", "timestamp": 10.0, "data": {"v": 1}}
    write_lines(path, [
        good,
        {"seq": 2, "id": "relay", "kind": "clear"},  # no timestamp
        {"seq": "x", "id": "relay", "kind": "clear", "timestamp": 11.0},  # seq not a number
        {"seq": 3, "id": "relay", "kind": "clear", "timestamp": None},
        {"seq": 4, "id": "relay", "kind": "clear", "timestamp": 12.0, "data": [1, 2]},
        {"seq": 5, "id": "relay", "kind": "repeat", "timestamp": 13.0},  # no data: {}
        {"seq": 3, "id": "relay", "kind": "edited", "timestamp": 14.0},  # back in time
        {"seq": 5, "id": "relay", "kind": "duplicate", "timestamp": 15.0},
        [6, "relay"],  # not an object
        {"seq": 6, "id": "relay", "kind": "outcome", "timestamp": 16.0, "data": None},
    ])
    log = ActionEventLog(store=EventStore(path))
    assert [(e.seq, e.kind) for e in log.entries()] == [(1, "trigger"), (5, "repeat"),
                                                         (6, "outcome")]
    assert log.entries()[0].data == {"v": 1}
    assert log.entries()[1].data == {} and log.entries()[2].data == {}
    assert log.restored == 3 and log.record("relay", "clear", {}).seq == 7


def test_a_restored_entry_with_an_impossible_time_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_lines(path, [
        '{"seq": 1, "id": "relay", "kind": "trigger", "timestamp": "nan"}',
        {"seq": 2, "id": "relay", "kind": "trigger", "timestamp": 1e20},
        {"seq": 3, "id": "relay", "kind": "clear", "timestamp": 20.0},
    ])
    log = ActionEventLog(store=EventStore(path))
    assert [e.to_dict()["seq"] for e in log.since(0)] == [3]
