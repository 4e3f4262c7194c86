"""Leases, fenced claims and abandoned claims on a real PostgreSQL and a real redis-server.

Two stores opened on the same database stand for two replicas. Lease expiry
is the server's: a short TTL passes by polling the lease until it is free,
never by sleeping a guessed time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from proxbox_scheduler.state import shared_store_from_url
from proxbox_scheduler.state.postgres import PostgresStore
from proxbox_scheduler.state.redis import RedisStore
from proxbox_scheduler.state.shared import ClaimStatus, SharedStore
from tests.support.stores import Pair, pg_server, redis_srv, replica

__all__ = ["pg_server", "redis_srv", "replica"]
T = TypeVar("T")
SLOT = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def opened(*stores: SharedStore) -> None:
    for store in stores:
        await store.open()


async def until_acquired(store: SharedStore, holder: str, ttl: float, timeout: float = 10.0) -> int:
    """Try to take the lease until it is free on the server's clock (the old one expired)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = await store.acquire(holder, ttl)
        if lease.mine:
            return lease.epoch
        await asyncio.sleep(0.05)  # polling the server's clock, not a synchronisation guess
    raise AssertionError(f"{holder} did not get the lease in {timeout} s")


def test_one_holder_at_a_time_and_renewal_keeps_the_epoch(replica: Pair) -> None:
    async def scenario() -> None:
        a, b = replica(), replica()
        await opened(a, b)
        first = await a.acquire("a", 30)
        assert first.mine and first.epoch >= 1
        other = await b.acquire("b", 30)
        assert (other.mine, other.holder, other.epoch) == (False, "a", first.epoch)
        assert await a.renew("a", first.epoch, 30)
        assert not await b.renew("b", first.epoch, 30)
        assert (await a.acquire("a", 30)).epoch == first.epoch
        await a.close()
        await b.close()

    run(scenario())


def test_takeover_bumps_the_epoch_and_fences_the_old_holder(replica: Pair) -> None:
    async def scenario() -> None:
        a, b = replica(), replica()
        await opened(a, b)
        old = (await a.acquire("a", 0.3)).epoch
        assert (await a.claim("full", SLOT, "a", old)).status is ClaimStatus.WON
        new = await until_acquired(b, "b", 30)
        assert new > old
        later = SLOT + dt.timedelta(seconds=1)
        stale = await a.claim("full", later, "a", old)  # the old leader woke up (SIGCONT) and tries
        assert stale.status is ClaimStatus.NOT_LEADER
        assert not await a.renew("a", old, 30)
        assert (await b.claim("full", later, "b", new)).status is ClaimStatus.WON
        again = await b.claim("full", SLOT, "b", new)  # a slot once claimed is never given out again
        assert (again.status, again.holder, again.epoch) == (ClaimStatus.LOST, "a", old)
        await a.close()
        await b.close()

    run(scenario())


def test_a_claim_whose_holder_lost_the_lease_is_abandoned_once(replica: Pair) -> None:
    async def scenario() -> None:
        a, b = replica(), replica()
        await opened(a, b)
        old = (await a.acquire("a", 0.3)).epoch
        running = await a.claim("full", SLOT, "a", old)
        done = await a.claim("full", SLOT + dt.timedelta(seconds=1), "a", old)
        assert await a.finish_claim(done.key, "a", old)
        new = await until_acquired(b, "b", 30)
        swept = await b.sweep_abandoned(new)
        assert [(c.key, c.holder, c.epoch) for c in swept] == [(running.key, "a", old)]
        assert await b.sweep_abandoned(new) == []
        assert not await a.finish_claim(running.key, "a", old)  # too late: it was abandoned
        await a.close()
        await b.close()

    run(scenario())


def test_continuous_claims_take_the_next_counter(replica: Pair) -> None:
    async def scenario() -> None:
        a = replica()
        await opened(a)
        epoch = (await a.acquire("a", 30)).epoch
        keys = [(await a.claim("loop", None, "a", epoch)).key for _ in range(3)]
        assert keys == ["loop:#1", "loop:#2", "loop:#3"]
        await a.release("a", epoch)
        assert (await a.claim("loop", None, "a", epoch)).status is ClaimStatus.NOT_LEADER
        await a.close()

    run(scenario())


def test_release_lets_another_replica_in_at_once(replica: Pair) -> None:
    async def scenario() -> None:
        a, b = replica(), replica()
        await opened(a, b)
        epoch = (await a.acquire("a", 3600)).epoch
        await a.release("a", epoch)
        taken = await b.acquire("b", 30)
        assert taken.mine and taken.epoch == epoch + 1
        await a.close()
        await b.close()

    run(scenario())


def test_the_factory_picks_the_store_from_the_scheme() -> None:
    assert isinstance(shared_store_from_url("postgresql://u:p@db/x", "r"), PostgresStore)
    assert isinstance(shared_store_from_url("rediss://:p@cache:6380/1", "r"), RedisStore)
    assert shared_store_from_url("postgres://u:secret@db/x", "r").where == "postgres://***@db/x"
