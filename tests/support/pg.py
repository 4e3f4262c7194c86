"""A real PostgreSQL 15 on 127.0.0.1 for the shared-store tests: fresh data directory, free port.

``initdb --auth=trust`` runs as the ``postgres`` user when the tests run as root
(PostgreSQL refuses to run as root); ``fsync=off`` because the data is thrown
away. The server can be stopped and started again on the same port and data
(the chaos test restarts it), and backends can be terminated.
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

from tests.support.processes import free_port, poll

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (PG_BIN / "initdb").exists()


def _as_postgres() -> dict[str, object]:
    """Popen arguments that drop root to the ``postgres`` user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class PostgresServer:
    """One postmaster; ``url(db)`` connects as the ``postgres`` superuser without a password."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pbx-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8"],
            check=True, capture_output=True, **_as_postgres(),  # type: ignore[arg-type]
        )  # fmt: skip

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=50"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_as_postgres(),  # type: ignore[arg-type]
        )  # fmt: skip
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
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
             "-Atqc", sql],
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
