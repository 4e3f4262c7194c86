"""The stack's own PostgreSQL 15 cluster and NetBox's database, restored from a migrated template.

initdb refuses root, so as root the cluster belongs to the ``postgres`` user and
lives under /tmp (a cache under /root is not traversable for that user); the
migrated template is a pg_dump in the cache, restored over TCP in ~2 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.stack import procs
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import Layout
from tests.support.pg import PG_BIN, as_postgres, client_argv, initdb_argv, server_argv

SERVICE = "postgres"
DB, ROLE, PASSWORD = "netbox", "netbox", "netbox"


def _as_root() -> bool:
    return os.geteuid() == 0


def data_dir(lay: Layout) -> Path:
    if not _as_root():
        return lay.stack / "pg" / "data"
    tag = hashlib.sha256(str(lay.stack).encode()).hexdigest()[:10]
    return Path("/tmp") / f"proxbox-e2e-pg-{tag}"


def start(lay: Layout, port: int) -> None:
    """A fresh cluster (initdb, fsync off) listening on 127.0.0.1:port only."""
    if not (PG_BIN / "postgres").exists():
        raise StackError(SERVICE, f"PostgreSQL 15 server binaries not found in {PG_BIN}")
    data = data_dir(lay)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True, mode=0o700)
    if _as_root():
        shutil.chown(data, "postgres", "postgres")
    procs.run_logged(initdb_argv(data), lay.log("initdb"), SERVICE, **as_postgres())
    argv = server_argv(data, port, data)
    _spawn_postgres(lay, argv)
    procs.wait_ready(lay, SERVICE, lambda: _ready(port), timeout=60)
    psql(lay, port, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CREATEDB")


def _spawn_postgres(lay: Layout, argv: list[str]) -> None:
    lay.logs.mkdir(parents=True, exist_ok=True)
    log = lay.log(SERVICE)
    if _as_root():
        log.touch()
        shutil.chown(log, "postgres", "postgres")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_postgres(),
        )
    lay.run.mkdir(parents=True, exist_ok=True)
    procs.pid_file(lay, SERVICE).write_text(f"{proc.pid} {argv[0]}\n")


def _ready(port: int) -> bool:
    probe = [*client_argv("pg_isready", port), "-q"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def psql(lay: Layout, port: int, sql: str, db: str = "postgres") -> str:
    argv = [
        *client_argv("psql", port),
        "-X",
        "-q",
        "-tA",
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(SERVICE, f"psql failed on {sql!r}: {done.stderr.strip()}", lay.log(SERVICE))
    return done.stdout.strip()


def create_db(lay: Layout, port: int) -> None:
    psql(lay, port, f"CREATE DATABASE {DB} OWNER {ROLE}")


def restore(lay: Layout, port: int, dump: Path) -> None:
    create_db(lay, port)
    argv = [
        *client_argv("pg_restore", port),
        "-d",
        DB,
        "--no-owner",
        f"--role={ROLE}",
        "-j",
        "2",
        str(dump),
    ]
    procs.run_logged(argv, lay.log("pg_restore"), "postgres (restore of the migrated template)")


def save_template(lay: Layout, port: int, dump: Path) -> None:
    """pg_dump the freshly migrated database; written aside and renamed so a crash leaves none."""
    dump.parent.mkdir(parents=True, exist_ok=True)
    partial = dump.with_suffix(".partial")
    argv = [*client_argv("pg_dump", port), "-Fc", "-f", str(partial), DB]
    procs.run_logged(argv, lay.log("pg_dump"), "postgres (dump of the migrated template)")
    partial.rename(dump)


def stop(lay: Layout) -> bool:
    stopped = procs.stop(lay, SERVICE, grace=20.0)
    shutil.rmtree(data_dir(lay), ignore_errors=True)
    return stopped
