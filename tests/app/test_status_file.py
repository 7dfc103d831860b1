"""The status snapshot of `pafw run` (firmware/app/status_file.py): written atomically with
``state``, ``pid`` and ``written_at`` added and every value JSON-safe; read back as a dict or
None when missing, damaged or not an object; and ``process_alive`` for the snapshot's pid."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.app.status_file import (
    SNAPSHOT_NAME,
    process_alive,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)


def test_the_snapshot_lives_in_the_state_dir(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path) == tmp_path / SNAPSHOT_NAME == tmp_path / "status.json"


def test_a_snapshot_round_trips_with_state_pid_and_time(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"  # the directory is made on the way
    before = time.time()
    write_snapshot(path, {"frames": 120, "fault": None, "results": {"conc": {"ppm": 412.5}}},
                   state="running")
    snapshot = read_snapshot(path)
    assert snapshot is not None
    assert snapshot["state"] == "running" and snapshot["pid"] == os.getpid()
    assert before <= snapshot["written_at"] <= time.time()
    assert snapshot["frames"] == 120 and snapshot["results"] == {"conc": {"ppm": 412.5}}
    assert list(snapshot)[:3] == ["state", "pid", "written_at"]


def test_values_json_lacks_are_written_as_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_snapshot(path, {"cpu": math.nan, "rate": np.float32(2.5), "ids": (1, 2),
                          "path": tmp_path}, state="stopped")
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)  # strict JSON: no NaN token
    assert "NaN" not in text
    assert (raw["cpu"], raw["rate"], raw["ids"], raw["path"]) == (None, 2.5, [1, 2],
                                                                  str(tmp_path))


def test_a_new_snapshot_replaces_the_old_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_snapshot(path, {"frames": 1}, state="running")
    write_snapshot(path, {"frames": 2}, state="stopped")
    snapshot = read_snapshot(path)
    assert snapshot is not None and (snapshot["state"], snapshot["frames"]) == ("stopped", 2)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_reader_never_sees_a_partial_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    big = {"results": {f"node{i}": {"values": list(range(200))} for i in range(50)}}
    write_snapshot(path, big, state="running")
    done = threading.Event()
    seen: list[dict[str, object] | None] = []

    def writer() -> None:
        for n in range(100):
            write_snapshot(path, {**big, "n": n}, state="running")
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        seen.append(read_snapshot(path))
    thread.join()
    assert seen and all(s is not None and len(s["results"]) == 50 for s in seen)


def test_a_snapshot_that_cannot_be_written_raises_oserror(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(OSError):
        write_snapshot(blocker / "status.json", {}, state="running")


@pytest.mark.parametrize("content", [None, "", "{not json", '{"state": "runn', "[1, 2]", "42",
                                     '"running"', "null", b"\xff\xfe{}"])
def test_missing_damaged_or_non_object_snapshots_read_as_none(tmp_path: Path,
                                                              content: str | bytes | None
                                                              ) -> None:
    path = tmp_path / "status.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert read_snapshot(path) is None


def test_a_directory_in_place_of_the_snapshot_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "status.json").mkdir()
    assert read_snapshot(tmp_path / "status.json") is None


def test_process_alive_tells_running_from_gone() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: the pid names no process now
    assert not process_alive(child.pid)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may signal every process")
def test_a_process_of_another_user_counts_as_alive() -> None:
    assert process_alive(1)  # init: EPERM for an ordinary user, but it exists


@pytest.mark.parametrize("pid", [0, -1])
def test_pids_that_name_no_single_process_are_not_alive(pid: int) -> None:
    assert not process_alive(pid)
