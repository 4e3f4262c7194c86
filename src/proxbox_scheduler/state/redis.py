"""The shared store on Redis or Valkey (redis-py asyncio): history, leases and claims for several replicas.

Decisions:

- Every write is one Lua script (``redis_lua``), atomic on the server; the
  lease is a key with ``PX`` expiry, so the server's clock times it, and the
  fencing epoch is an ``INCR`` counter that a takeover bumps.
- History per job is a sorted set of fixed-width members (start time in
  microseconds offset to be positive, then an insertion counter) read by
  lexicographic range, newest first, with the rows in a hash beside it.
- Durability is Redis's: for the "a claimed slot is never run again" promise to
  survive a Redis restart, run it with ``appendonly yes`` (the tests do).
- redis-py reconnects by itself; a failed call is one StateError line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxbox_scheduler.redact import redact_url

from . import redis_lua, rows
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
from .shared import CLAIM_RETENTION, AbandonedClaim, Claim, ClaimStatus, Lease, client_name, slot_key

T = TypeVar("T")
PREFIX = "proxbox:"
OFFSET_US = 2**62
"""Added to start times so that every member (years 1 to 9999) is a positive 20-digit number."""


def _order(when: dt.datetime) -> str:
    return f"{rows.to_us(when) + OFFSET_US:020d}"


def _owner(value: str | None) -> tuple[str, int]:
    """(holder, epoch) from a claim value ``holder\\nepoch\\nstate``."""
    if not value:
        return "", 0
    holder, epoch, _ = value.rsplit("\n", 2)
    return holder, int(epoch)


class RedisStore:
    """The state protocol and the shared-store protocol on one Redis/Valkey database."""

    def __init__(
        self,
        url: str,
        bounds: Bounds | None = None,
        replica: str = "",
        now: Callable[[], dt.datetime] = utcnow,
        timeout_s: float = 5.0,
        prefix: str = PREFIX,
    ) -> None:
        self.url = url
        self.bounds = bounds or Bounds()
        self.replica = replica
        self.prefix = prefix
        self._now = now
        self._timeout_s = timeout_s
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._interrupted: tuple[RunRecord, ...] = ()

    @property
    def where(self) -> str:
        return redact_url(self.url)

    async def _call(self, fn: Callable[[aioredis.Redis], Awaitable[T]], write: bool = True) -> T:
        if self._client is None:
            raise StateError(f"state store {self.where}: the store is not open")
        try:
            return await fn(self._client)
        except (RedisError, OSError) as exc:
            kind = StateWriteFailed if write else StateError
            raise kind(f"state store {self.where}: {str(exc).strip() or type(exc).__name__}") from None

    async def _run(self, name: str, *args: Any) -> Any:
        async def go(client: aioredis.Redis) -> Any:
            return await self._scripts[name](args=[self.prefix, *args])

        return await self._call(go)

    # ------------------------------------------------------------ StateStore

    async def open(self) -> Opened:
        try:
            client = aioredis.from_url(
                self.url,
                decode_responses=True,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                client_name=client_name(self.replica),
            )
        except ValueError as exc:
            raise StateUnavailable(f"state store {self.where}: {exc}") from None
        self._client = client
        for name in ("FINISH", "STARTED", "ACQUIRE", "RENEW", "RELEASE", "CLAIM", "FINISH_CLAIM", "SWEEP"):
            self._scripts[name] = client.register_script(getattr(redis_lua, name))
        try:
            self._interrupted = await self._recover()
        except StateError as exc:
            await self.close()
            raise StateUnavailable(str(exc)) from None
        return Opened((), self._interrupted)

    async def _recover(self) -> tuple[RunRecord, ...]:
        """This replica's runs left in flight by its previous life become interrupted records."""
        found = self._now()

        async def flights(client: aioredis.Redis) -> dict[str, str]:
            return await client.hgetall(self.prefix + "inflight")  # type: ignore[no-any-return,misc]

        mine = []
        for row in (await self._call(flights, write=False)).values():
            start = rows.start_from_row(tuple(json.loads(row)))
            if start.replica == self.replica:
                mine.append(start.interrupted(found))
        for record in mine:
            await self._finish(record, None)
        return tuple(mine)

    def _job_key(self, job: str) -> str:
        return f"{self.prefix}job:{job}"

    async def load(self, job: str, recent: int = DEFAULT_RECENT) -> JobState:
        async def go(client: aioredis.Redis) -> JobState:
            head: dict[str, str] = await client.hgetall(self._job_key(job))  # type: ignore[misc]
            runs = await self._range(client, job, "+", "[" + _order(self._cutoff()), recent)
            mine = tuple(r for r in self._interrupted if r.job == job)
            if not head:
                return rows.job_state(job, None, runs, mine)
            slot = int(head["slot"]) if "slot" in head else None
            success = head.get("success")
            return rows.job_state(
                job,
                (int(head.get("cf", 0)), int(head.get("as", 0)), slot, head.get("paused") == "1",
                 success),
                runs,
                mine,
            )  # fmt: skip

        return await self._call(go, write=False)

    async def _range(
        self, client: aioredis.Redis, job: str, high: str, low: str, limit: int | None
    ) -> list[RunRecord]:
        """Runs of ``job`` between two lexicographic bounds, newest first."""
        members = await client.zrevrangebylex(
            f"{self.prefix}runs:{job}", high, low, *((0, limit) if limit is not None else ())
        )
        if not members:
            return []
        data = await client.hmget(f"{self.prefix}rundata:{job}", members)  # type: ignore[misc]
        return [rows.run_from_row(json.loads(row)) for row in data if row is not None]

    def _cutoff(self) -> dt.datetime:
        return self._now() - self.bounds.max_age

    async def run_started(self, start: RunStart) -> None:
        slot = "" if start.slot is None else str(rows.to_us(start.slot))
        row = json.dumps(rows.start_to_row(start))
        await self._run("STARTED", start.job, start.run_id, row, slot)

    async def run_finished(self, record: RunRecord, counters: Counters) -> None:
        await self._finish(record, counters)

    async def _finish(self, record: RunRecord, counters: Counters | None) -> None:
        """One script: history, counters (left as they are when None), last success, both prunes."""
        row = json.dumps(rows.run_to_row(record))
        failures, streak = (
            ("", "") if counters is None else (counters.consecutive_failures, counters.auth_streak)
        )
        await self._run(
            "FINISH", record.job, record.run_id, _order(record.started), row,
            failures, streak, "1" if record.ok else "0",
            _order(self._cutoff()), self.bounds.max_runs,
        )  # fmt: skip

    async def set_paused(self, job: str, paused: bool) -> None:
        async def go(client: aioredis.Redis) -> None:
            await client.hset(self._job_key(job), "paused", "1" if paused else "0")  # type: ignore[misc]

        await self._call(go)

    async def history(
        self, job: str, since: dt.datetime, until: dt.datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        low = "[" + _order(max(since, self._cutoff()))
        high = "+" if until is None else "(" + _order(until)

        async def go(client: aioredis.Redis) -> list[RunRecord]:
            return await self._range(client, job, high, low, limit)

        return await self._call(go, write=False)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # ------------------------------------------------------------ SharedStore

    async def acquire(self, holder: str, ttl_s: float) -> Lease:
        now_holder, epoch, left_ms = await self._run("ACQUIRE", holder, max(1, round(ttl_s * 1000)))
        return Lease(now_holder, int(epoch), now_holder == holder, max(0, int(left_ms)) / 1000)

    async def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        return bool(await self._run("RENEW", holder, epoch, max(1, round(ttl_s * 1000))))

    async def release(self, holder: str, epoch: int) -> None:
        await self._run("RELEASE", holder, epoch)

    async def claim(self, job: str, slot: dt.datetime | None, holder: str, epoch: int) -> Claim:
        base = slot_key(job, slot)
        answer = await self._run("CLAIM", holder, epoch, base, "1" if slot is None else "0", job)
        status, key = ClaimStatus(answer[0]), answer[1]
        if status is ClaimStatus.LOST:
            owner = _owner(answer[2])
            if owner == (holder, epoch):  # a retried call whose first attempt did win
                return Claim(ClaimStatus.WON, key, holder, epoch)
            return Claim(status, key, *owner)
        return Claim(status, key, holder if status is ClaimStatus.WON else "", epoch)

    async def finish_claim(self, key: str, holder: str, epoch: int) -> bool:
        keep = int(CLAIM_RETENTION.total_seconds())
        return bool(await self._run("FINISH_CLAIM", key, holder, epoch, keep))

    async def sweep_abandoned(self, epoch: int) -> list[AbandonedClaim]:
        flat = await self._run("SWEEP", epoch, int(CLAIM_RETENTION.total_seconds()))
        return [AbandonedClaim(flat[i], flat[i + 1], int(flat[i + 2])) for i in range(0, len(flat), 3)]
