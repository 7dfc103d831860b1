"""SQLite data logger: one row per measurement update, bounded, readable by any SQLite tool.

Every ``on_update`` with a new result of ``source_node`` adds one row to ``measurements``
(epoch and ISO 8601 UTC time, node, frame sequence, detected, concentration, peak frequency
and amplitude); triggers and clears go to ``events``. Each table keeps at most ``max_rows``
rows (the oldest are deleted), so the file stops growing. Rows are committed every
``commit_interval_s`` seconds and when the action stops (shutdown, hot reload), which spares
the SD card; a worker killed in between (timeout, memory) loses at most that much.

The database lives in the action's persistent data directory, granted with
``capabilities.data_mb`` (the worker may write nowhere else that survives a restart): a
relative ``database`` path is taken from there, i.e. ``<scripts.data_dir>/<node id>/``
(``/var/lib/pafw-worker/datalog/co2.sqlite`` on an appliance; without per-action uids
``<state_dir>/python_actions/data/<node id>/``). It is in WAL mode: you can read it while the
appliance writes, e.g. ``sqlite3 -readonly /var/lib/pafw-worker/datalog/co2.sqlite
"SELECT time, concentration_ppm FROM measurements ORDER BY id DESC LIMIT 10"``. Size
``data_mb`` above the database at ``max_rows`` (about 130 bytes a row) plus its WAL: a worker
whose directory outgrows the grant is stopped and reported. A database that cannot be
opened stops the script at load, with the reason in the node status (``last_error``).

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node):

```yaml
- id: datalog
  type: python_action
  parameters:
    python_script_path: /user_scripts/sqlite_logger.py
    python_class_name: SqliteLogger
    monitored_nodes: [concentration]
    concentration_threshold: 2000.0    # its triggers/clears go to the events table
    python_config:
      database: co2.sqlite             # in the action's data directory
      source_node: concentration
      max_rows: 500000                 # ~12 h at 11.7 results/s; ~60 MB
      commit_interval_s: 5.0
    allowed_imports: [sqlite3]
    capabilities:
      data_mb: 256                     # the persistent data directory
```
"""

import sqlite3
import time
from typing import Any

from firmware.actions.sdk import CustomPythonAction, PhotoacousticAPI

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    timestamp REAL NOT NULL,          -- epoch seconds of the frame
    time TEXT NOT NULL,               -- ISO 8601 UTC
    node_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    detected INTEGER NOT NULL,
    concentration_ppm REAL,           -- NULL when unknown
    frequency_hz REAL,
    amplitude REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    timestamp REAL NOT NULL,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,               -- trigger | repeat | clear
    trigger_name TEXT,
    trigger_type TEXT,
    node_id TEXT,
    value REAL,
    threshold REAL
);
"""


class SqliteLogger(CustomPythonAction):
    """Measurements and events into a size-bounded SQLite file."""

    def __init__(self, api: PhotoacousticAPI) -> None:
        super().__init__(api)
        monitored = api.get_monitored_node_ids()
        self.node = api.get_node_parameter("source_node") or (monitored[0] if monitored
                                                              else "concentration")
        self.path = str(api.get_node_parameter("database", "pafw-datalog.sqlite"))
        self.max_rows = int(api.get_node_parameter("max_rows", 500_000))
        self.commit_interval_s = float(api.get_node_parameter("commit_interval_s", 5.0))
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        self.db = sqlite3.connect(self.path, timeout=2.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()
        self.rows_written = self.events_written = self.commits = 0
        self.last_sequence: int | None = None
        self.last_commit = time.monotonic()
        self.pending = 0

    def on_update(self, computing_data: dict[str, Any]) -> None:
        r = computing_data.get(self.node)
        if r is None or r["sequence"] == self.last_sequence:
            return  # updated because of another monitored node: nothing new to log
        self.last_sequence = r["sequence"]
        self._insert("measurements", (
            r["timestamp"], r["time"], r["node_id"], r["sequence"], int(bool(r["detected"])),
            r.get("concentration_ppm"), r.get("frequency_hz"), r.get("amplitude")))
        self.rows_written += 1

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self._event("repeat" if data.get("repeat") else "trigger", trigger_type, data)
        return True

    def on_clear(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self._event("clear", trigger_type, data)
        return True

    def on_stop(self) -> None:
        self.db.commit()
        self.db.close()

    def get_status(self) -> dict[str, Any]:
        return {"status": "active", "database": self.path, "rows_written": self.rows_written,
                "events_written": self.events_written, "uncommitted": self.pending,
                "commits": self.commits, "max_rows": self.max_rows}

    # ------------------------------------------------------------------------------
    def _event(self, kind: str, trigger_type: str, d: dict[str, Any]) -> None:
        self._insert("events", (d["timestamp"], d["time"], kind, d.get("trigger_name"),
                                trigger_type, d.get("source_node_id"), d.get("value"),
                                d.get("threshold")))
        self.events_written += 1
        self._commit()  # events are rare and matter: keep them at once

    def _insert(self, table: str, row: tuple[Any, ...]) -> None:
        columns = {"measurements": "timestamp, time, node_id, sequence, detected, "
                                   "concentration_ppm, frequency_hz, amplitude",
                   "events": "timestamp, time, kind, trigger_name, trigger_type, node_id, "
                             "value, threshold"}[table]
        marks = ", ".join("?" * len(row))
        cursor = self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", row)
        # keep the newest max_rows rows (ids only grow: the oldest have the smallest)
        self.db.execute(f"DELETE FROM {table} WHERE id <= ?",
                        (cursor.lastrowid - self.max_rows,))
        self.pending += 1
        if time.monotonic() - self.last_commit >= self.commit_interval_s:
            self._commit()

    def _commit(self) -> None:
        self.db.commit()
        self.commits += 1
        self.pending = 0
        self.last_commit = time.monotonic()
