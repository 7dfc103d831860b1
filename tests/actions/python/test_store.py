"""A PythonAction's persistent store (firmware/actions/python/store.py): get/set/delete/keys
of JSON values, durable across a new store on the same file, key and value checks with
messages, the size cap (a refused write changes nothing, in memory or on disk), and what
happens to an unreadable file."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from firmware.actions.python.store import KEY_MAX_CHARS, ScriptStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "python_actions" / "co2_alert" / "store.json"


def test_a_new_store_is_empty_and_writes_nothing(path: Path) -> None:
    store = ScriptStore(path, max_bytes=1024)
    assert store.keys() == [] and store.get("x") is None and store.get("x", 5) == 5
    assert store.delete("x") is False
    assert not path.exists()
    assert store.get_status() == {"keys": 0, "bytes": 2, "max_bytes": 1024, "writes": 0,
                                  "recovered": None}


def test_values_round_trip_and_survive_a_new_store(path: Path) -> None:
    store = ScriptStore(path, max_bytes=4096)
    values: dict[str, Any] = {"alerts_sent": 3, "last": {"ppm": 2104.7, "time": "2026-12-03"},
                              "flags": [True, None, "x"], "ratio": 0.5, "name": "CO₂"}
    for key, value in values.items():
        store.set(key, value)
    store.set("alerts_sent", 4)  # overwrite
    assert store.get("alerts_sent") == 4 and store.get("last") == values["last"]
    assert store.keys() == sorted(values)
    assert json.loads(path.read_text(encoding="utf-8"))["alerts_sent"] == 4
    again = ScriptStore(path, max_bytes=4096)
    stored = again.keys()
    assert {k: again.get(k) for k in stored} == {**values, "alerts_sent": 4}
    assert store.get_status()["writes"] == 6 and store.get_status()["keys"] == 5


def test_delete_removes_durably(path: Path) -> None:
    store = ScriptStore(path, max_bytes=1024)
    store.set("a", 1)
    store.set("b", 2)
    assert store.delete("a") is True and store.delete("a") is False
    assert store.keys() == ["b"]
    assert ScriptStore(path, max_bytes=1024).keys() == ["b"]
    assert store.get_status()["writes"] == 3  # a delete of a missing key writes nothing


def test_no_temporary_file_is_left_behind(path: Path) -> None:
    store = ScriptStore(path, max_bytes=1024)
    store.set("a", 1)
    store.delete("a")
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.json"]


@pytest.mark.parametrize("key", ["", "k" * (KEY_MAX_CHARS + 1), 5, None, ("a",), b"a"])
def test_bad_keys_are_refused_by_every_method(path: Path, key: Any) -> None:
    store = ScriptStore(path, max_bytes=1024)
    expected = f"store keys are non-empty strings of at most {KEY_MAX_CHARS} characters, got"
    for call in (lambda: store.get(key), lambda: store.set(key, 1), lambda: store.delete(key)):
        with pytest.raises(ValueError, match=expected):
            call()
    assert not path.exists()


def test_the_longest_key_is_accepted(path: Path) -> None:
    store = ScriptStore(path, max_bytes=1024)
    store.set("k" * KEY_MAX_CHARS, 1)
    assert store.keys() == ["k" * KEY_MAX_CHARS]


@pytest.mark.parametrize(("value", "match"), [
    (math.nan, "Out of range float values are not JSON compliant"),
    ({"x": math.inf}, "Out of range float"),
    ({1, 2}, "Object of type set is not JSON serializable"),
    (b"bytes", "Object of type bytes"),
    (object(), "Object of type object"),
])
def test_values_that_are_not_json_are_refused_by_key(path: Path, value: Any, match: str
                                                     ) -> None:
    store = ScriptStore(path, max_bytes=1024)
    with pytest.raises(ValueError, match=f"store value for 'k' is not JSON: {match}"):
        store.set("k", value)
    assert store.keys() == [] and not path.exists()


def test_a_circular_value_is_refused(path: Path) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="store value for 'k' is not JSON: Circular reference"):
        ScriptStore(path, max_bytes=1024).set("k", loop)


def test_a_write_over_the_cap_is_refused_and_changes_nothing(path: Path) -> None:
    store = ScriptStore(path, max_bytes=100)
    store.set("a", "x" * 40)
    on_disk = path.read_bytes()
    with pytest.raises(ValueError, match=r"store would hold \d+ bytes, above its cap of 100 "
                                         r"\(store_max_kb\); delete keys first"):
        store.set("b", "y" * 60)
    with pytest.raises(ValueError, match="above its cap"):
        store.set("a", "x" * 120)  # growing an existing key counts too
    assert store.keys() == ["a"] and store.get("a") == "x" * 40
    assert path.read_bytes() == on_disk
    assert store.get_status()["bytes"] <= 100 and store.get_status()["writes"] == 1
    store.set("a", "short")  # shrinking is always possible
    store.set("b", "y" * 60)
    assert store.keys() == ["a", "b"]


def test_the_cap_is_the_size_of_the_file(path: Path) -> None:
    store = ScriptStore(path, max_bytes=200)
    store.set("a", "x" * 50)
    store.set("b", [1, 2, 3])
    assert len(path.read_bytes()) == store.get_status()["bytes"] <= 200


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    store = ScriptStore(path, max_bytes=100_000)
    threads = [threading.Thread(target=lambda n=n: [store.set(f"t{n}-{i}", i)
                                                    for i in range(20)]) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.keys()) == 80
    assert len(ScriptStore(path, max_bytes=100_000).keys()) == 80


def test_a_file_without_an_object_starts_empty_and_is_replaced(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2, 3]")
    store = ScriptStore(path, max_bytes=1024)
    assert store.keys() == []
    store.set("a", 1)
    assert json.loads(path.read_text()) == {"a": 1}


def test_an_unreadable_file_is_kept_aside_with_a_message(path: Path, caplog) -> None:
    path.parent.mkdir(parents=True)
    path.write_text('{"alerts_sent": 3, "last": {"ppm": 21')  # cut short
    caplog.set_level(logging.WARNING, logger="pafw.store")
    store = ScriptStore(path, max_bytes=1024)
    message = (r"store .*store\.json was unreadable \(.*\); kept as .*store\.corrupt, "
               r"starting empty")
    assert re.fullmatch(message, store.get_status()["recovered"])
    assert any(re.fullmatch(message, r.getMessage()) for r in caplog.records)
    assert not path.exists()
    assert path.with_suffix(".corrupt").read_text().startswith('{"alerts_sent": 3')
    assert ScriptStore(path, max_bytes=1024).keys() == []  # the next store starts empty


def test_an_unreadable_file_leaves_an_empty_working_store(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    store = ScriptStore(path, max_bytes=1024)
    assert store.keys() == [] and path.with_suffix(".corrupt").exists()
