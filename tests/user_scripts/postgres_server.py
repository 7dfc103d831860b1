"""A private PostgreSQL server for the tests: Debian's binaries (the ``postgresql`` package,
which ``./dev test`` installs), ``initdb`` into a temporary directory, listening on 127.0.0.1
only on a free port (no Unix socket), password logins (SCRAM) only, stopped and started at
will (``pg_ctl``), removed afterwards.

PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` user of the Debian package (else ``nobody``), through ``setpriv``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.conftest import free_port

SUPERUSER, SUPERUSER_PASSWORD = "postgres", "superuser-secret"


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
                  if (Path(p).parent / "pg_ctl").exists()]
    return max(candidates, key=lambda p: int(p.parent.name), default=None)


class PostgresServer:
    """One cluster; ``start()``/``stop()`` may be called again and again."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.host, self.port = "127.0.0.1", free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pafw-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam("postgres")
            except KeyError:
                self.owner = pwd.getpwnam("nobody")
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.owner is not None:
            command = ["setpriv", f"--reuid={self.owner.pw_uid}",
                       f"--regid={self.owner.pw_gid}", "--clear-groups", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                cwd=self.root, check=False)
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}{log[-2000:]}")
        return result

    def init(self) -> PostgresServer:
        pwfile = self.root / "superuser-password"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.owner is not None:
            os.chown(pwfile, self.owner.pw_uid, self.owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '{self.host}'\nport = {self.port}\n"
                       "unix_socket_directories = ''\nfsync = off\n"
                       "synchronous_commit = off\nshared_buffers = 16MB\n"
                       "max_connections = 20\n")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
                  "start")

    def stop(self) -> None:
        """A fast shutdown: connected clients are cut off, as in a real restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "120", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def connect(self, dbname: str = "postgres", user: str = SUPERUSER,
                password: str = SUPERUSER_PASSWORD) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, dbname=dbname, user=user,
                               password=password, connect_timeout=10, autocommit=True)

    def create_role(self, name: str, password: str) -> None:
        """A login role (not a superuser), unless it exists."""
        with self.connect() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                (name,)).fetchone():
                conn.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD {_literal(password)}')

    def create_database(self, name: str, owner: str, password: str) -> None:
        """A new database owned by the login role ``owner``."""
        self.create_role(owner, password)
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def close(self) -> None:
        if self.data.exists() and self.running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
