"""What a replica-shared store adds to the state protocol: one lease, fenced claims, abandoned claims.

The lease is one per replica group (``LEASE``): its holder is the leader and
runs every job. Each new holder gets a strictly larger ``epoch`` (the fencing
token). A claim ``<job>:<slot>`` is written only in the same atomic step that
checks the lease is still held by this holder at this epoch, and a claimed key
is never given to anyone else. Lease times run on the store's clock
(PostgreSQL ``clock_timestamp()``, Redis key expiry); nothing here reads the
local wall clock.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Protocol

from .base import StateStore

LEASE = "leader"
"""The name of the one lease of a replica group."""
RUNNING, DONE, ABANDONED = "running", "done", "abandoned"
"""States of a claim: its run is going, it ended, or its holder vanished while it ran."""
CLAIM_RETENTION = dt.timedelta(days=7)
"""Finished and abandoned claims are kept this long, far past any slot a replica could still fire."""


class ClaimStatus(enum.Enum):
    WON = "won"
    LOST = "lost"
    """Someone else (or this replica earlier) already holds the key."""
    NOT_LEADER = "not_leader"
    """The lease is not held by this holder at this epoch: the claim fails on the fence."""
    STORE_DOWN = "store_down"
    """The store could not be asked (the coordinator's verdict; no store returns it)."""


@dataclass(frozen=True)
class Lease:
    """The lease as an acquire attempt left it: ``holder`` is whoever holds it now.

    ``remaining_s`` is how long it still runs on the store's clock, so that a
    follower asks again right after it expires instead of a renew period later.
    """

    holder: str
    epoch: int
    mine: bool
    remaining_s: float = 0.0


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``key`` is the claimed key (continuous mode: the store chose the counter)."""

    status: ClaimStatus
    key: str
    holder: str = ""
    epoch: int = 0


@dataclass(frozen=True)
class AbandonedClaim:
    key: str
    holder: str
    epoch: int


def client_name(replica: str) -> str:
    """How a replica's store connection is named on the server (pg_stat_activity, CLIENT LIST)."""
    return f"proxbox-scheduler:{replica}"[:63]


def slot_key(job: str, slot: dt.datetime | None) -> str:
    """``<job>:<slot>``, the slot in UTC ISO form; continuous runs (no slot) get ``#`` and a counter."""
    if slot is None:
        return f"{job}:#"
    return f"{job}:{slot.astimezone(dt.UTC).isoformat(timespec='milliseconds')}"


class SharedStore(StateStore, Protocol):
    """A StateStore that several replicas open at once (PostgreSQL, Redis)."""

    @property
    def where(self) -> str:
        """The store's address with any password removed, for logs and status."""
        ...

    async def acquire(self, holder: str, ttl_s: float) -> Lease:
        """Take the lease if it is free or expired (new epoch) or extend it if ``holder`` has it."""
        ...

    async def renew(self, holder: str, epoch: int, ttl_s: float) -> bool:
        """Extend the lease only if ``holder`` still has it at ``epoch`` and it has not expired."""
        ...

    async def release(self, holder: str, epoch: int) -> None:
        """Give the lease up (at shutdown) so that another replica takes over at once."""
        ...

    async def claim(self, job: str, slot: dt.datetime | None, holder: str, epoch: int) -> Claim:
        """Claim ``<job>:<slot>`` atomically with the lease check; no ``slot``: the job's next counter."""
        ...

    async def finish_claim(self, key: str, holder: str, epoch: int) -> bool:
        """Mark the claim done; False when it is not this holder's running claim any more (abandoned)."""
        ...

    async def sweep_abandoned(self, epoch: int) -> list[AbandonedClaim]:
        """Mark running claims of older epochs abandoned (their holder lost the lease during the run)."""
        ...
