"""user_scripts/sqlite_logger.py on the real appliance: one row per update in a bounded
table, events as they happen, a database readable while running and after the stop."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

STEP_FRAMES = 24
FRAMES = 3 * STEP_FRAMES
MAX_ROWS = 50


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


@pytest.fixture
def data_root(tmp_path):
    """Where the appliance keeps the actions' data directories: reachable by the workers'
    uids when they get their own (pytest's tmp_path is private to root), else the state
    directory's."""
    if os.geteuid() != 0:
        yield tmp_path / "state" / "python_actions" / "data"
        return
    with tempfile.TemporaryDirectory(prefix="pafw-data-") as tmp:
        os.chmod(tmp, 0o711)
        yield Path(tmp) / "actions"


def test_rows_per_update_bounded_and_readable(tmp_path, data_root):
    # a relative path: the action's persistent data directory (capabilities.data_mb)
    database = data_root / "datalog" / "co2.sqlite"
    node = docstring_node("sqlite_logger.py")
    assert node["parameters"]["capabilities"]["data_mb"] > 0
    node["parameters"]["python_config"].update(database="co2.sqlite", max_rows=MAX_ROWS,
                                               commit_interval_s=0.2)
    with example_run(tmp_path, "sqlite_logger.py", nodes=[node], data_dir=data_root, profile={
            "profile": "steps", "levels_ppm": [500.0, 3000.0, 500.0], "step_s": 2.0,
            "repeat": False}) as run:
        action = run.handler("datalog")
        run.frames(FRAMES)
        wait_until(lambda: action.successes == 2)  # trigger and clear logged
        with read_only(database) as db:  # another reader while the appliance writes
            assert [k for (k,) in db.execute("SELECT kind FROM events ORDER BY id")] == \
                ["trigger", "clear"]
        script = run.script_status("datalog")
    assert action.updates == FRAMES and action.updates_sent == FRAMES
    assert script["rows_written"] == FRAMES and script["max_rows"] == MAX_ROWS

    # after the stop (on_stop committed and closed): a plain SQLite file
    with read_only(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT id, sequence, node_id, detected, concentration_ppm, "
                          "frequency_hz, timestamp, time FROM measurements ORDER BY id"
                          ).fetchall()
        events = db.execute("SELECT kind, trigger_type, node_id, value, threshold "
                            "FROM events ORDER BY id").fetchall()
    assert len(rows) == MAX_ROWS  # bounded: the oldest FRAMES - MAX_ROWS were deleted
    ids = [r[0] for r in rows]
    assert ids == list(range(FRAMES - MAX_ROWS + 1, FRAMES + 1))
    sequences = [r[1] for r in rows]
    assert sequences == list(range(sequences[0], sequences[0] + MAX_ROWS))  # none skipped
    assert {r[2] for r in rows} == {"concentration"}
    assert all(r[6] > 1e9 and r[7].endswith("+00:00") for r in rows)
    ppm = [r[4] for r in rows]
    assert max(ppm) > 2700 and ppm[-1] < 700  # the kept rows span 3000 then 500 ppm
    assert all(abs(r[5] - 2000) < 50 for r in rows if r[3])
    assert [e[0] for e in events] == ["trigger", "clear"]
    assert events[0][1] == "concentration" and events[0][2] == "concentration"
    assert events[0][3] >= 2000.0 and events[0][4] == 2000.0 and events[1][3] < 2000.0
