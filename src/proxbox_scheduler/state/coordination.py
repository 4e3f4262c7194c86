"""Leadership among replicas: one lease per replica group, renewed at a third of its TTL.

The design (README, "Running several replicas"):

- One lease for the whole process, not one per job: its holder, the leader, runs
  every job; the others stand by. Leadership changes at most once per failure.
- Each term has the store's fencing epoch. A run starts only after its
  ``<job>:<slot>`` claim, written by the store in the same atomic step that
  checks this holder still has the lease at that epoch.
- The lease is timed on the store's clock; locally, a term ends at
  ``sent_at + TTL - margin`` on the monotonic clock, where ``sent_at`` is when
  the acquire or renew that succeeded was *sent*. The store's expiry is later
  than that, so this replica stops leading (and cancels its run in flight)
  before another can take over.
- Store errors never raise out of here: the store is marked down (logged once
  per change), nothing is claimed, readiness fails, and the next renew period
  tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .base import StateError
from .shared import AbandonedClaim, Claim, ClaimStatus, SharedStore, slot_key


class Clock(Protocol):
    """The part of the core's clock a coordinator uses (injected, so state imports nothing above it)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float, wake: asyncio.Event) -> bool: ...


log = logging.getLogger("proxbox_scheduler.replicas")
DEFAULT_LEASE_SECONDS = 15.0
RETRY_FRACTION = 10
"""After a failed call the next one comes after TTL / this (not a whole renew period)."""
FOLLOWER_SLACK = 0.05
"""A follower asks again this long after the lease it saw should have expired."""


class CoordinationEvents(Protocol):
    """What the coordinator reports (metrics and /status implement it); hooks must not raise."""

    def on_leading(self, epoch: int, takeover: bool) -> None: ...

    def on_following(self, leader: str, why: str) -> None: ...

    def on_store(self, up: bool, why: str) -> None: ...

    def on_claim(self, status: str) -> None: ...

    def on_abandoned(self, claims: list[AbandonedClaim]) -> None: ...


class _Quiet:
    def on_leading(self, epoch: int, takeover: bool) -> None: ...
    def on_following(self, leader: str, why: str) -> None: ...
    def on_store(self, up: bool, why: str) -> None: ...
    def on_claim(self, status: str) -> None: ...
    def on_abandoned(self, claims: list[AbandonedClaim]) -> None: ...


@dataclass
class Term:
    """One stretch of leadership: its epoch, its local deadline, and an event set when it ends."""

    epoch: int
    deadline: float
    ended: asyncio.Event = field(default_factory=asyncio.Event)


def _holder(replica: str) -> str:
    """A holder token per term: a term that ended never resumes, its successor gets a new epoch."""
    return f"{replica}/{uuid.uuid4().hex[:8]}"


def margin_for(ttl: float) -> float:
    """How long before the store's expiry this replica gives up: a sixth of the TTL, at most 2 s."""
    return min(ttl / 6, 2.0)


class Coordinator:
    """Keeps (or waits for) the lease; claims slots for the runs of the leader."""

    def __init__(
        self,
        store: SharedStore,
        *,
        replica: str,
        clock: Clock,
        ttl: float = DEFAULT_LEASE_SECONDS,
        events: CoordinationEvents | None = None,
    ) -> None:
        self.store = store
        self.replica = replica
        self.holder = _holder(replica)
        self.ttl = ttl
        self.clock = clock
        self.events: CoordinationEvents = events or _Quiet()
        self.term: Term | None = None
        self.store_up: bool | None = None
        self.leader = ""
        self._opened = False
        self.active = False
        """True while ``run`` keeps the lease (``once`` runs without it)."""
        self._pending: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ queries

    def leading(self) -> Term | None:
        """The current term, if this replica leads and its local deadline has not passed."""
        term = self.term
        if term is not None and self.clock.monotonic() >= term.deadline:
            self._demote("the lease could not be renewed before its deadline")
            return None
        return term

    def ready(self) -> tuple[bool, str]:
        """For /readyz: not ready while the shared store is unreachable."""
        if self.store_up:
            return True, "store up"
        return False, f"state store {self.store.where} is unreachable"

    # ------------------------------------------------------------ the lease loop

    async def run(self, stop: asyncio.Event) -> None:
        """Open the store, then acquire or renew every TTL/3 until ``stop``; give the lease up at the end."""
        self.active = True
        try:
            while not stop.is_set():
                pause = await self._tick()
                await self.clock.sleep(pause, stop)
        finally:
            await self._shutdown()
            self.active = False

    async def _tick(self) -> float:
        """One acquire or renew; the pause until the next one."""
        sent = self.clock.monotonic()
        try:
            if not self._opened:
                await asyncio.wait_for(self.store.open(), self.ttl)
                self._opened = True
            # past the local deadline the term is over, whatever the store would still say
            pause = await (self._renew(sent) if self.leading() is not None else self._acquire(sent))
        except (StateError, TimeoutError) as exc:
            self._store_state(False, str(exc) or "the store did not answer in time")
            self.leading()  # past the deadline: stop leading now
            return self._retry_pause()
        self._store_state(True, "")
        return pause

    def _retry_pause(self) -> float:
        pause = self.ttl / RETRY_FRACTION
        if self.term is not None:
            pause = max(0.0, min(pause, self.term.deadline - self.clock.monotonic()))
        return pause

    def _call_budget(self) -> float:
        """A renew may not outlive the term's deadline; an acquire gets a renew period."""
        if self.term is None:
            return self.ttl / 3
        return max(0.05, self.term.deadline - self.clock.monotonic())

    async def _renew(self, sent: float) -> float:
        term = self.term
        assert term is not None
        held = await asyncio.wait_for(
            self.store.renew(self.holder, term.epoch, self.ttl), self._call_budget()
        )
        if self.term is not term:  # the deadline passed while the call was out
            return 0.0
        if not held:
            self._demote("the lease was taken over or expired")
            return 0.0
        term.deadline = sent + self.ttl - margin_for(self.ttl)
        return self.ttl / 3

    async def _acquire(self, sent: float) -> float:
        lease = await asyncio.wait_for(self.store.acquire(self.holder, self.ttl), self._call_budget())
        if not lease.mine:
            if lease.holder != self.leader:
                self.leader = lease.holder
                log.info("following", extra={"leader": lease.holder, "epoch": lease.epoch})
                self.events.on_following(lease.holder, "another replica holds the lease")
            return min(self.ttl / 3, lease.remaining_s + FOLLOWER_SLACK)
        takeover = bool(self.leader) and self.leader != self.holder
        self.term = Term(lease.epoch, sent + self.ttl - margin_for(self.ttl))
        self.leader = self.holder
        log.info("leading", extra={"epoch": lease.epoch, "holder": self.holder, "takeover": takeover})
        self.events.on_leading(lease.epoch, takeover)
        await self._sweep(lease.epoch)
        return self.ttl / 3

    async def _sweep(self, epoch: int) -> None:
        """Claims left running by an older epoch are abandoned: reported, never run again."""
        abandoned = await asyncio.wait_for(self.store.sweep_abandoned(epoch), self._call_budget())
        for claim in abandoned:
            log.warning(
                "claim abandoned: its holder lost the lease during the run; the slot is not run again",
                extra={"claim": claim.key, "holder": claim.holder, "epoch": claim.epoch},
            )
        if abandoned:
            self.events.on_abandoned(abandoned)

    def _demote(self, why: str) -> None:
        term, self.term = self.term, None
        if term is None:
            return
        self.leader = ""
        self.holder = _holder(self.replica)
        term.ended.set()
        log.warning("stopped leading: %s", why, extra={"epoch": term.epoch})
        self.events.on_following("", why)

    def _store_state(self, up: bool, why: str) -> None:
        if up == self.store_up:
            return
        self.store_up = up
        if up:
            log.info("state store reachable", extra={"store": self.store.where})
        else:
            log.error(
                "state store unreachable: no replica runs anything until it is back",
                extra={"store": self.store.where, "reason": why},
            )
        self.events.on_store(up, why)

    async def _shutdown(self) -> None:
        """Finish pending claim updates, give the lease up (a rolling restart hands over at once)."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=self.ttl / 3)
        term, holder = self.term, self.holder
        self._demote("shutting down")
        if term is not None:
            with contextlib.suppress(StateError, TimeoutError):
                await asyncio.wait_for(self.store.release(holder, term.epoch), self.ttl / 3)
        with contextlib.suppress(StateError, TimeoutError):
            await asyncio.wait_for(self.store.close(), self.ttl / 3)

    # ------------------------------------------------------------ claims

    async def claim(self, job: str, slot: datetime | None) -> tuple[Claim, Term | None]:
        """Claim ``<job>:<slot>`` for a run; the term to watch when it was won."""
        term = self.leading()
        if term is None:
            status = ClaimStatus.NOT_LEADER if self.store_up else ClaimStatus.STORE_DOWN
            self.events.on_claim(status.value)
            return Claim(status, slot_key(job, slot)), None
        try:
            claim = self.store.claim(job, slot, self.holder, term.epoch)
            found = await asyncio.wait_for(claim, self._call_budget())
        except (StateError, TimeoutError) as exc:
            self._store_state(False, str(exc) or "the store did not answer in time")
            self.events.on_claim(ClaimStatus.STORE_DOWN.value)
            return Claim(ClaimStatus.STORE_DOWN, slot_key(job, slot)), None
        self._store_state(True, "")
        self.events.on_claim(found.status.value)
        if found.status is ClaimStatus.NOT_LEADER:
            self._demote(f"the claim failed on the fence (epoch {term.epoch} is no longer current)")
        return found, (term if found.status is ClaimStatus.WON else None)

    def finish_soon(self, claim: Claim) -> None:
        """Mark a claim done in the background: a run's end never waits on the store."""
        task = asyncio.get_running_loop().create_task(self._finish(claim))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _finish(self, claim: Claim) -> None:
        try:
            if not await asyncio.wait_for(
                self.store.finish_claim(claim.key, claim.holder, claim.epoch), self.ttl / 3
            ):
                log.warning("claim %s was abandoned by the next leader before it ended", claim.key)
        except (StateError, TimeoutError) as exc:
            log.warning("claim %s could not be marked done: %s", claim.key, exc)
