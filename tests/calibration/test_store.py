"""Records on disk (firmware/calibration/store.py): save, load, activate, history, rollback,
and a power loss in the middle of activating one: the old record stays active (a real
process killed with SIGKILL while its write is under way)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from firmware.calibration.errors import CalibrationError, CalibrationNotFoundError
from firmware.calibration.store import RecordStore, atomic_write
from tests.calibration.records import make_record

ROOT = Path(__file__).resolve().parents[2]


def test_save_load_list_and_refuse_a_second_save(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    first, second = make_record("20260101T000000Z-aaaaaa"), make_record("20260102T000000Z-bb")
    store.save(second)
    store.save(first)
    assert store.ids() == [first.id, second.id]
    assert store.load(first.id) == first
    with pytest.raises(CalibrationError, match="exists already"):
        store.save(first)
    with pytest.raises(CalibrationNotFoundError, match="no calibration record 'zzz'"):
        store.load("zzz")
    with pytest.raises(CalibrationNotFoundError, match="is not a calibration record id"):
        store.load("../active")


def test_activation_history_and_rollback(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    a, b = make_record("20260101T000000Z-aa"), make_record("20260102T000000Z-bb")
    store.save(a)
    store.save(b)
    with pytest.raises(CalibrationError, match="nothing to roll back to"):
        store.previous_id()
    store.set_active(a.id, action="calibration", operator="Ada")
    assert store.previous_id() is None  # back to the YAML coefficients
    store.set_active(b.id, action="calibration")
    assert store.active_id() == b.id and store.previous_id() == a.id
    assert [h["id"] for h in store.history()] == [a.id, b.id]
    with pytest.raises(CalibrationNotFoundError):
        store.set_active("20990101T000000Z-xx", action="activate")
    assert store.active_id() == b.id


def test_a_malformed_pointer_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    store.active_path.write_text("{not json")
    with pytest.raises(CalibrationError, match=r"active\.json: not valid JSON"):
        store.active_id()


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.json"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from firmware.calibration import store as store_module
    from firmware.calibration.store import RecordStore

    store = RecordStore(Path(sys.argv[1]))
    mode = sys.argv[2]
    if mode == "block":
        real_replace = os.replace
        def stalled(src, dst):
            # the new pointer is written and fsynced; power goes before the rename
            Path(sys.argv[3]).write_text("ready")
            time.sleep(60)
            real_replace(src, dst)
        store_module.os.replace = stalled
        store.set_active(sys.argv[4], action="activate")
    else:
        ids = sys.argv[4:]
        i = 0
        Path(sys.argv[3]).write_text("ready")
        while True:
            store.set_active(ids[i % 2], action="activate")
            i += 1
""")


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "cal"), *args],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_ready(flag: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not flag.exists():
        assert proc.poll() is None, "writer exited early"
        assert time.monotonic() < deadline, "writer never got ready"
        time.sleep(0.01)


def test_kill_9_before_the_rename_keeps_the_old_record_active(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "cal")
    old, new = make_record("20260101T000000Z-old"), make_record("20260102T000000Z-new")
    store.save(old)
    store.save(new)
    store.set_active(old.id, action="calibration")
    flag = tmp_path / "ready"
    proc = spawn(tmp_path, "block", str(flag), new.id)
    wait_ready(flag, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    leftovers = [p.name for p in store.root.iterdir() if p.name.startswith(".active.json")]
    assert leftovers, "the kill came after the temporary file was written"
    assert store.active_id() == old.id
    assert json.loads(store.active_path.read_text())["active"] == old.id
    store.set_active(new.id, action="activate")  # the next write is not disturbed
    assert store.active_id() == new.id


def test_kill_9_at_any_moment_of_repeated_activations_leaves_a_valid_pointer(
        tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "cal")
    a, b = make_record("20260101T000000Z-aa"), make_record("20260102T000000Z-bb")
    store.save(a)
    store.save(b)
    store.set_active(a.id, action="calibration")
    for delay in (0.05, 0.13, 0.21):
        flag = tmp_path / f"ready-{delay}"
        proc = spawn(tmp_path, "loop", str(flag), a.id, b.id)
        wait_ready(flag, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert store.active_id() in (a.id, b.id)
        assert store.load(str(store.active_id())).id in (a.id, b.id)


def test_a_failed_write_is_a_refusal_and_keeps_the_old_pointer(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "cal")
    a, b = make_record("20260101T000000Z-aa"), make_record("20260102T000000Z-bb")
    store.save(a)
    store.save(b)
    store.set_active(a.id, action="calibration")
    # a directory where the temporary file goes: opening it for writing fails, even as root
    (store.root / f".active.json.tmp-{os.getpid()}").mkdir()
    with pytest.raises(CalibrationError, match=r"cannot write .*active\.json.*Is a directory; "
                                               r"nothing was changed"):
        store.set_active(b.id, action="activate")
    assert store.active_id() == a.id
