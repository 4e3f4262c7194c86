"""Live state for /status, /livez and /readyz: per job the current run, the last runs, the pulse.

Written by the loops (through each job's observer hooks) and read by the HTTP
server's thread, so every access holds the one lock and readers get copies.
After a restart each job starts from what the state store remembered.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind, Status
from proxbox_scheduler.state.base import JobState, RunRecord

HISTORY = 20
"""Runs in the top-level ``runs`` (the first job's, kept for readers from before jobs)."""
JOB_HISTORY = 200
"""Runs per job in ``jobs[].runs``: a day of a 10-minute schedule for the page's timeline."""
SKIP_HISTORY = 200
"""Skipped fires (overrun, backoff, paused, busy) kept per job, for the timeline's marks."""
REASON_CHARS = 1000
"""Cap on the reason one history entry keeps (the counts are bounded by the verdict)."""
LOOP_ANSWER_SECONDS = 2.0
"""How long /livez waits for the event loop to run a callback before calling it stuck."""
TOP_LEVEL = ("mode", "zone", "invoke", "target", "state", "next_fire", "last_success")
"""The first job's fields also shown at the top of /status (they were the whole status before jobs),
with its ``current`` as ``current_run`` and its newest ``HISTORY`` runs as ``runs``."""

LoopProbe = Callable[[float], bool]
"""Asks the event loop to answer within the given seconds; False when it did not."""
Gate = Callable[[], tuple[bool, str]]
"""A further readiness condition (e.g. the shared state store answers): (ready, why)."""


def _no_probe(timeout: float) -> bool:
    return True


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


def _entry(record: RunRecord) -> dict[str, Any]:
    """A remembered run in the shape of a live one (``duration_s`` None: interrupted; no stages kept)."""
    duration = None if record.duration_s is None else round(record.duration_s, 3)
    return {
        "id": record.run_id,
        "start": _iso(record.started),
        "end": _iso(record.ended),
        "duration_s": duration,
        "outcome": record.outcome,
        "reason": record.reason,
        "counts": dict(record.counts),
        "stages": [],
        "trigger": record.trigger,
    }


def _stage_figures(progress: Progress) -> dict[str, Any]:
    """What the status keeps of a completed stage: its place, duration and counts."""
    return {
        "stage": progress.stage,
        "index": progress.index,
        "duration_s": progress.duration_s,
        "count": progress.count,
        "created": progress.created,
        "updated": progress.updated,
    }


def _copy_run(run: dict[str, Any]) -> dict[str, Any]:
    """A reader's copy: the run and its stage list are the lock holder's."""
    return {**run, "stages": [dict(stage) for stage in run.get("stages", [])]}


class JobStatus(Observer):
    """One job's part of the status; ``info`` is its name, mode, zone, invoke and target."""

    def __init__(
        self,
        info: dict[str, Any],
        lock: threading.Lock,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.info = dict(info)
        self.name = str(info.get("name", "default"))
        self._lock = lock
        self._monotonic = monotonic
        self._wall = wall
        off = info.get("mode") == "off"
        self.state, self.ready = ("off", True) if off else ("starting", False)
        self._next_fire: datetime | None = None
        self.current: dict[str, Any] | None = None
        self.current_mono = 0.0
        self._history: deque[dict[str, Any]] = deque(maxlen=JOB_HISTORY)
        self._skips: deque[dict[str, Any]] = deque(maxlen=SKIP_HISTORY)
        self._last_success: datetime | None = None
        self._failures = 0
        self._paused = False
        self._trigger = "scheduled"

    def restore(self, remembered: JobState) -> None:
        """Start from what the store kept: history (interrupted runs among it), last success, failures."""
        with self._lock:
            self._history.extend(_entry(run) for run in remembered.runs[:JOB_HISTORY])
            if remembered.last_success is not None:
                self._last_success = remembered.last_success.started
            self._failures = remembered.counters.consecutive_failures

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        with self._lock:
            self.state, self.ready, self._next_fire = "waiting", True, next_fire

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        with self._lock:
            self._trigger = trigger

    def on_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused

    def on_run_start(self, run_id: str, started: datetime) -> None:
        with self._lock:
            self.state, self.ready = "running", True
            self.current = {
                "id": run_id,
                "start": _iso(started),
                "trigger": self._trigger,
                "stage": None,
                "stage_index": None,
                "stages_total": None,
                "stages_done": 0,
                "stages": [],
            }
            self.current_mono = self._monotonic()

    def on_progress(self, run_id: str, progress: Progress) -> None:
        with self._lock:
            if not self.current or self.current["id"] != run_id:
                return
            if progress.kind is ProgressKind.STAGE_STARTED:
                self.current["stage"] = progress.stage
                self.current["stage_index"] = progress.index
                self.current["stages_total"] = progress.total
            elif progress.kind is ProgressKind.STAGE_COMPLETED:
                self.current["stages_done"] += 1
                self.current["stages"].append(_stage_figures(progress))

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        with self._lock:
            current = self.current or {}
            start = current.get("start")
            end = datetime.fromisoformat(start) + timedelta(seconds=duration) if start else None
            self._history.appendleft(
                {
                    "id": run_id,
                    "start": start,
                    "end": _iso(end),
                    "duration_s": round(duration, 3),
                    "outcome": outcome.label.value,
                    "reason": outcome.reason[:REASON_CHARS],
                    "counts": dict(outcome.details.get("counts", {})),
                    **({"replica": outcome.details["replica"]} if "replica" in outcome.details else {}),
                    "stages": list(current.get("stages", [])),
                    "trigger": current.get("trigger", self._trigger),
                }
            )
            if outcome.ok and start:
                self._last_success = datetime.fromisoformat(start)
            if outcome.ok:
                self._failures = 0
            elif outcome.status is Status.FAILURE:
                self._failures += 1
            self.current = None
            self.state = "waiting"
            self._trigger = "scheduled"

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        with self._lock:
            self._skips.appendleft({"at": _iso(self._wall()), "reason": reason, "count": count})

    def on_stop(self) -> None:
        with self._lock:
            self.state, self.ready = "stopping", False

    def snapshot(self) -> dict[str, Any]:
        """This job's entry of /status (the caller holds the lock); a waiting paused job is ``paused``."""
        return {
            **self.info,
            "state": "paused" if self.state == "waiting" and self._paused else self.state,
            "paused": self._paused,
            "next_fire": _iso(self._next_fire) if self.state not in ("running", "off") else None,
            "current": _copy_run(self.current) if self.current else None,
            "last_success": _iso(self._last_success),
            "consecutive_failures": self._failures,
            "runs": [_copy_run(run) for run in self._history],
            "skips": [dict(skip) for skip in self._skips],
        }


class StatusStore:
    """Thread-safe record of what every job is doing and has done; ``info`` is the process's (version)."""

    def __init__(
        self,
        info: dict[str, Any],
        *,
        hard_limit: float,
        monotonic: Callable[[], float],
        loop_probe: LoopProbe = _no_probe,
        jobs: Sequence[dict[str, Any]] = ({"name": "default"},),
        wall: Callable[[], datetime] = _utc_now,
        limits: Mapping[str, tuple[float, str]] | None = None,
    ) -> None:
        """``hard_limit`` is how long a run may go before /livez fails; ``limits`` gives a job its
        own (seconds, and the setting that holds its run timeout, named in the reason)."""
        self.loop_probe = loop_probe
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._info = dict(info)
        self._hard_limit = hard_limit  # run timeout + shutdown grace: past it a run is wedged
        self._limits = dict(limits or {})
        self.jobs = [JobStatus(job, self._lock, monotonic, wall) for job in jobs]
        self.sections: dict[str, Callable[[], Any]] = {}
        """Extra /status sections computed when read (e.g. ``replica``), set by whoever wires them."""
        self.gates: list[Gate] = []
        """Extra readiness conditions (e.g. the shared store is up), checked on every /readyz."""

    def job(self, name: str) -> JobStatus:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    def snapshot(self, job: str | None = None) -> dict[str, Any]:
        """All of /status (the first job's fields also at the top), or one job's entry (KeyError: unknown)."""
        with self._lock:
            if job is not None:
                return {**self._info, **self.job(job).snapshot()}
            entries = [each.snapshot() for each in self.jobs]
        first = entries[0]
        top = {k: first[k] for k in TOP_LEVEL if k in first}
        runs = first["runs"][:HISTORY]
        extra = {name: section() for name, section in self.sections.items()}
        return {**self._info, **top, "current_run": first["current"], "runs": runs, "jobs": entries, **extra}

    def live(self) -> tuple[bool, str]:
        """Alive unless a run outlived its hard limit or the event loop does not answer.

        Asking the loop on demand costs nothing while idle, unlike a heartbeat timer.
        """
        now = self._monotonic()
        with self._lock:
            for job in self.jobs:
                limit, setting = self._limits.get(job.name, (self._hard_limit, "its run timeout"))
                if job.current and now - job.current_mono > limit:
                    run = f"run {job.current['id']} of job {job.name}"
                    return False, f"{run} is past {setting} plus the grace"
            state = self.jobs[0].state
        if not self.loop_probe(LOOP_ANSWER_SECONDS):
            return False, f"the scheduler loop has not answered within {LOOP_ANSWER_SECONDS:g} s"
        return True, state

    def ready(self) -> tuple[bool, str]:
        """Ready once every job is scheduling (its first wait or run); not while stopping."""
        with self._lock:
            waiting = [job.name for job in self.jobs if not job.ready]
            state = self.jobs[0].state
        for gate in self.gates:
            ok, why = gate()
            if not ok:
                return False, why
        if not waiting:
            return True, state
        return False, state if len(self.jobs) == 1 else f"not ready: {', '.join(waiting)}"
