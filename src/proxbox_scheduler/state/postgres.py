"""The shared store on PostgreSQL (psycopg 3, async): history, leases and claims for several replicas.

Decisions:

- One connection per replica, autocommit; every operation is one statement or
  one explicit transaction. A broken connection is dropped and the next call
  reconnects, so a restarted server or a killed backend costs one failed call.
- Lease times are the server's ``clock_timestamp()``: replicas never compare
  their own wall clocks. The claim transaction locks the lease row ``FOR SHARE``,
  so a takeover (which updates that row) waits until the claim is committed and
  a claim can never commit after the lease it checked has passed to another.
- Tables are prefixed ``proxbox_`` so the store can share NetBox's database,
  although a database of its own is the recommended setup. The schema is created
  under an advisory lock, so replicas starting together do not race.
- ``open`` records as interrupted only the runs this replica left in flight; the
  others belong to live replicas or are found through abandoned claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from proxbox_scheduler.redact import redact_url

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
    StateUnavailable,
    StateWriteFailed,
    utcnow,
)
from .shared import (
    ABANDONED,
    CLAIM_RETENTION,
    DONE,
    LEASE,
    RUNNING,
    AbandonedClaim,
    Claim,
    ClaimStatus,
    Lease,
    client_name,
    slot_key,
)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
SCHEMA_LOCK = 0x70627873  # "pbxs": the advisory lock held while the schema is created
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS proxbox_jobs (
        job TEXT PRIMARY KEY, consecutive_failures INTEGER NOT NULL DEFAULT 0,
        auth_streak INTEGER NOT NULL DEFAULT 0, last_slot_us BIGINT, paused BOOLEAN NOT NULL DEFAULT FALSE,
        last_success TEXT, counter BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS proxbox_runs (
        seq BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, job TEXT NOT NULL, started_us BIGINT NOT NULL,
        ended_us BIGINT, duration_s DOUBLE PRECISION, outcome TEXT NOT NULL, reason TEXT NOT NULL,
        trigger TEXT NOT NULL, slot_us BIGINT, counts TEXT NOT NULL, replica TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS proxbox_runs_by_job ON proxbox_runs (job, started_us DESC, seq DESC)",
    """CREATE TABLE IF NOT EXISTS proxbox_in_flight (
        run_id TEXT PRIMARY KEY, job TEXT NOT NULL, started_us BIGINT NOT NULL, trigger TEXT NOT NULL,
        slot_us BIGINT, replica TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS proxbox_leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS proxbox_claims (
        key TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL, state TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())""",
    "CREATE INDEX IF NOT EXISTS proxbox_claims_running ON proxbox_claims (epoch) WHERE state = 'running'",
)
UPSERT_RUN = (
    f"INSERT INTO proxbox_runs ({rows.RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"
    " ON CONFLICT (run_id) DO UPDATE"
    " SET (seq, job, started_us, ended_us, duration_s, outcome, reason, trigger, slot_us, counts, replica)"
    " = (nextval('proxbox_runs_seq_seq'), EXCLUDED.job, EXCLUDED.started_us, EXCLUDED.ended_us,"
    " EXCLUDED.duration_s, EXCLUDED.outcome, EXCLUDED.reason, EXCLUDED.trigger, EXCLUDED.slot_us,"
    " EXCLUDED.counts, EXCLUDED.replica)"
)
ENSURE_JOB = "INSERT INTO proxbox_jobs (job) VALUES (%s) ON CONFLICT DO NOTHING"
ACQUIRE = """
INSERT INTO proxbox_leases AS l (name, holder, epoch, expires_at)
VALUES (%(name)s, %(holder)s, 1, clock_timestamp() + %(ttl)s * interval '1 second')
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                 THEN l.epoch ELSE l.epoch + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
RETURNING holder, epoch, 0.0"""
RENEW = """UPDATE proxbox_leases SET expires_at = clock_timestamp() + %(ttl)s * interval '1 second'
WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s AND expires_at > clock_timestamp()"""
FENCE = """SELECT 1 FROM proxbox_leases WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s
AND expires_at > clock_timestamp() FOR SHARE"""
CLAIM_SLOT = f"""
WITH fence AS ({FENCE}), won AS (
    INSERT INTO proxbox_claims (key, holder, epoch, state)
    SELECT %(key)s, %(holder)s, %(epoch)s, 'running' FROM fence
    ON CONFLICT (key) DO NOTHING RETURNING key
)
SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM won), c.holder, c.epoch
FROM (SELECT 1) AS one LEFT JOIN proxbox_claims c ON c.key = %(key)s"""
"""A slot claim in one statement (one round trip): the lease row locked FOR SHARE, the claim
inserted only if the fence matched, and the owner as the statement's snapshot saw it."""
NEXT_COUNTER = (
    "INSERT INTO proxbox_jobs (job, counter) VALUES (%s, 1)"
    " ON CONFLICT (job) DO UPDATE SET counter = proxbox_jobs.counter + 1 RETURNING counter"
)


class PostgresStore:
    """The state protocol and the shared-store protocol on one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        bounds: Bounds | None = None,
        replica: str = "",
        now: Callable[[], dt.datetime] = utcnow,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.bounds = bounds or Bounds()
        self.replica = replica
        self._now = now
        self._timeout_s = timeout_s
        self._conn: Conn | None = None
        self._open = False
        self._lock = asyncio.Lock()
        self._interrupted: tuple[RunRecord, ...] = ()

    @property
    def where(self) -> str:
        return redact_url(self.url)

    # ------------------------------------------------------------ connection

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = None
            self._conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self._timeout_s)),
                application_name=client_name(self.replica),
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(TimeoutError, psycopg.Error, OSError):
                await asyncio.wait_for(conn.close(), 1.0)

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], write: bool = True) -> T:
        """Run ``fn`` on the connection with a deadline; any failure is one StateError line, never a crash."""
        if not self._open:
            raise StateError(f"state store {self.where}: the store is not open")
        async with self._lock:
            try:
                return await asyncio.wait_for(self._with_conn(fn), self._timeout_s)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if not isinstance(exc, psycopg.errors.IntegrityError):
                    await self._drop()
                kind = StateWriteFailed if write else StateError
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise kind(f"state store {self.where}: {why}") from None
            except asyncio.CancelledError:
                await self._drop()  # a query cut in the middle leaves the connection in an unknown state
                raise

    async def _with_conn(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await fn(await self._connection())

    # ------------------------------------------------------------ StateStore

    async def open(self) -> Opened:
        self._open = True
        try:
            await self._call(self._migrate)
            self._interrupted = await self._call(self._recover)
        except StateError as exc:
            self._open = False
            await self._drop()
            raise StateUnavailable(str(exc)) from None
        return Opened((), self._interrupted)

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in SCHEMA:
                await conn.execute(statement)

    async def _recover(self, conn: Conn) -> tuple[RunRecord, ...]:
        found = self._now()
        async with conn.transaction():
            cur = await conn.execute(
                f"DELETE FROM proxbox_in_flight WHERE replica = %s RETURNING {rows.START_COLUMNS}",
                (self.replica,),
            )
            records = tuple(rows.start_from_row(tuple(r)).interrupted(found) for r in await cur.fetchall())
            for record in records:
                await conn.execute(UPSERT_RUN, rows.run_to_row(record))
            await conn.execute("DELETE FROM proxbox_runs WHERE started_us < %s", (self._cutoff(),))
        return records

    def _cutoff(self) -> int:
        return rows.to_us(self._now() - self.bounds.max_age)

    async def load(self, job: str, recent: int = DEFAULT_RECENT) -> JobState:
        async def go(conn: Conn) -> JobState:
            cur = await conn.execute(
                "SELECT consecutive_failures, auth_streak, last_slot_us, paused, last_success"
                " FROM proxbox_jobs WHERE job = %s",
                (job,),
            )
            head = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {rows.RUN_COLUMNS} FROM proxbox_runs WHERE job = %s AND started_us >= %s"
                f" {rows.NEWEST_FIRST} LIMIT %s",
                (job, self._cutoff(), recent),
            )
            runs = [rows.run_from_row(r) for r in await cur.fetchall()]
            mine = tuple(r for r in self._interrupted if r.job == job)
            return rows.job_state(job, None if head is None else tuple(head), runs, mine)

        return await self._call(go, write=False)

    async def run_started(self, start: RunStart) -> None:
        async def go(conn: Conn) -> None:
            async with conn.transaction():
                await conn.execute(
                    f"INSERT INTO proxbox_in_flight ({rows.START_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (run_id) DO NOTHING",
                    rows.start_to_row(start),
                )
                await conn.execute(ENSURE_JOB, (start.job,))
                if start.slot is not None:
                    await conn.execute(
                        "UPDATE proxbox_jobs SET last_slot_us = greatest(last_slot_us, %s) WHERE job = %s",
                        (rows.to_us(start.slot), start.job),
                    )

        await self._call(go)

    async def run_finished(self, record: RunRecord, counters: Counters) -> None:
        async def go(conn: Conn) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM proxbox_in_flight WHERE run_id = %s", (record.run_id,))
                await conn.execute(UPSERT_RUN, rows.run_to_row(record))
                await conn.execute(ENSURE_JOB, (record.job,))
                await conn.execute(
                    "UPDATE proxbox_jobs SET consecutive_failures = %s, auth_streak = %s,"
                    " last_success = CASE WHEN %s THEN %s ELSE last_success END WHERE job = %s",
                    (counters.consecutive_failures, counters.auth_streak, record.ok,
                     rows.record_json(record), record.job),
                )  # fmt: skip
                await conn.execute(
                    "DELETE FROM proxbox_runs WHERE job = %s AND started_us < %s",
                    (record.job, self._cutoff()),
                )
                await conn.execute(
                    f"DELETE FROM proxbox_runs WHERE seq IN (SELECT seq FROM proxbox_runs WHERE job = %s"
                    f" {rows.NEWEST_FIRST} OFFSET %s)",
                    (record.job, self.bounds.max_runs),
                )

        await self._call(go)

    async def set_paused(self, job: str, paused: bool) -> None:
        async def go(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO proxbox_jobs (job, paused) VALUES (%s, %s)"
                " ON CONFLICT (job) DO UPDATE SET paused = EXCLUDED.paused",
                (job, paused),
            )

        await self._call(go)

    async def history(
        self, job: str, since: dt.datetime, until: dt.datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        low = max(rows.to_us(since), self._cutoff())
        high = rows.to_us(until) if until is not None else 2**63 - 1

        async def go(conn: Conn) -> list[RunRecord]:
            cur = await conn.execute(
                f"SELECT {rows.RUN_COLUMNS} FROM proxbox_runs WHERE job = %s AND started_us >= %s"
                f" AND started_us < %s {rows.NEWEST_FIRST} LIMIT %s",
                (job, low, high, limit),
            )
            return [rows.run_from_row(r) for r in await cur.fetchall()]

        return await self._call(go, write=False)

    async def close(self) -> None:
        self._open = False
        await self._drop()

    # ------------------------------------------------------------ SharedStore

    async def acquire(self, holder: str, ttl_s: float) -> Lease:
        async def go(conn: Conn) -> Lease:
            cur = await conn.execute(ACQUIRE, {"name": LEASE, "holder": holder, "ttl": ttl_s})
            won = await cur.fetchone()
            if won is not None:
                return Lease(won[0], won[1], mine=True)
            cur = await conn.execute(
                "SELECT holder, epoch, extract(epoch FROM expires_at - clock_timestamp())::float8"
                " FROM proxbox_leases WHERE name = %s",
                (LEASE,),
            )
            other = await cur.fetchone()
            return Lease(other[0], other[1], False, max(0.0, other[2])) if other else Lease("", 0, False)

        return await self._call(go)

    async def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        async def go(conn: Conn) -> bool:
            cur = await conn.execute(RENEW, {"name": LEASE, "holder": holder, "epoch": epoch, "ttl": ttl_s})
            return cur.rowcount == 1

        return await self._call(go)

    async def release(self, holder: str, epoch: int) -> None:
        async def go(conn: Conn) -> None:
            await conn.execute(
                "UPDATE proxbox_leases SET expires_at = clock_timestamp()"
                " WHERE name = %s AND holder = %s AND epoch = %s",
                (LEASE, holder, epoch),
            )

        await self._call(go)

    async def claim(self, job: str, slot: dt.datetime | None, holder: str, epoch: int) -> Claim:
        if slot is not None:
            return await self._claim_slot(slot_key(job, slot), holder, epoch)

        async def go(conn: Conn) -> Claim:  # continuous: the next counter, in one transaction
            async with conn.transaction():
                fence = await conn.execute(FENCE, {"name": LEASE, "holder": holder, "epoch": epoch})
                key = slot_key(job, None)
                if await fence.fetchone() is None:
                    return Claim(ClaimStatus.NOT_LEADER, key)
                counter = await (await conn.execute(NEXT_COUNTER, (job,))).fetchone()
                key += str(counter[0])  # type: ignore[index]
                cur = await conn.execute(
                    "INSERT INTO proxbox_claims (key, holder, epoch, state) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (key) DO NOTHING RETURNING key",
                    (key, holder, epoch, RUNNING),
                )
                if await cur.fetchone() is not None:
                    return Claim(ClaimStatus.WON, key, holder, epoch)
                cur = await conn.execute("SELECT holder, epoch FROM proxbox_claims WHERE key = %s", (key,))
                owner = await cur.fetchone()
                return Claim(ClaimStatus.LOST, key, *(owner or ("", 0)))

        return await self._call(go)

    async def _claim_slot(self, key: str, holder: str, epoch: int) -> Claim:
        async def go(conn: Conn) -> Claim:
            args = {"name": LEASE, "holder": holder, "epoch": epoch, "key": key}
            fenced, won, owner, owner_epoch = await (await conn.execute(CLAIM_SLOT, args)).fetchone()  # type: ignore[misc]
            if not fenced:
                return Claim(ClaimStatus.NOT_LEADER, key)
            if won:
                return Claim(ClaimStatus.WON, key, holder, epoch)
            return Claim(ClaimStatus.LOST, key, owner or "", owner_epoch or 0)

        return await self._call(go)

    async def finish_claim(self, key: str, holder: str, epoch: int) -> bool:
        async def go(conn: Conn) -> bool:
            cur = await conn.execute(
                "UPDATE proxbox_claims SET state = %s WHERE key = %s AND holder = %s AND epoch = %s"
                " AND state = %s",
                (DONE, key, holder, epoch, RUNNING),
            )
            return cur.rowcount == 1

        return await self._call(go)

    async def sweep_abandoned(self, epoch: int) -> list[AbandonedClaim]:
        async def go(conn: Conn) -> list[AbandonedClaim]:
            async with conn.transaction():
                cur = await conn.execute(
                    "UPDATE proxbox_claims SET state = %s WHERE state = %s AND epoch < %s"
                    " RETURNING key, holder, epoch",
                    (ABANDONED, RUNNING, epoch),
                )
                found = [AbandonedClaim(*r) for r in await cur.fetchall()]
                await conn.execute(
                    "DELETE FROM proxbox_claims WHERE state <> %s AND claimed_at < clock_timestamp() - %s",
                    (RUNNING, CLAIM_RETENTION),
                )
            return found

        return await self._call(go)
