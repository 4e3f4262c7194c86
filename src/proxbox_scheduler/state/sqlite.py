"""The default store: one SQLite file (WAL), written on one dedicated thread.

Decisions, all documented in the README section the lead writes from this:

- Every sqlite3 call runs on a single worker thread owned by the store (not the
  loop's default executor), so a slow disk never stalls the event loop and the
  connection never crosses threads.
- ``synchronous=FULL``: a commit is on disk when the call returns, so the
  in-flight mark written by ``run_started`` survives SIGKILL, OOM and node loss.
- One process per file: ``<name>.lock`` is held with ``flock`` while open (the
  kernel drops it when the process dies). A second process gets StateUnavailable.
- Unopenable or unwritable file or directory, or a schema newer than this
  version: StateUnavailable with one line (the caller exits 2).
- Corrupt file (not a database, or failing ``PRAGMA quick_check``): moved aside
  to ``<name>.corrupt-<UTC timestamp>`` (with its ``-wal``), a fresh file is
  started, and ``open`` returns a warning line saying so. History is lost but
  the scheduler runs: no crash loop.
- History per job: the newest ``Bounds.max_runs`` (1000) runs, none older than
  ``Bounds.max_age`` (90 days), pruned on every write and at open.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import functools
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import rows
from .base import (
    DEFAULT_RECENT,
    Bounds,
    Counters,
    JobState,
    Opened,
    RunRecord,
    RunStart,
    StateError,
    StateLocked,
    StateUnavailable,
    StateWriteFailed,
    utcnow,
)

T = TypeVar("T")
SCHEMA_VERSION = 1
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
THREAD_NAME = "proxbox-state"


class _Corrupt(Exception):
    """Raised inside the worker when the file is not a usable database; handled by moving it aside."""


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in CORRUPT_CODES


class SqliteStore:
    """The state protocol on one SQLite file at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        bounds: Bounds | None = None,
        now: Callable[[], dt.datetime] = utcnow,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.bounds = bounds or Bounds()
        self._now = now
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._interrupted: tuple[RunRecord, ...] = ()

    # ------------------------------------------------------------ async API

    async def _call(self, fn: Callable[..., T], *args: Any, write: bool = True) -> T:
        """Run ``fn`` on the worker thread; sqlite errors become one-line StateErrors."""
        if self._executor is None or self._conn is None:
            raise StateError(f"state file {self.path}: the store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except sqlite3.Error as exc:
            kind = StateWriteFailed if write else StateError
            raise kind(f"state file {self.path}: {exc}") from None

    async def open(self) -> Opened:
        if self._executor is not None:
            raise StateError(f"state file {self.path}: the store is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._open_sync)
        except BaseException:
            await loop.run_in_executor(self._executor, self._release_sync)
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def load(self, job: str, recent: int = DEFAULT_RECENT) -> JobState:
        return await self._call(self._load_sync, job, recent, write=False)

    async def run_started(self, start: RunStart) -> None:
        await self._call(self._started_sync, start)

    async def run_finished(self, record: RunRecord, counters: Counters) -> None:
        await self._call(self._finished_sync, record, counters)

    async def set_paused(self, job: str, paused: bool) -> None:
        await self._call(self._paused_sync, job, paused)

    async def history(
        self, job: str, since: dt.datetime, until: dt.datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        return await self._call(self._history_sync, job, since, until, limit, write=False)

    async def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        await asyncio.get_running_loop().run_in_executor(executor, self._release_sync)
        executor.shutdown(wait=False)  # its only thread is idle now and exits

    # ------------------------------------------------------------ open (worker thread)

    def _open_sync(self) -> Opened:
        self._lock()
        warnings: list[str] = []
        try:
            self._conn = self._connect()
        except _Corrupt as exc:
            warnings.append(self._move_aside(str(exc)))
            try:
                self._conn = self._connect()
            except _Corrupt as again:  # a fresh file cannot be corrupt; if it is, the disk is the problem
                raise StateUnavailable(
                    f"state file {self.path}: a new file is unusable too: {again}"
                ) from None
        self._interrupted = self._recover()
        return Opened(tuple(warnings), self._interrupted)

    def _lock(self) -> None:
        """Create the directory and take ``<name>.lock``: one process per file."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileExistsError as exc:  # mkdir met a file where a directory belongs
            raise StateUnavailable(f"state file {self.path}: {exc.filename} is not a directory") from None
        except OSError as exc:
            raise StateUnavailable(
                f"state file {self.path}: cannot create {exc.filename}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateLocked(f"state file {self.path}: in use by another process (locked)") from None
        self._lock_fd = fd

    def _connect(self) -> sqlite3.Connection:
        """Open, check and migrate the file; _Corrupt when it is not a usable database."""
        if self.path.is_dir():
            raise StateUnavailable(f"state file {self.path}: is a directory")
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            _check(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            _migrate(conn, self.path)
            return conn
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if _is_corrupt(exc):
                raise _Corrupt(str(exc)) from None
            raise StateUnavailable(f"state file {self.path}: {exc}") from None
        except (_Corrupt, StateUnavailable):
            if conn is not None:
                conn.close()
            raise

    def _move_aside(self, why: str) -> str:
        """Rename the corrupt file (and its WAL) out of the way; the warning line to log."""
        stamp = self._now().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.rename(aside)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                wal.rename(aside.with_name(aside.name + "-wal"))
            self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        except OSError as exc:
            raise StateUnavailable(
                f"state file {self.path}: corrupt ({why}) and cannot be moved aside: {exc}"
            ) from None
        return f"state file {self.path} was corrupt ({why}); moved it to {aside} and started with no history"

    def _recover(self) -> tuple[RunRecord, ...]:
        """Record every run left in flight as interrupted, and prune by age; proves the file is writable."""
        conn = self._db()
        found = self._now()
        try:
            with _transaction(conn):
                starts = [rows.start_from_row(r) for r in conn.execute(rows.SELECT_IN_FLIGHT)]
                records = tuple(s.interrupted(found) for s in starts)
                for record in records:
                    conn.execute(rows.UPSERT_RUN, rows.run_to_row(record))
                conn.execute("DELETE FROM in_flight")
                conn.execute("DELETE FROM runs WHERE started_us < ?", (self._cutoff(),))
        except sqlite3.Error as exc:
            raise StateUnavailable(f"state file {self.path}: not writable: {exc}") from None
        return records

    def _release_sync(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # ------------------------------------------------------------ operations (worker thread)

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _cutoff(self) -> int:
        return rows.to_us(self._now() - self.bounds.max_age)

    def _load_sync(self, job: str, recent: int) -> JobState:
        conn = self._db()
        head = conn.execute(rows.SELECT_JOB, (job,)).fetchone()
        runs = conn.execute(rows.SELECT_RECENT, (job, self._cutoff(), recent)).fetchall()
        return rows.job_state(
            job,
            head,
            [rows.run_from_row(r) for r in runs],
            tuple(r for r in self._interrupted if r.job == job),
        )

    def _started_sync(self, start: RunStart) -> None:
        conn = self._db()
        with _transaction(conn):
            conn.execute(rows.INSERT_IN_FLIGHT, rows.start_to_row(start))
            conn.execute(rows.ENSURE_JOB, (start.job,))
            if start.slot is not None:
                conn.execute(rows.ADVANCE_SLOT, (rows.to_us(start.slot), start.job))

    def _finished_sync(self, record: RunRecord, counters: Counters) -> None:
        conn = self._db()
        with _transaction(conn):
            conn.execute("DELETE FROM in_flight WHERE run_id = ?", (record.run_id,))
            conn.execute(rows.UPSERT_RUN, rows.run_to_row(record))
            conn.execute(rows.ENSURE_JOB, (record.job,))
            conn.execute(rows.SET_COUNTERS, (counters.consecutive_failures, counters.auth_streak, record.job))
            if record.ok:
                conn.execute(rows.SET_LAST_SUCCESS, (rows.record_json(record), record.job))
            conn.execute(rows.PRUNE_AGE, (record.job, self._cutoff()))
            conn.execute(rows.PRUNE_COUNT, (record.job, self.bounds.max_runs))

    def _paused_sync(self, job: str, paused: bool) -> None:
        conn = self._db()
        with _transaction(conn):
            conn.execute(rows.ENSURE_JOB, (job,))
            conn.execute("UPDATE jobs SET paused = ? WHERE job = ?", (int(paused), job))

    def _history_sync(
        self, job: str, since: dt.datetime, until: dt.datetime | None, limit: int | None
    ) -> list[RunRecord]:
        low = max(rows.to_us(since), self._cutoff())
        high = rows.to_us(until) if until is not None else 2**63 - 1
        found = self._db().execute(rows.SELECT_WINDOW, (job, low, high, -1 if limit is None else limit))
        return [rows.run_from_row(r) for r in found]


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Any:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (autocommit connection)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check(conn: sqlite3.Connection) -> None:
    """_Corrupt unless the file reads as a healthy database (an empty new file passes)."""
    result = [r[0] for r in conn.execute("PRAGMA quick_check")]
    if result != ["ok"]:
        raise _Corrupt("quick_check: " + "; ".join(str(r) for r in result[:3]))


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file; refuse one written by a newer version (it is not ours to drop)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StateUnavailable(
            f"state file {path}: schema version {version} is newer than this version's {SCHEMA_VERSION}"
        )
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if tables:
        raise _Corrupt(f"schema version {version} with {tables} unknown objects")
    with _transaction(conn):
        for statement in rows.SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
