"""Outbox: order, bounded drop-oldest, persistence across reopen and kill -9, threads, locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from firmware.actions.mqtt.outbox import Outbox, OutboxError
from tests.paths import REPO


def fill(box: Outbox, n: int, start: int = 0) -> list[int]:
    return [box.add("t/x", b"m%d" % i, qos=1, retain=False) for i in range(start, start + n)]


def test_messages_come_back_in_insertion_order_and_are_removed_by_row_id(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=100) as box:
        ids = fill(box, 5)
        assert ids == sorted(ids) and len(box) == 5
        pending = box.pending(10)
        assert [m.payload for m in pending] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert [m.row_id for m in pending] == ids
        assert pending[0].topic == "t/x" and pending[0].qos == 1 and pending[0].retain is False
        assert [m.payload for m in box.pending(2)] == [b"m0", b"m1"]
        assert [m.payload for m in box.pending(10, after=ids[2])] == [b"m3", b"m4"]
        assert box.remove(ids[1]) is True
        assert box.remove(ids[1]) is False  # already gone: no error, no count change
        assert [m.payload for m in box.pending(10)] == [b"m0", b"m2", b"m3", b"m4"]
        assert len(box) == 4


def test_full_outbox_drops_the_oldest_and_counts_them(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=3) as box:
        fill(box, 5)
        assert [m.payload for m in box.pending(10)] == [b"m2", b"m3", b"m4"]
        assert len(box) == 3 and box.dropped == 2
        status = box.get_status()
        assert status["pending"] == 3 and status["dropped"] == 2 and status["max_messages"] == 3
    with Outbox(tmp_path / "o.sqlite3", max_messages=2) as box:  # smaller limit on reopen
        box.add("t/x", b"new", qos=1, retain=False)
        assert [m.payload for m in box.pending(10)] == [b"m4", b"new"]
        assert box.dropped == 4  # persisted across the reopen
    closed = box.get_status()  # a final status after the close keeps the counters
    assert closed["closed"] and closed["dropped"] == 4 and closed["pending"] == 2


def test_contents_sequence_and_row_ids_survive_reopening(tmp_path):
    path = tmp_path / "state" / "o.sqlite3"  # parent dirs are created
    with Outbox(path, max_messages=10) as box:
        assert [box.next_seq() for _ in range(3)] == [1, 2, 3]
        seq, row = box.add_sequenced("t/y", lambda s: b"seq=%d" % s, qos=1, retain=True)
        (stored,) = box.pending(10)
        assert seq == 4 and stored.row_id == row and stored.payload == b"seq=4" and stored.retain
        last = fill(box, 2)[-1]
        for m in box.pending(10):
            box.remove(m.row_id)
        fill(box, 1)
    with Outbox(path, max_messages=10) as box:
        assert [m.payload for m in box.pending(10)] == [b"m0"]
        assert box.pending(10)[0].row_id > last  # ids never reused, even after deletes
        assert box.next_seq() == 5
        assert box.get_status()["last_seq"] == 5


def test_add_sequenced_is_atomic_and_rolls_back_on_error(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=10) as box:
        def boom(_seq: int) -> bytes:
            raise TypeError("payload cannot be built")

        with pytest.raises(TypeError):
            box.add_sequenced("t", boom, qos=1, retain=False)
        assert len(box) == 0 and box.next_seq() == 1  # the failed one burnt no number


def test_concurrent_writers_get_unique_sequence_numbers_in_row_order(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=10_000) as box:
        def writer() -> None:
            for _ in range(100):
                box.add_sequenced("t", lambda s: str(s).encode(), qos=1, retain=False)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        remover = threading.Thread(target=lambda: [box.remove(i) for i in range(1, 50)])
        for t in [*threads, remover]:
            t.start()
        for t in [*threads, remover]:
            t.join()
        seqs = [int(m.payload) for m in box.pending(1000)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == len(box)
        assert box.get_status()["last_seq"] == 400


def test_status_reports_the_age_of_the_oldest_message(tmp_path):
    with Outbox(tmp_path / "o.sqlite3", max_messages=10) as box:
        assert box.get_status()["oldest_age_s"] is None
        fill(box, 1)
        time.sleep(0.05)
        assert 0.04 <= box.get_status()["oldest_age_s"] < 5


def test_second_opener_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_messages=10)
    with pytest.raises(OutboxError, match="in use by another process"):
        Outbox(path, max_messages=10)
    box.close()
    box.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        box.add("t", b"x", qos=1, retain=False)
    Outbox(path, max_messages=10).close()


def test_unreadable_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match=r"cannot open the MQTT outbox .*o.sqlite3"):
        Outbox(path, max_messages=10)
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "p.sqlite3", max_messages=0)


def test_committed_messages_survive_kill_9(tmp_path):
    path = tmp_path / "o.sqlite3"
    script = (
        "import sys, time, pathlib\n"
        "from firmware.actions.mqtt.outbox import Outbox\n"
        "box = Outbox(pathlib.Path(sys.argv[1]), max_messages=100)\n"
        "for i in range(20):\n"
        "    box.add_sequenced('t', lambda s: b'%d' % s, qos=1, retain=False)\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Outbox(path, max_messages=100) as box:  # the lock died with the process
        assert [int(m.payload) for m in box.pending(100)] == list(range(1, 21))
        assert box.next_seq() == 21
