"""What NetBox's Jobs API answers mean for the scheduler (pure: no I/O).

The plugin runs every NetBox-side sync as a Job whose name starts with
"Proxbox Sync" ("Proxbox Sync" for the recurring schedule, "Proxbox Sync:
Full update (CLI)" for ``proxbox_sync``). A job that is pending or running
(or scheduled for a time already past) is a sync beside which we must not run;
a job with an ``interval`` is a recurring NetBox-side schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

JOBS_PATH = "/api/core/jobs/"
SYNC_JOB_PREFIX = "Proxbox Sync"
ENQUEUED_STATUSES = ("pending", "scheduled", "running")
BUSY_STATUSES = frozenset({"pending", "running"})
PAGE_LIMIT = 100
"""More enqueued proxbox jobs than this at once would itself be the problem; one page is enough."""


class JobsAnswerError(ValueError):
    """The body is not a Jobs API list (wrong URL, a proxy's page, another API)."""


def jobs_query() -> list[tuple[str, str]]:
    """The query for ``GET /api/core/jobs/``: enqueued jobs of the plugin's sync job class."""
    query = [("name__isw", SYNC_JOB_PREFIX)]
    query += [("status", status) for status in ENQUEUED_STATUSES]
    return [*query, ("ordering", "id"), ("limit", str(PAGE_LIMIT))]


@dataclass(frozen=True)
class NetBoxJob:
    """One NetBox Job, reduced to what the busy check and the schedule check need."""

    id: int
    name: str
    status: str
    interval: int | None = None
    scheduled: datetime | None = None
    started: datetime | None = None
    created: datetime | None = None

    @property
    def recurring(self) -> bool:
        return self.interval is not None

    def busy(self, now: datetime) -> bool:
        """Running, waiting for a worker, or scheduled for a moment already reached."""
        if self.status in BUSY_STATUSES:
            return True
        return self.status == "scheduled" and self.scheduled is not None and self.scheduled <= now

    def describe(self) -> str:
        """E.g. "NetBox job 50 'Proxbox Sync: Full update (CLI)' running since 2026-12-01T12:01:21Z"."""
        since = self.started if self.status == "running" else self.scheduled or self.created
        when = f" since {_shown(since)}" if since is not None else ""
        return f"NetBox job {self.id} {self.name!r} {self.status}{when}"

    def describe_schedule(self) -> str:
        """E.g. "NetBox job 7 'Proxbox Sync' every 60 min, next at 2026-12-01T13:00:00Z"."""
        nxt = f", next at {_shown(self.scheduled)}" if self.scheduled is not None else ""
        return f"NetBox job {self.id} {self.name!r} every {self.interval} min{nxt}"


def _shown(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _status(value: Any) -> str:
    """NetBox's REST API nests choices ({"value": "running", "label": "Running"}); accept both forms."""
    if isinstance(value, dict):
        value = value.get("value")
    return value.lower() if isinstance(value, str) else ""


def parse_job(item: Any) -> NetBoxJob | None:
    """A job of the plugin's sync class, or None for anything else (other jobs, malformed rows)."""
    if not isinstance(item, dict):
        return None
    ident, name, interval = item.get("id"), item.get("name"), item.get("interval")
    if not isinstance(ident, int) or not isinstance(name, str) or not name.startswith(SYNC_JOB_PREFIX):
        return None
    if isinstance(interval, bool) or not isinstance(interval, int):
        interval = None
    return NetBoxJob(
        id=ident,
        name=name,
        status=_status(item.get("status")),
        interval=interval,
        scheduled=_time(item.get("scheduled")),
        started=_time(item.get("started")),
        created=_time(item.get("created")),
    )


def parse_jobs(body: Any) -> tuple[NetBoxJob, ...]:
    """The sync jobs of a Jobs API answer (a page ``{"results": [...]}`` or a bare list).

    Jobs of other classes are dropped here too, so a NetBox that ignored the
    ``name__isw`` filter cannot make us wait on its search-cache updates.
    """
    items = body.get("results") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise JobsAnswerError("the answer is not a Jobs API list (no 'results')")
    jobs = (parse_job(item) for item in items)
    return tuple(job for job in jobs if job is not None and job.status in ENQUEUED_STATUSES)


def first_busy(jobs: tuple[NetBoxJob, ...], now: datetime) -> NetBoxJob | None:
    """The job that makes NetBox busy, running ones first."""
    busy = sorted((job for job in jobs if job.busy(now)), key=lambda job: (job.status != "running", job.id))
    return busy[0] if busy else None


def first_recurring(jobs: tuple[NetBoxJob, ...]) -> NetBoxJob | None:
    return next((job for job in jobs if job.recurring), None)
