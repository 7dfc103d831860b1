"""The scripts-directory watcher reports complete files only, once, after a quiet period."""

from __future__ import annotations

import os
import threading
import time

from firmware.app.file_watch import FileWatcher


def watch(tmp_path):
    seen: list[tuple[float, str, str]] = []
    changed = threading.Event()

    def on_change(path):
        seen.append((time.monotonic(), path.name, path.read_text()))
        changed.set()

    watcher = FileWatcher(tmp_path, on_change, debounce_s=0.1)
    watcher.start()
    return watcher, seen, changed


def test_saved_file_reported_once(tmp_path):
    watcher, seen, changed = watch(tmp_path)
    try:
        (tmp_path / "a.py").write_text("X = 1\n")
        assert changed.wait(30)
        time.sleep(0.4)
        assert [(name, text) for _, name, text in seen] == [("a.py", "X = 1\n")]
    finally:
        watcher.stop()


def test_slow_chunked_write_is_reported_only_when_closed(tmp_path):
    watcher, seen, changed = watch(tmp_path)
    body = "# " + "x" * 5000 + "\nVALUE = 2\n"
    try:
        with (tmp_path / "big.py").open("w") as fh:
            for i in range(0, len(body), 1000):
                fh.write(body[i:i + 1000])
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(0.3)  # slower than the debounce period
            closed_at = time.monotonic()
        assert changed.wait(30)
        time.sleep(0.3)
        assert len(seen) == 1
        reported_at, _, text = seen[0]
        assert text == body and reported_at >= closed_at
    finally:
        watcher.stop()


def test_rename_onto_a_script_is_reported_other_files_ignored(tmp_path):
    watcher, seen, changed = watch(tmp_path)
    try:
        (tmp_path / "notes.txt").write_text("not a script")
        staging = tmp_path / ".upload.tmp"
        staging.write_text("Y = 3\n")
        staging.rename(tmp_path / "b.py")
        assert changed.wait(30)
        time.sleep(0.3)
        assert [(name, text) for _, name, text in seen] == [("b.py", "Y = 3\n")]
    finally:
        watcher.stop()
