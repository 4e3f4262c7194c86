"""The ``memory`` store: the state protocol without persistence (``PROXBOX_SCHEDULER_STATE_PATH=memory``).

It behaves like the SQLite store for one process lifetime (same bounds, same
ordering, same counters), so the loop cannot tell them apart until a restart,
after which everything is forgotten and nothing is reported interrupted.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from .base import (
    DEFAULT_RECENT,
    Bounds,
    Counters,
    JobState,
    Opened,
    RunRecord,
    RunStart,
    StateError,
    utcnow,
)


def _advance(job: JobState, record: RunRecord, counters: Counters) -> JobState:
    """The job's remembered fields after ``record`` finished (SQLite does the same in one UPDATE)."""
    return replace(job, counters=counters, last_success=record if record.ok else job.last_success)


def _later_slot(current: dt.datetime | None, slot: dt.datetime | None) -> dt.datetime | None:
    """The newer of two slots: a late or replayed start never moves ``last_slot`` back."""
    if slot is None:
        return current
    return slot if current is None or slot > current else current


class MemoryStore:
    """Per-job state in dicts; history in a deque bounded by ``bounds``."""

    def __init__(self, bounds: Bounds | None = None, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.bounds = bounds or Bounds()
        self._now = now
        self._jobs: dict[str, JobState] = {}
        self._runs: dict[str, deque[RunRecord]] = {}
        self._in_flight: dict[str, RunStart] = {}
        self._open = False

    def _job(self, job: str) -> JobState:
        if not self._open:
            raise StateError("the state store is not open")
        return self._jobs.setdefault(job, JobState(job))

    async def open(self) -> Opened:
        self._open = True
        return Opened()

    async def load(self, job: str, recent: int = DEFAULT_RECENT) -> JobState:
        state = self._job(job)
        self._prune(job)
        return replace(state, runs=tuple(list(self._runs.get(job, ()))[:recent]))

    async def run_started(self, start: RunStart) -> None:
        state = self._job(start.job)
        self._in_flight[start.run_id] = start
        self._jobs[start.job] = replace(state, last_slot=_later_slot(state.last_slot, start.slot))

    async def run_finished(self, record: RunRecord, counters: Counters) -> None:
        state = self._job(record.job)
        self._in_flight.pop(record.run_id, None)
        runs = self._runs.setdefault(record.job, deque())
        kept = [record, *(r for r in runs if r.run_id != record.run_id)]
        kept.sort(key=lambda r: r.started, reverse=True)  # stable: among equal starts, newest insert first
        self._runs[record.job] = deque(kept[: self.bounds.max_runs])
        self._jobs[record.job] = _advance(state, record, counters)
        self._prune(record.job)

    async def set_paused(self, job: str, paused: bool) -> None:
        self._jobs[job] = replace(self._job(job), paused=paused)

    async def history(
        self, job: str, since: dt.datetime, until: dt.datetime | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        self._job(job)
        self._prune(job)
        found = [
            r for r in self._runs.get(job, ()) if r.started >= since and (until is None or r.started < until)
        ]
        return found if limit is None else found[:limit]

    async def close(self) -> None:
        self._open = False

    def _prune(self, job: str) -> None:
        """Drop runs older than the age bound (the count bound is kept on every insert)."""
        runs = self._runs.get(job)
        cutoff = self._now() - self.bounds.max_age
        while runs and runs[-1].started < cutoff:
            runs.pop()
