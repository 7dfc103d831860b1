"""user_scripts/postgres_logger.py on the real appliance against a real PostgreSQL server that
the test starts itself (tests/user_scripts/postgres_server.py): measurements and events
arrive and match the appliance's, a database restart in the middle loses no row, rows
spooled while the database was away survive the appliance's restart, and a wrong password is
a clear error in the script's status while the worker keeps running."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from tests.user_scripts.appliance_run import docstring_node, example_run
from tests.waiting import wait_until

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                                                "-e '.[dev]' or '.[postgres]')")

from tests.user_scripts.postgres_server import PostgresServer, find_bin_dir  # noqa: E402

ROLE, PASSWORD = "pafw", "db-secret-from-the-environment"
STEP_FRAMES = 24  # 2 s of simulated signal
FRAMES = 3 * STEP_FRAMES
STEPS = {"profile": "steps", "levels_ppm": [500.0, 3000.0, 500.0], "step_s": 2.0,
         "repeat": False}
_databases = count(1)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                  "./dev test installs Debian's postgresql)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bin_dir)
    try:
        server.init().start()
        yield server
    finally:
        server.close()


@pytest.fixture
def database(postgres) -> str:
    """A fresh database of this test, owned by the (non-superuser) role the script logs in
    with."""
    name = f"pafw_test_{next(_databases)}"
    postgres.create_database(name, ROLE, PASSWORD)
    return name


@pytest.fixture
def data_root(tmp_path):
    """Where the actions' data directories (the spool) live: reachable by the workers' uids
    when they get their own (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        yield tmp_path / "state" / "python_actions" / "data"
        return
    with tempfile.TemporaryDirectory(prefix="pafw-data-") as tmp:
        os.chmod(tmp, 0o711)
        yield Path(tmp) / "actions"


def logger_node(server: PostgresServer, database: str, **config: Any) -> dict[str, Any]:
    """The docstring's node, pointed at the test's server (granted that host:port only)."""
    node = docstring_node("postgres_logger.py")
    params = node["parameters"]
    assert params["python_config"]["password"] == "${PAFW_DB_PASSWORD}"
    assert params["allowed_imports"] == ["psycopg"]
    assert params["capabilities"]["data_mb"] > 0
    params["python_config"].update({
        "host": server.host, "port": server.port, "dbname": database, "user": ROLE,
        "device_id": "lab1-cell", "flush_interval_s": 0.2, "retry_s": 0.2,
        "retry_max_s": 1.0, **config})
    params["buffer_size"] = 1000  # the history keeps every update to compare with
    params["capabilities"]["network"] = [f"{server.host}:{server.port}"]
    return node


def run_logger(tmp_path: Path, data_root: Path, node: dict[str, Any],
               password: str = PASSWORD, profile: dict[str, Any] | None = None) -> Any:
    return example_run(tmp_path, "postgres_logger.py", nodes=[node], data_dir=data_root,
                       env={"PAFW_DB_PASSWORD": password}, profile=profile or STEPS)


def measurements(server: PostgresServer, database: str) -> list[tuple[Any, ...]]:
    with server.connect(database) as conn:
        return conn.execute(
            "SELECT sequence, node_id, device_id, detected, concentration_ppm, frequency_hz,"
            " extract(epoch FROM time)::float8 FROM pafw_measurements ORDER BY time, sequence"
        ).fetchall()


def events(server: PostgresServer, database: str) -> list[tuple[Any, ...]]:
    with server.connect(database) as conn:
        return conn.execute(
            "SELECT kind, trigger_name, trigger_type, node_id, value, threshold, action_id, "
            "device_id, details FROM pafw_events ORDER BY time").fetchall()


def measurement_count(server: PostgresServer, database: str) -> int:
    with server.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM pafw_measurements").fetchone()[0])


def updates(action: Any) -> list[dict[str, Any]]:
    """The results the appliance gave the action, as its history recorded them."""
    return [e.data for e in action.history.recent() if e.kind == "update"]


def frames_until(run: Any, done: Any, what: str = "the script's status") -> None:
    """One frame at a time (each update gives the script a chance to connect and send)
    until ``done(script_status)``."""

    def step() -> bool:
        run.frames(1)
        return bool(done(run.script_status("pglog")))

    wait_until(step, 120, what)


def test_measurements_and_events_arrive(tmp_path, data_root, postgres, database):
    with run_logger(tmp_path, data_root, logger_node(postgres, database)) as run:
        action = run.handler("pglog")
        run.frames(FRAMES)
        wait_until(lambda: action.successes == 2, 60)  # trigger and clear
        # the events were sent at once, with the measurements before them
        assert [e[0] for e in events(postgres, database)] == ["trigger", "clear"]
        assert measurement_count(postgres, database) >= 2 * STEP_FRAMES
        status = run.script_status("pglog")
        seen = updates(action)
    assert status["connected"] and status["last_error"] is None, status
    assert status["schema_version"] == 1 and status["timescaledb"] is False
    assert status["dropped_rows"] == 0 and status["spool_error"] is None

    # after the stop (on_stop sent the last batch): one row per result, as the appliance's
    rows = measurements(postgres, database)
    assert len(rows) == FRAMES == len(seen)
    assert [r[0] for r in rows] == [u["sequence"] for u in seen]
    assert {(r[1], r[2]) for r in rows} == {("concentration", "lab1-cell")}
    for row, update in zip(rows, seen, strict=True):
        assert row[3] == update["detected"]
        assert row[4] == pytest.approx(update["concentration_ppm"])
        assert row[5] == pytest.approx(update["frequency_hz"])
    assert max(r[4] for r in rows) > 2700 and rows[-1][4] < 700
    assert all(abs(r[5] - 2000) < 50 for r in rows if r[3])

    fired = [e.data for e in action.history.recent() if e.kind in ("trigger", "clear")]
    got = events(postgres, database)
    assert [(e[0], e[1], e[2], e[3], e[6], e[7]) for e in got] == [
        ("trigger", "concentration", "concentration", "concentration", "pglog", "lab1-cell"),
        ("clear", "concentration", "concentration", "concentration", "pglog", "lab1-cell")]
    assert [e[4] for e in got] == pytest.approx([f["value"] for f in fired])
    assert got[0][4] >= 2000.0 and got[0][5] == 2000.0 and got[1][4] < 2000.0
    assert got[0][8]["direction"] == "above"

    with postgres.connect(database) as conn:
        assert conn.execute("SELECT version FROM pafw_schema_version").fetchall() == [(1,)]


def test_a_database_restart_loses_no_row(tmp_path, data_root, postgres, database):
    with run_logger(tmp_path, data_root, logger_node(postgres, database),
                    profile={"profile": "constant", "value_ppm": 800.0}) as run:
        run.frames(STEP_FRAMES)
        wait_until(lambda: measurement_count(postgres, database) > 0, 60)
        postgres.stop()
        try:
            run.frames(STEP_FRAMES)  # frames keep coming while the database is down
            wait_until(lambda: not run.script_status("pglog")["connected"], 60,
                       "the script to notice the database is gone")
            down = run.script_status("pglog")
            run.frames(STEP_FRAMES)
        finally:
            postgres.start()

        frames_until(run, lambda s: s["connected"] and s["pending_rows"] == 0,
                     "the backlog sent after the restart")
        up = run.script_status("pglog")
        total = run.frames_done
    assert down["pending_rows"] > 0 and down["spooled_rows"] > 0, down
    assert down["last_error"] is not None
    assert up["connected"] and up["connects"] >= 2 and up["dropped_rows"] == 0, up

    sequences = [r[0] for r in measurements(postgres, database)]
    assert len(sequences) == total  # none lost, none twice
    assert sequences == list(range(sequences[0], sequences[0] + total))


def test_spooled_rows_survive_an_appliance_restart(tmp_path, data_root, postgres, database):
    node = logger_node(postgres, database)
    postgres.stop()
    try:
        with run_logger(tmp_path, data_root, node,
                        profile={"profile": "constant", "value_ppm": 800.0}) as run:
            run.frames(STEP_FRAMES)
            wait_until(lambda: run.script_status("pglog")["failed_connects"] > 0, 60)
            first = run.frames_done
    finally:  # on_stop wrote the backlog into the spool file of the data directory
        postgres.start()
    spool = data_root / "pglog" / "pafw-postgres-spool.jsonl"
    assert len(spool.read_text().splitlines()) == first

    with run_logger(tmp_path, data_root, node,
                    profile={"profile": "constant", "value_ppm": 800.0}) as run:
        run.frames(STEP_FRAMES)
        wait_until(lambda: measurement_count(postgres, database) >= first + 1, 60)
        second = run.frames_done
    rows = measurements(postgres, database)
    assert len(rows) == first + second  # the spooled rows of the first run, then the new
    assert spool.read_text() == ""


def test_the_backlog_is_bounded_the_oldest_rows_dropped(tmp_path, data_root, postgres,
                                                        database):
    kept = 10
    postgres.stop()
    try:
        with run_logger(tmp_path, data_root, logger_node(postgres, database,
                                                         max_pending_rows=kept),
                        profile={"profile": "constant", "value_ppm": 800.0}) as run:
            run.frames(STEP_FRAMES)
            full = run.script_status("pglog")
            postgres.start()
            frames_until(run, lambda s: s["connected"] and s["pending_rows"] == 0,
                         "the backlog sent")
            sent = [u["sequence"] for u in updates(run.handler("pglog"))]
            status = run.script_status("pglog")
    finally:
        if not postgres.running():
            postgres.start()
    assert full["pending_rows"] == kept and full["dropped_rows"] == STEP_FRAMES - kept
    dropped = status["dropped_rows"]  # more frames came before it got in again
    assert dropped >= STEP_FRAMES - kept and status["last_error"] is not None
    # the newest rows of the outage, then every row after it
    assert [r[0] for r in measurements(postgres, database)] == sent[dropped:]


def test_a_wrong_password_is_a_clear_status_error(tmp_path, data_root, postgres, database):
    with run_logger(tmp_path, data_root, logger_node(postgres, database),
                    password="not-the-password",
                    profile={"profile": "constant", "value_ppm": 800.0}) as run:
        run.frames(STEP_FRAMES)

        def refused() -> Any:
            status = run.script_status("pglog")
            return status["last_error"] and "password authentication failed" in \
                status["last_error"]

        wait_until(refused, 60, "the login refusal in the script's status")
        run.frames(4)
        script = run.script_status("pglog")
        node = run.status("pglog")
    assert not script["connected"] and script["failed_connects"] >= 1
    assert f'password authentication failed for user "{ROLE}"' in script["last_error"]
    assert script["pending_rows"] == STEP_FRAMES + 4 and script["dropped_rows"] == 0
    assert "not-the-password" not in str(script) and PASSWORD not in str(script)
    assert node["worker"]["state"] == "running" and node["worker"]["restarts"] == 0
    assert node["failures"] == 0 and node["worker"]["last_error"] is None
    with postgres.connect(database) as conn:  # it never got in: not even the schema
        assert conn.execute("SELECT to_regclass('pafw_measurements')").fetchone() == (None,)


def test_two_analyzers_share_the_database_one_with_insert_and_select_only(
        tmp_path, data_root, postgres, database):
    """The fleet's layout: a second analyzer (its own device_id and a role granted only
    INSERT and SELECT on the tables the owner created) writes into the same tables."""
    profile = {"profile": "constant", "value_ppm": 800.0}
    with run_logger(tmp_path, data_root, logger_node(postgres, database),
                    profile=profile) as run:
        frames_until(run, lambda status: status["pending_rows"] == 0)  # the tables exist
        first = run.frames_done
    postgres.create_role("analyzer_b", "b-secret")
    with postgres.connect(database) as conn:
        conn.execute("GRANT INSERT, SELECT ON pafw_measurements, pafw_events, "
                     "pafw_schema_version TO analyzer_b")
    node = logger_node(postgres, database, user="analyzer_b", device_id="analyzer-b")
    with run_logger(tmp_path, data_root, node, password="b-secret", profile=profile) as run:
        frames_until(run, lambda status: status["rows_written"] > 0)
        status = run.script_status("pglog")
        second = run.frames_done
    assert status["connected"] and status["last_error"] is None, status
    assert status["schema_version"] == 1
    devices = [r[2] for r in measurements(postgres, database)]
    assert devices.count("lab1-cell") == first and devices.count("analyzer-b") == second
