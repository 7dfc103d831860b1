"""History ring buffer: order, capacity, resize, thread safety."""

from __future__ import annotations

import json
import threading

import pytest

from firmware.actions.history import HistoryBuffer, HistoryEntry
from firmware.errors import ActionError


def fill(buffer: HistoryBuffer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        buffer.record("update", {"i": i}, timestamp=1_700_000_000.0 + i)


def numbers(entries: list[HistoryEntry]) -> list[int]:
    return [e.data["i"] for e in entries]


def test_recent_is_chronological_newest_last() -> None:
    buffer = HistoryBuffer(10)
    fill(buffer, 5)
    assert numbers(buffer.recent()) == [0, 1, 2, 3, 4]
    assert numbers(buffer.recent(3)) == [2, 3, 4]
    assert numbers(buffer.recent(1)) == [4]
    assert numbers(buffer.recent(50)) == [0, 1, 2, 3, 4]
    assert buffer.recent(0) == [] and buffer.recent(-2) == []


def test_capacity_drops_the_oldest() -> None:
    buffer = HistoryBuffer(3)
    fill(buffer, 7)
    assert (len(buffer), buffer.capacity) == (3, 3)
    assert numbers(buffer.recent()) == [4, 5, 6]
    assert buffer.get_status() == {"capacity": 3, "size": 3, "appended": 7, "evicted": 4}


def test_resize_keeps_the_newest() -> None:
    buffer = HistoryBuffer(5)
    fill(buffer, 5)
    buffer.resize(2)
    assert numbers(buffer.recent()) == [3, 4] and buffer.capacity == 2
    assert buffer.evicted == 3
    buffer.resize(4)
    fill(buffer, 3, start=5)
    assert numbers(buffer.recent()) == [4, 5, 6, 7]


def test_clear_and_entry_dicts() -> None:
    buffer = HistoryBuffer(4)
    entry = buffer.record("trigger", {"trigger_name": "co2", "value": 1200.0},
                          timestamp=1_700_000_000.0)
    buffer.append(HistoryEntry(1_700_000_001.0, "outcome", {"success": True}))
    dicts = buffer.get_recent_entries(2)
    json.dumps(dicts)
    assert dicts[0] == {"timestamp": 1_700_000_000.0, "time": "2023-11-14T22:13:20.000+00:00",
                        "kind": "trigger", "data": {"trigger_name": "co2", "value": 1200.0}}
    assert dicts[1]["kind"] == "outcome" and entry.kind == "trigger"
    buffer.clear()
    assert len(buffer) == 0 and buffer.recent() == [] and buffer.appended == 2


def test_record_copies_its_data() -> None:
    buffer = HistoryBuffer(2)
    data = {"v": 1}
    buffer.record("update", data)
    data["v"] = 2
    assert buffer.recent()[0].data == {"v": 1}


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_capacity_validation(bad: object) -> None:
    with pytest.raises(ActionError, match=r"history capacity must be an integer >= 1, got"):
        HistoryBuffer(bad)  # type: ignore[arg-type]
    with pytest.raises(ActionError, match=r"history capacity"):
        HistoryBuffer(2).resize(bad)  # type: ignore[arg-type]


def test_concurrent_writers_readers_and_resizes() -> None:
    buffer = HistoryBuffer(100)
    writers, per_writer = 4, 5_000
    errors: list[BaseException] = []
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(per_writer):
            buffer.record("update", {"w": w, "i": i}, timestamp=float(i))

    def read() -> None:
        try:
            while not done.is_set():
                entries = buffer.recent(50)
                assert len(entries) <= 100
                for w in range(writers):  # each writer's entries stay in order
                    mine = [e.data["i"] for e in entries if e.data["w"] == w]
                    assert mine == sorted(mine)
                buffer.get_recent_entries(10)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    def resize() -> None:
        while not done.is_set():
            buffer.resize(60)
            buffer.resize(100)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    helpers = [threading.Thread(target=read) for _ in range(2)] + [threading.Thread(target=resize)]
    for t in helpers + threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in helpers:
        t.join()
    assert not errors, errors[0]
    assert buffer.appended == writers * per_writer
    assert buffer.appended - buffer.evicted == len(buffer) <= 100
