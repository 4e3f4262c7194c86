"""A trigger that runs its inner trigger only for slots this replica has claimed as leader.

``CoordinatedTrigger(inner, coordinator)`` composes from outside: the loop and
the inner trigger know nothing of replicas. A fire that this replica does not
lead, or whose slot someone already claimed, is a skip (``not_leader``,
``claimed``, ``store_down``), never a failure. When the term ends during a
run (the lease could not be renewed in time), the inner run is cancelled at
once, which closes its SSE connection or terminates its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.schedule import Mode, ModeKind, epoch_grid_slot
from proxbox_scheduler.core.trigger import RunContext, Trigger
from proxbox_scheduler.state.coordination import Coordinator, Term
from proxbox_scheduler.state.shared import Claim, ClaimStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from proxbox_scheduler.config import Config
    from proxbox_scheduler.core.clock import Clock
    from proxbox_scheduler.telemetry.replicas import ReplicaTelemetry

LEASE_LOST = "the lease was lost during the run; cancelled so that the next leader does not overlap it"


def _skip(claim: Claim, coordinator: Coordinator) -> Outcome:
    if claim.status is ClaimStatus.LOST:
        return Outcome.skipped("claimed", f"slot {claim.key} was already claimed by {claim.holder}")
    if claim.status is ClaimStatus.STORE_DOWN:
        return Outcome.skipped("store_down", f"state store {coordinator.store.where} is unreachable")
    return Outcome.skipped("not_leader", f"another replica leads ({coordinator.leader or 'unknown'})")


class CoordinatedTrigger:
    """Claim ``ctx.job:ctx.slot``, run ``inner`` while the term lasts, mark the claim done.

    ``grid`` is the job's interval: its slots are claimed on the epoch grid (see
    ``epoch_grid_slot``) so that every replica names a fire the same way.
    """

    def __init__(self, inner: Trigger, coordinator: Coordinator, grid: float | None = None) -> None:
        self.inner = inner
        self.coordinator = coordinator
        self.grid = grid

    async def run(self, ctx: RunContext) -> Outcome:
        slot = epoch_grid_slot(ctx.slot, self.grid) if ctx.slot and self.grid else ctx.slot
        claim, term = await self.coordinator.claim(ctx.job, slot)
        if term is None:
            return _skip(claim, self.coordinator)
        ctx.log.info(
            "slot claimed",
            extra={"claim": claim.key, "epoch": claim.epoch, "replica": self.coordinator.replica},
        )
        try:
            outcome = await self._while_leading(ctx, term)
        finally:
            self.coordinator.finish_soon(claim)
        details = {**outcome.details, "replica": self.coordinator.replica, "claim": claim.key}
        return replace(outcome, details=details)

    async def _while_leading(self, ctx: RunContext, term: Term) -> Outcome:
        run = asyncio.create_task(self.inner.run(ctx))
        ended = asyncio.create_task(term.ended.wait())
        try:
            await asyncio.wait({run, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run
        if run.cancelled():
            ctx.log.warning(LEASE_LOST, extra={"epoch": term.epoch})
            return Outcome.failure(LEASE_LOST)
        return run.result()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class Replicas:
    """The pieces a process needs to run as one of several replicas: one lease for all its jobs."""

    coordinator: Coordinator
    telemetry: ReplicaTelemetry

    def wrap(self, inner: Trigger, mode: Mode) -> CoordinatedTrigger:
        """A job's trigger that runs only for the slots this replica claimed as leader."""
        grid = mode.interval if mode.kind is ModeKind.INTERVAL else None
        return CoordinatedTrigger(inner, self.coordinator, grid)


def replicas_for(config: Config, clock: Clock, registry: CollectorRegistry) -> Replicas:
    """The shared store and its coordinator for ``PROXBOX_SCHEDULER_STATE_URL``."""
    from proxbox_scheduler.state import shared_store_from_url
    from proxbox_scheduler.telemetry.replicas import ReplicaTelemetry

    store = shared_store_from_url(config.state_url, config.replica)
    telemetry = ReplicaTelemetry(registry, config.replica, store.where)
    coordinator = Coordinator(
        store, replica=config.replica, ttl=config.lease_seconds, clock=clock, events=telemetry
    )
    return Replicas(coordinator, telemetry)
