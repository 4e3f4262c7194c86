"""A real PostgreSQL 15 on 127.0.0.1: the command lines every test cluster is run with, and the
in-process server of the shared-store tests (fresh data directory, free port).

``initdb --auth=trust`` runs as the ``postgres`` user when the tests run as root
(PostgreSQL refuses to run as root); ``fsync=off`` because the data is thrown
away. The server can be stopped and started again on the same port and data
(the chaos test restarts it), and backends can be terminated. The e2e stack
(tests/e2e/stack/postgres.py) runs its detached cluster with the same command lines.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, poll

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
THROWAWAY = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
"""Server settings for data nobody keeps: no disk flushes."""


def available() -> bool:
    return (PG_BIN / "initdb").exists()


def tool(name: str) -> str:
    """A PostgreSQL 15 program: the server binaries' own, else the client on PATH."""
    own = PG_BIN / name
    return str(own) if own.exists() else name


def as_postgres() -> dict[str, Any]:
    """Popen arguments that drop root to the ``postgres`` user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def initdb_argv(data: Path) -> list[str]:
    """A new cluster whose superuser ``postgres`` logs in without a password."""
    return [tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync"]  # fmt: skip


def server_argv(data: Path, port: int, sockets: Path, *settings: str) -> list[str]:
    """The postmaster on 127.0.0.1:port only, its socket in ``sockets``, plus ``settings``."""
    argv = [tool("postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
    for setting in (f"listen_addresses={HOST}", *THROWAWAY, *settings):
        argv += ["-c", setting]
    return argv


def client_argv(name: str, port: int) -> list[str]:
    """A client program's command line up to its own options: that cluster, as the superuser."""
    return [tool(name), "-h", HOST, "-p", str(port), "-U", "postgres"]


class PostgresServer:
    """One postmaster; ``url(db)`` connects as the ``postgres`` superuser without a password."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pbx-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(initdb_argv(self.data), check=True, capture_output=True, **as_postgres())

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{db}"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            server_argv(self.data, self.port, self.root, "max_connections=50"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_postgres(),
        )
        poll(lambda: self.psql("SELECT 1") == "1", 30, "PostgreSQL to accept connections")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): every backend is terminated, like a real server restart."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(2)
            self._proc.wait(timeout=30)
        self._proc = None

    def psql(self, sql: str, db: str = "postgres") -> str:
        """One statement through psql; its output without alignment (raises OSError when it fails)."""
        done = subprocess.run(
            [*client_argv("psql", self.port), "-d", db, "-Atqc", sql],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def terminate_backends(self, db: str, application_name: str | None = None) -> int:
        """``pg_terminate_backend`` on the clients of ``db``; how many were killed."""
        where = f"datname = '{db}' AND pid <> pg_backend_pid()"
        if application_name is not None:
            where += f" AND application_name = '{application_name}'"
        return int(self.psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}"))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
