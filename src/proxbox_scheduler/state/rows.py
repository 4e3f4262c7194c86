"""The SQLite schema (version 1) and the conversions between records and rows.

Times are stored as integer microseconds since the Unix epoch (UTC): exact,
ordered, and cheap to compare in the indexes that the 24 h timeline query uses.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .base import Counters, JobState, RunRecord, RunStart

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)

SCHEMA = (
    """CREATE TABLE jobs (
        job TEXT PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        auth_streak INTEGER NOT NULL DEFAULT 0,
        last_slot_us INTEGER,
        paused INTEGER NOT NULL DEFAULT 0,
        last_success TEXT
    )""",
    """CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        ended_us INTEGER,
        duration_s REAL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL,
        trigger TEXT NOT NULL,
        slot_us INTEGER,
        counts TEXT NOT NULL,
        replica TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_job ON runs (job, started_us DESC, seq DESC)",
    """CREATE TABLE in_flight (
        run_id TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        slot_us INTEGER,
        replica TEXT NOT NULL
    )""",
)

RUN_COLUMNS = (
    "run_id, job, started_us, ended_us, duration_s, outcome, reason, trigger, slot_us, counts, replica"
)
UPSERT_RUN = f"INSERT OR REPLACE INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
NEWEST_FIRST = "ORDER BY started_us DESC, seq DESC"
SELECT_RECENT = f"SELECT {RUN_COLUMNS} FROM runs WHERE job = ? AND started_us >= ? {NEWEST_FIRST} LIMIT ?"
SELECT_WINDOW = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE job = ? AND started_us >= ? AND started_us < ?"
    f" {NEWEST_FIRST} LIMIT ?"
)
PRUNE_AGE = "DELETE FROM runs WHERE job = ? AND started_us < ?"
PRUNE_COUNT = (
    f"DELETE FROM runs WHERE seq IN (SELECT seq FROM runs WHERE job = ? {NEWEST_FIRST} LIMIT -1 OFFSET ?)"
)
START_COLUMNS = "run_id, job, started_us, trigger, slot_us, replica"
INSERT_IN_FLIGHT = f"INSERT OR REPLACE INTO in_flight ({START_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
SELECT_IN_FLIGHT = f"SELECT {START_COLUMNS} FROM in_flight ORDER BY started_us"
ENSURE_JOB = "INSERT OR IGNORE INTO jobs (job) VALUES (?)"
ADVANCE_SLOT = "UPDATE jobs SET last_slot_us = max(coalesce(last_slot_us, ?1), ?1) WHERE job = ?2"
SET_COUNTERS = "UPDATE jobs SET consecutive_failures = ?, auth_streak = ? WHERE job = ?"
SET_LAST_SUCCESS = "UPDATE jobs SET last_success = ? WHERE job = ?"
SELECT_JOB = (
    "SELECT consecutive_failures, auth_streak, last_slot_us, paused, last_success FROM jobs WHERE job = ?"
)


def to_us(when: dt.datetime) -> int:
    return (when - EPOCH) // MICROSECOND


def from_us(us: int | None) -> dt.datetime | None:
    return None if us is None else EPOCH + us * MICROSECOND


def run_to_row(r: RunRecord) -> tuple[Any, ...]:
    ended = None if r.ended is None else to_us(r.ended)
    slot = None if r.slot is None else to_us(r.slot)
    counts = json.dumps(r.counts, separators=(",", ":"))
    return (
        r.run_id,
        r.job,
        to_us(r.started),
        ended,
        r.duration_s,
        r.outcome,
        r.reason,
        r.trigger,
        slot,
        counts,
        r.replica,
    )


def run_from_row(row: tuple[Any, ...] | list[Any]) -> RunRecord:
    run_id, job, started, ended, duration, outcome, reason, trigger, slot, counts, replica = row
    return RunRecord(
        run_id, job, from_us(started), from_us(ended), duration, outcome, reason,  # type: ignore[arg-type]
        trigger, from_us(slot), json.loads(counts), replica,
    )  # fmt: skip


def record_json(r: RunRecord) -> str:
    """The last success, kept on the job's row so that pruning the history cannot lose it."""
    return json.dumps(run_to_row(r), separators=(",", ":"))


def start_to_row(s: RunStart) -> tuple[Any, ...]:
    slot = None if s.slot is None else to_us(s.slot)
    return (s.run_id, s.job, to_us(s.started), s.trigger, slot, s.replica)


def start_from_row(row: tuple[Any, ...]) -> RunStart:
    run_id, job, started, trigger, slot, replica = row
    return RunStart(run_id, job, from_us(started), trigger, from_us(slot), replica)  # type: ignore[arg-type]


def job_state(
    job: str, head: tuple[Any, ...] | None, runs: list[RunRecord], interrupted: tuple[RunRecord, ...]
) -> JobState:
    """A JobState from the job's row (None for a job never seen) and its recent runs."""
    if head is None:
        return JobState(job, tuple(runs), interrupted=interrupted)
    failures, streak, slot, paused, success = head
    return JobState(
        job=job,
        runs=tuple(runs),
        last_success=None if success is None else run_from_row(json.loads(success)),
        counters=Counters(failures, streak),
        last_slot=from_us(slot),
        paused=bool(paused),
        interrupted=interrupted,
    )
