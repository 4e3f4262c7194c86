"""The coordinator and the CoordinatedTrigger on a real store, with the local clock held still.

Holding the replica's monotonic clock still stands for a process paused
between its own deadline check and its claim (SIGSTOP at the worst moment):
the store, on its own clock, has given the lease to another replica, so the
claim must fail on the epoch fence. The other cases: a term that ends during
a run cancels it, and an unreachable store means skips and a failed /readyz.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.trigger import RunContext, RunLogAdapter
from proxbox_scheduler.state.coordination import Coordinator
from proxbox_scheduler.state.redis import RedisStore
from proxbox_scheduler.state.shared import SharedStore
from proxbox_scheduler.triggers.coordinated import LEASE_LOST, CoordinatedTrigger
from tests.integration.test_shared_stores import SLOT, run, until_acquired
from tests.support.stores import Pair, pg_server, redis_srv, replica

__all__ = ["pg_server", "redis_srv", "replica"]


class HeldClock(Clock):
    """Real sleeps, but a monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.at = 1000.0

    def monotonic(self) -> float:
        return self.at


class Forever:
    """An inner trigger whose run lasts until cancelled; it records that it was."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def run(self, ctx: RunContext) -> Outcome:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Outcome.success()

    async def aclose(self) -> None: ...


def ctx(slot: dt.datetime | None = SLOT) -> RunContext:
    return RunContext("run-1", RunLogAdapter(logging.getLogger("test"), {}), slot=slot)


async def leading(store: SharedStore, clock: Clock, ttl: float) -> Coordinator:
    coordinator = Coordinator(store, replica="a", ttl=ttl, clock=clock)
    await coordinator._tick()
    assert coordinator.leading() is not None
    return coordinator


def test_a_replica_paused_past_its_lease_fails_on_the_epoch_fence(replica: Pair) -> None:
    async def scenario() -> None:
        held = HeldClock()
        coordinator = await leading(replica(), held, ttl=0.5)
        other = replica()
        await other.open()
        new_epoch = await until_acquired(other, "b", 30)  # the store's clock moved on; ours did not
        inner = Forever()
        outcome = await CoordinatedTrigger(inner, coordinator).run(ctx())
        assert (outcome.status, outcome.skip_reason) == (Status.SKIPPED, "not_leader")
        assert not inner.started.is_set() and coordinator.term is None
        assert new_epoch > 1
        await other.close()
        await coordinator.store.close()

    run(scenario())


def test_a_term_that_ends_during_a_run_cancels_it(replica: Pair) -> None:
    async def scenario() -> None:
        held = HeldClock()
        coordinator = await leading(replica(), held, ttl=30)
        inner = Forever()
        running = asyncio.create_task(CoordinatedTrigger(inner, coordinator).run(ctx(None)))
        await inner.started.wait()
        held.at += 30  # the renew deadline passes without a renewal
        await coordinator._tick()
        outcome = await asyncio.wait_for(running, 5)
        assert inner.cancelled and (outcome.status, outcome.reason) == (Status.FAILURE, LEASE_LOST)
        assert outcome.details["claim"] == "default:#1" and outcome.details["replica"] == "a"
        old_epoch = (await coordinator.store.acquire("someone", 30)).epoch
        await coordinator._tick()  # its old lease still runs on the store: no new term before it expires
        assert coordinator.term is None and old_epoch == 1
        await coordinator.store.close()

    run(scenario())


def test_an_unreachable_store_means_skips_and_not_ready() -> None:
    async def scenario() -> None:
        store = RedisStore("redis://127.0.0.1:1/0", timeout_s=0.5)
        coordinator = Coordinator(store, replica="a", ttl=3, clock=Clock())
        await coordinator._tick()
        assert coordinator.ready() == (False, "state store redis://127.0.0.1:1/0 is unreachable")
        outcome = await CoordinatedTrigger(Forever(), coordinator).run(ctx())
        assert (outcome.status, outcome.skip_reason) == (Status.SKIPPED, "store_down")

    run(scenario())
