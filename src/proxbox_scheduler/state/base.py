"""The state store's records and protocol: what survives a restart, per job.

Every store (memory, SQLite; later PostgreSQL and Redis for replicas) keeps the
same things and behaves the same way, so the loop and the status code depend
only on this module. Times are aware UTC datetimes; anything else is rejected
when a record is built, so no store has to guess a zone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

SUCCESS_LABELS = frozenset({"success", "degraded"})
"""Outcome labels that count as a success (they set ``last_success``)."""
INTERRUPTED = "interrupted"
"""The label of a run found in flight when a store was opened: the process died during it."""
MAX_COUNTS = 64
"""Most entries a run's ``counts`` may have (they become status fields, so they stay few)."""
MAX_NAME = 64
"""Longest count name, job name, trigger kind, outcome label or replica name."""
MAX_REASON = 1000
"""Reasons longer than this are cut (with an ellipsis) when the record is built."""
DEFAULT_MAX_RUNS = 1000
"""History bound per job: the newest this many runs are kept ..."""
DEFAULT_MAX_AGE = dt.timedelta(days=90)
"""... and none that started longer ago than this."""
DEFAULT_RECENT = 50
"""Runs a ``JobState`` carries unless asked for another number."""


def _countable(name: object, value: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and type(value) is int


def history_counts(counts: object) -> dict[str, int]:
    """A run's object counts as history keeps them: whole numbers under bounded names, at most MAX_COUNTS."""
    if not isinstance(counts, Mapping):
        return {}
    kept = {k: v for k, v in counts.items() if _countable(k, v)}
    return dict(list(kept.items())[:MAX_COUNTS])


def utcnow() -> dt.datetime:
    """The stores' default clock (tests pass their own)."""
    return dt.datetime.now(dt.UTC)


class StateError(Exception):
    """Any failure of a store; the message is one line, safe to log (no secrets, no traceback)."""


class StateUnavailable(StateError):
    """The store cannot be opened or written at start: the caller exits 2 naming the setting."""


class StateLocked(StateUnavailable):
    """Another process holds the store (a running scheduler): ``once`` can go on without it."""


class StateWriteFailed(StateError):
    """A write failed after a successful open (disk full, file removed): the loop logs it and goes on."""


def _utc(name: str, value: dt.datetime | None, optional: bool = False) -> dt.datetime | None:
    """``value`` as UTC; naive datetimes are refused because their zone would be a guess."""
    if value is None and optional:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(dt.UTC)


def _name(name: str, value: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or (not value and not empty_ok):
        raise ValueError(f"{name} must be a string of 1..{MAX_NAME} characters, got {value!r}")
    return value


def _counts(counts: dict[str, int]) -> dict[str, int]:
    if len(counts) > MAX_COUNTS:
        raise ValueError(f"counts has {len(counts)} entries; at most {MAX_COUNTS} are kept")
    for key, value in counts.items():
        _name("count name", key)
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise ValueError(f"count {key!r} must be a 64-bit int, got {value!r}")
    return dict(counts)


def clip_reason(reason: str) -> str:
    """``reason`` cut to ``MAX_REASON`` characters, so one verbose failure cannot bloat the history."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


@dataclass(frozen=True)
class RunStart:
    """A run about to start: persisted before it starts, so a SIGKILL leaves evidence."""

    run_id: str
    job: str
    started: dt.datetime
    trigger: str
    slot: dt.datetime | None = None
    replica: str = ""

    def __post_init__(self) -> None:
        _name("run_id", self.run_id)
        _name("job", self.job)
        _name("trigger", self.trigger)
        _name("replica", self.replica, empty_ok=True)
        object.__setattr__(self, "started", _utc("started", self.started))
        object.__setattr__(self, "slot", _utc("slot", self.slot, optional=True))

    def finish(
        self,
        ended: dt.datetime,
        duration_s: float,
        outcome: str,
        reason: str = "",
        counts: dict[str, int] | None = None,
    ) -> RunRecord:
        """The record of this run once it ended (``duration_s`` from the monotonic clock)."""
        return RunRecord(
            self.run_id, self.job, self.started, ended, duration_s, outcome, reason,
            self.trigger, self.slot, counts or {}, self.replica,
        )  # fmt: skip

    def interrupted(self, found: dt.datetime) -> RunRecord:
        """The record of this run when a later open finds it still in flight."""
        when = found.astimezone(dt.UTC).isoformat(timespec="seconds")
        reason = f"the process ended during this run (found in flight at {when})"
        return RunRecord(
            self.run_id, self.job, self.started, None, None, INTERRUPTED, reason,
            self.trigger, self.slot, {}, self.replica,
        )  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """One finished (or interrupted) run as the history keeps it.

    ``ended`` and ``duration_s`` are None only for ``interrupted`` runs: when the
    process died is not known, only when the run started.
    """

    run_id: str
    job: str
    started: dt.datetime
    ended: dt.datetime | None
    duration_s: float | None
    outcome: str
    reason: str = ""
    trigger: str = "scheduled"
    slot: dt.datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    replica: str = ""

    def __post_init__(self) -> None:
        RunStart(self.run_id, self.job, self.started, self.trigger, self.slot, self.replica)
        _name("outcome", self.outcome)
        if (self.ended is None) != (self.duration_s is None):
            raise ValueError("ended and duration_s are both set or both None")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(f"duration_s must be a finite number >= 0, got {self.duration_s!r}")
        object.__setattr__(self, "started", _utc("started", self.started))
        object.__setattr__(self, "ended", _utc("ended", self.ended, optional=True))
        object.__setattr__(self, "slot", _utc("slot", self.slot, optional=True))
        object.__setattr__(self, "reason", clip_reason(str(self.reason)))
        object.__setattr__(self, "counts", _counts(self.counts))

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS_LABELS


@dataclass(frozen=True)
class Counters:
    """What the loop decided after a run; the store keeps it, it does not recompute it.

    ``auth_streak`` is the number of consecutive rejected-key failures (the
    doubling exponent's source); the loop resets it on success only.
    """

    consecutive_failures: int = 0
    auth_streak: int = 0

    def __post_init__(self) -> None:
        for name in ("consecutive_failures", "auth_streak"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < 2**31:
                raise ValueError(f"{name} must be an int in 0..2**31-1, got {value!r}")


@dataclass(frozen=True)
class JobState:
    """What a job remembers at load: enough to rebuild its status and its backoff.

    ``runs`` is newest first. ``last_success`` survives history pruning.
    ``last_slot`` is the newest nominal fire time that was *started* (set by
    ``run_started``), so a slot whose run was interrupted is not run again.
    ``interrupted`` lists this job's runs that the last open found in flight.
    """

    job: str
    runs: tuple[RunRecord, ...] = ()
    last_success: RunRecord | None = None
    counters: Counters = Counters()
    last_slot: dt.datetime | None = None
    paused: bool = False
    interrupted: tuple[RunRecord, ...] = ()


@dataclass(frozen=True)
class Opened:
    """What ``open`` found: warning lines for the log (e.g. a corrupt file moved aside), interrupted runs."""

    warnings: tuple[str, ...] = ()
    interrupted: tuple[RunRecord, ...] = ()


@dataclass(frozen=True)
class Bounds:
    """How much history a store keeps per job."""

    max_runs: int = DEFAULT_MAX_RUNS
    max_age: dt.timedelta = DEFAULT_MAX_AGE

    def __post_init__(self) -> None:
        if self.max_runs < 1 or self.max_age <= dt.timedelta(0):
            raise ValueError("max_runs must be >= 1 and max_age > 0")


class StateStore(Protocol):
    """The async interface every store implements; all calls but ``open`` need an open store.

    Stores are used from one event loop. A replica-shared store (issue 14) adds
    claims and leases as further methods; nothing here assumes one process,
    except that ``open`` of a single-instance store treats every run still in
    flight as interrupted.
    """

    async def open(self) -> Opened:
        """Open (create if missing); record runs left in flight as interrupted. Raises StateUnavailable."""
        ...

    async def load(self, job: str, recent: int = DEFAULT_RECENT) -> JobState:
        """The job's state with its newest ``recent`` runs (an unknown job gets a fresh state)."""
        ...

    async def run_started(self, start: RunStart) -> None:
        """Mark ``start`` in flight and advance the job's ``last_slot``; durable when this returns."""
        ...

    async def run_finished(self, record: RunRecord, counters: Counters) -> None:
        """Add ``record`` to the history, clear it from in flight, keep ``counters``: one transaction."""
        ...

    async def set_paused(self, job: str, paused: bool) -> None:
        """Remember whether ``job`` is paused."""
        ...

    async def history(
        self, job: str, since: dt.datetime, until: dt.datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """The job's runs that started in [since, until), newest first."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the store; safe to call twice."""
        ...
