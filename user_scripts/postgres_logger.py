"""PostgreSQL / TimescaleDB logger: every measurement and every trigger/clear into tables of
one database that a whole fleet of analyzers may share.

* ``on_update``: each new result of the monitored nodes becomes one row of
  ``pafw_measurements`` (time, device, node, frame sequence, detected, concentration, peak
  frequency, amplitude, amplitude dB, SNR). Rows are batched: sent every
  ``flush_interval_s`` seconds or at ``batch_rows`` rows, in one transaction.
* ``on_trigger`` / ``on_clear``: one row of ``pafw_events`` (trigger, repeat or clear, the
  trigger's name and type, value, threshold, details as JSON), sent at once together with
  the measurements before it.
* **Schema**: created by the script on its first connection, under an advisory lock (a fleet
  starting together migrates once) and recorded in ``pafw_schema_version``. When the
  TimescaleDB extension is installed in the database, ``pafw_measurements`` becomes a
  hypertable on ``time``. The database role needs the right to create tables in the
  database (e.g. ``CREATE DATABASE pafw OWNER pafw``).
* **Nothing lost while the database is away** (a restart, a network cut, a wrong password
  being fixed): rows wait in memory and, when a flush fails, are appended to a spool file in
  the action's persistent data directory (``capabilities.data_mb``), so a worker restart, a
  hot reload or an appliance restart keeps them too. On reconnection the backlog is sent
  oldest first, ``batch_rows`` per transaction, at most ``flush_budget_s`` seconds per call.
  Each row has a primary key (device, node, time, sequence; events: device, action, trigger,
  kind, time) and is inserted with ``ON CONFLICT DO NOTHING``, so a batch sent again after a
  commit whose answer was lost is not stored twice. A worker killed while the database is
  reachable loses at most the rows of one ``flush_interval_s``. The backlog is bounded by
  ``max_pending_rows`` (the oldest are dropped and counted).
* **Status** (``script_status`` in the node status): ``connected``, ``pending_rows``,
  ``spooled_rows``, ``dropped_rows``, ``last_error`` (the database's own message, e.g.
  ``password authentication failed for user "pafw"``), ``rows_written``,
  ``events_written``, ``schema_version``, ``timescaledb``. A database that cannot be reached
  or refuses the login is a status, never a failed load: the script keeps trying every
  ``retry_s`` seconds (doubling up to ``retry_max_s``).

Needs psycopg 3 with its binary package in the appliance's Python environment: install pafw
with the ``postgres`` extra (``pip install 'pafw[postgres]'``: ``psycopg[binary]``, wheels
for x86-64 and arm64 Linux). Only ``psycopg`` is listed in ``allowed_imports``; the modules
psycopg loads itself (its compiled libpq binding, ``socket``, ``ssl``) need no listing. The
worker may connect to the granted ``host:port`` only; the name is resolved by the appliance
when the worker starts. The password comes from the environment (``${PAFW_DB_PASSWORD}``),
never from the file; ``sslmode`` is libpq's (``require`` or ``verify-full`` for a database
across a network; ``verify-full`` needs ``sslrootcert``, the CA's certificate in a file the
worker may read, e.g. ``/etc/ssl/certs/db-ca.pem``). Kerberos (GSSAPI) is off: the worker
cannot read a credential cache.

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node):

```yaml
- id: pglog
  type: python_action
  parameters:
    python_script_path: /user_scripts/postgres_logger.py
    python_class_name: PostgresLogger
    monitored_nodes: [concentration]
    concentration_threshold: 2000.0    # its triggers/clears go to pafw_events
    python_config:
      host: db.example.com
      port: 5432
      dbname: pafw
      user: pafw
      password: "${PAFW_DB_PASSWORD}"
      sslmode: prefer                  # require / verify-full across a network
      device_id: "${PAFW_DEVICE_ID:-lab1-cell}"   # one value per analyzer of the fleet
      batch_rows: 500
      flush_interval_s: 2.0
      retry_s: 1.0
      retry_max_s: 30.0
      max_pending_rows: 50000          # ~70 min at 11.7 results/s; ~25 MB in memory
    python_timeout_ms: 10000
    max_memory_mb: 128
    allowed_imports: [psycopg]
    capabilities:
      network: ["db.example.com:5432"]   # the database only
      data_mb: 64                        # the spool file while the database is away
```
"""

import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from firmware.actions.sdk import CustomPythonAction, PhotoacousticAPI

SPOOL = "pafw-postgres-spool.jsonl"
SCHEMA_LOCK = 0x70616677  # "pafw": pg_advisory_xact_lock key of the migration step

#: (version, statements): applied in order, each once per database
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS pafw_measurements (
            time timestamptz NOT NULL,         -- the frame's time
            device_id text NOT NULL,           -- python_config device_id
            node_id text NOT NULL,             -- computing node, e.g. concentration
            sequence bigint NOT NULL,          -- frame number (restarts with the appliance)
            detected boolean NOT NULL,         -- a valid peak was found
            concentration_ppm double precision,
            frequency_hz double precision,
            amplitude double precision,
            amplitude_db double precision,
            snr_db double precision,
            PRIMARY KEY (device_id, node_id, time, sequence))""",
        """CREATE TABLE IF NOT EXISTS pafw_events (
            time timestamptz NOT NULL,
            device_id text NOT NULL,
            action_id text NOT NULL,           -- the python_action node
            kind text NOT NULL,                -- trigger | repeat | clear
            trigger_name text NOT NULL,
            trigger_type text NOT NULL,        -- concentration, amplitude, data_timeout ...
            node_id text,                      -- the computing node of the value
            value double precision,
            threshold double precision,
            details jsonb,
            PRIMARY KEY (device_id, action_id, trigger_name, kind, time))""",
        "CREATE INDEX IF NOT EXISTS pafw_measurements_time ON pafw_measurements (time DESC)",
        "CREATE INDEX IF NOT EXISTS pafw_events_time ON pafw_events (time DESC)",
    ]),
]

INSERT = {
    "m": "INSERT INTO pafw_measurements (time, device_id, node_id, sequence, detected, "
         "concentration_ppm, frequency_hz, amplitude, amplitude_db, snr_db) "
         "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "e": "INSERT INTO pafw_events (time, device_id, action_id, kind, trigger_name, "
         "trigger_type, node_id, value, threshold, details) "
         "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
}


class PostgresLogger(CustomPythonAction):
    """Measurements and events into PostgreSQL, with a spool while it is away."""

    def __init__(self, api: PhotoacousticAPI) -> None:
        super().__init__(api)
        get = api.get_node_parameter
        self.conninfo = {
            "host": str(get("host", "127.0.0.1")), "port": int(get("port", 5432)),
            "dbname": str(get("dbname", "pafw")), "user": str(get("user", "pafw")),
            "password": str(get("password") or ""), "sslmode": str(get("sslmode", "prefer")),
            "connect_timeout": max(2, int(get("connect_timeout_s", 3))),
            "gssencmode": "disable", "application_name": f"pafw {api.node_id}",
            # a send the server does not acknowledge fails within 5 s (a frozen server or
            # a cut network), well within python_timeout_ms
            "tcp_user_timeout": 5000, "keepalives_idle": 30}
        if get("sslrootcert"):  # a CA file the worker may read, e.g. under /etc/ssl/
            self.conninfo["sslrootcert"] = str(get("sslrootcert"))
        self.device_id = str(get("device_id") or "pafw")
        self.batch_rows = int(get("batch_rows", 500))
        self.flush_interval_s = float(get("flush_interval_s", 2.0))
        self.flush_budget_s = float(get("flush_budget_s", 2.0))
        self.retry_s = float(get("retry_s", 1.0))
        self.retry_max_s = float(get("retry_max_s", 30.0))
        self.max_pending = int(get("max_pending_rows", 50_000))
        for name, value in (("batch_rows", self.batch_rows),
                            ("max_pending_rows", self.max_pending)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.nodes = set(api.get_monitored_node_ids())
        self.last_sequence: dict[str, int] = {}
        self.conn: Any = None
        self.schema_version: int | None = None
        self.timescaledb = False
        self.rows_written = self.events_written = self.batches = self.dropped = 0
        self.connects = self.failed_connects = 0
        self.last_error: str | None = None
        self.last_error_time: str | None = None
        self.last_flush = time.monotonic()
        self.next_attempt = 0.0  # monotonic time of the next connection attempt
        self.backoff_s = self.retry_s
        # the backlog, oldest first: ("m" | "e", row); the first `spooled` are in the file
        self.pending: list[tuple[str, list[Any]]] = []
        self.spooled = 0
        self.spool_error: str | None = None
        self.spool_lines = 0  # lines in the spool file (rows sent or dropped included)
        self._load_spool()

    # ------------------------------------------------------------------ the contract
    def on_update(self, computing_data: dict[str, Any]) -> None:
        for node_id, r in computing_data.items():
            if (self.nodes and node_id not in self.nodes) or \
                    self.last_sequence.get(node_id) == r["sequence"]:
                continue  # nothing new from this node
            self.last_sequence[node_id] = r["sequence"]
            self._add("m", [r["timestamp"], self.device_id, node_id, r["sequence"],
                            bool(r["detected"]), r.get("concentration_ppm"),
                            r.get("frequency_hz"), r.get("amplitude"),
                            r.get("amplitude_db"), r.get("snr_db")])
        if (len(self.pending) >= self.batch_rows
                or time.monotonic() - self.last_flush >= self.flush_interval_s):
            self._flush()

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self._event("repeat" if data.get("repeat") else "trigger", trigger_type, data)
        return True

    def on_clear(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self._event("clear", trigger_type, data)
        return True

    def on_stop(self) -> None:
        if self.conn is not None:  # a quick last batch; never a new connection here
            self._flush(connect=False)
        self._spool()
        self._close()

    def get_status(self) -> dict[str, Any]:
        params = self.conninfo
        return {
            "status": "connected" if self.conn is not None else "disconnected",
            "connected": self.conn is not None,
            "database": f"{params['user']}@{params['host']}:{params['port']}/"
                        f"{params['dbname']}",
            "device_id": self.device_id, "pending_rows": len(self.pending),
            "spooled_rows": self.spooled, "dropped_rows": self.dropped,
            "spool_error": self.spool_error, "last_error": self.last_error,
            "last_error_time": self.last_error_time, "rows_written": self.rows_written,
            "events_written": self.events_written, "batches": self.batches,
            "connects": self.connects, "failed_connects": self.failed_connects,
            "schema_version": self.schema_version, "timescaledb": self.timescaledb}

    # ------------------------------------------------------------------ the backlog
    def _event(self, kind: str, trigger_type: str, d: dict[str, Any]) -> None:
        self._add("e", [d["timestamp"], self.device_id, self.api.node_id, kind,
                        d.get("trigger_name") or trigger_type, trigger_type,
                        d.get("source_node_id"), d.get("value"), d.get("threshold"),
                        d.get("data") or {}])
        self._flush()  # events are rare and matter: send them at once

    def _add(self, table: str, row: list[Any]) -> None:
        self.pending.append((table, row))
        if len(self.pending) > self.max_pending:
            excess = len(self.pending) - self.max_pending
            del self.pending[:excess]
            self.dropped += excess
            self.spooled = max(0, self.spooled - excess)

    def _flush(self, *, connect: bool = True) -> None:
        """Send the backlog, oldest first, one transaction per ``batch_rows``; on failure
        keep it (and spool it)."""
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        if self.conn is None and (not connect or not self._connect()):
            self._spool()
            return
        started = time.monotonic()
        try:
            while self.pending and time.monotonic() - started < self.flush_budget_s:
                batch = self.pending[:self.batch_rows]
                with self.conn.transaction(), self.conn.cursor() as cur:
                    for table in ("m", "e"):
                        rows = [self._params(t, r) for t, r in batch if t == table]
                        if rows:
                            cur.executemany(INSERT[table], rows)
                del self.pending[:len(batch)]
                self.spooled = max(0, self.spooled - len(batch))
                measurements = sum(1 for t, _ in batch if t == "m")
                self.rows_written += measurements
                self.events_written += len(batch) - measurements
                self.batches += 1
        except psycopg.Error as exc:
            self._failed(exc, "insert")
            self._close()
            self._spool()
            return
        if not self.pending:
            self._clear_spool()

    @staticmethod
    def _params(table: str, row: list[Any]) -> list[Any]:
        out = [datetime.fromtimestamp(row[0], UTC), *row[1:]]
        if table == "e":
            out[-1] = Jsonb(out[-1])
        return out

    # ------------------------------------------------------------------ the connection
    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self.next_attempt:
            return False
        try:
            self.conn = psycopg.connect(autocommit=True, **self.conninfo)
            self._migrate()
        except psycopg.Error as exc:
            self._close()
            self.failed_connects += 1
            self._failed(exc, "connect")
            self.next_attempt = time.monotonic() + self.backoff_s
            self.backoff_s = min(self.retry_max_s, self.backoff_s * 2)
            return False
        self.connects += 1
        self.backoff_s = self.retry_s
        if self.last_error is not None:
            self.api.log_message("info", f"connected to {self.conninfo['host']}:"
                                         f"{self.conninfo['port']} again; sending "
                                         f"{len(self.pending)} pending rows")
        return True

    def _migrate(self) -> None:
        """Bring the schema to the newest version this script knows (once per database,
        whatever the number of analyzers starting at the same time)."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            # only what is missing: a role granted INSERT and SELECT on tables created by
            # another one (one role per analyzer) may not create anything
            if self._missing("pafw_schema_version"):
                self.conn.execute("CREATE TABLE pafw_schema_version ("
                                  "version integer PRIMARY KEY, "
                                  "applied_at timestamptz NOT NULL DEFAULT now())")
            row = self.conn.execute("SELECT coalesce(max(version), 0) "
                                    "FROM pafw_schema_version").fetchone()
            current = int(row[0])
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        self.conn.execute(statement)
                    self.conn.execute("INSERT INTO pafw_schema_version (version) "
                                      "VALUES (%s)", (version,))
                    current = version
                    self.api.log_message("info", f"database schema migrated to "
                                                 f"version {version}")
            self.timescaledb = self.conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone() is not None
            if self.timescaledb and self.conn.execute(
                    "SELECT 1 FROM timescaledb_information.hypertables "
                    "WHERE hypertable_name = 'pafw_measurements'").fetchone() is None:
                self.conn.execute("SELECT create_hypertable('pafw_measurements', 'time', "
                                  "if_not_exists => TRUE, migrate_data => TRUE)")
                self.api.log_message("info", "pafw_measurements is now a TimescaleDB "
                                             "hypertable")
        self.schema_version = current

    def _missing(self, table: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()[0]

    def _failed(self, exc: Exception, doing: str) -> None:
        message = " ".join(str(exc).split()) or type(exc).__name__
        text = f"{doing}: {type(exc).__name__}: {message}"
        if text != self.last_error:  # log each new problem once, not every retry
            self.api.log_message("error", f"PostgreSQL {text}; {len(self.pending)} rows "
                                          f"pending")
        self.last_error = text
        self.last_error_time = datetime.now(UTC).isoformat()

    def _close(self) -> None:
        if self.conn is not None:
            try:  # noqa: SIM105 - contextlib would need listing in allowed_imports
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None

    # ------------------------------------------------------------------ the spool file
    # The file holds every pending row not sent yet (the first `spooled` of the backlog),
    # possibly after rows already sent or dropped: replaying those is harmless (ON CONFLICT
    # DO NOTHING). It is appended to, emptied when the backlog is, and rewritten only when
    # it holds twice max_pending_rows lines.
    def _load_spool(self) -> None:
        """Rows a previous instance could not send (relative path: the data directory)."""
        try:
            with open(SPOOL, encoding="utf-8") as f:
                for line in f:
                    self.spool_lines += 1
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash mid-write
                    self.pending.append((entry[0], entry[1]))
        except FileNotFoundError:
            return
        except OSError as exc:
            self.spool_error = f"cannot read {SPOOL}: {exc}"
            return
        if len(self.pending) > self.max_pending:
            self.dropped += len(self.pending) - self.max_pending
            del self.pending[:len(self.pending) - self.max_pending]
        self.spooled = len(self.pending)
        if self.pending:
            self.api.log_message("info", f"{self.spooled} rows from the spool to send")

    def _spool(self) -> None:
        """Write the rows of the backlog that are not in the file yet."""
        new = len(self.pending) - self.spooled
        if new <= 0:
            return
        rewrite = self.spool_lines + new > 2 * self.max_pending
        rows = self.pending if rewrite else self.pending[self.spooled:]
        try:
            with open(SPOOL, "w" if rewrite else "a", encoding="utf-8") as f:
                f.writelines(json.dumps(entry, separators=(",", ":")) + "\n"
                             for entry in rows)
        except OSError as exc:  # no data directory granted, or it is full
            self.spool_error = f"cannot write {SPOOL} (capabilities.data_mb?): {exc}"
            return
        self.spool_lines = len(rows) + (0 if rewrite else self.spool_lines)
        self.spooled = len(self.pending)
        self.spool_error = None

    def _clear_spool(self) -> None:
        if not self.spool_lines:
            return
        try:
            with open(SPOOL, "w", encoding="utf-8"):
                pass
        except OSError as exc:
            self.spool_error = f"cannot empty {SPOOL}: {exc}"
            return
        self.spooled = self.spool_lines = 0
