"""Live state for /status, /livez and /readyz: the current run, the last runs, the loop's pulse.

Written by the loop (through observer hooks) and read by the HTTP server's
thread, so every access holds one lock and readers get copies.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind

HISTORY = 20
"""Runs in the top-level ``runs`` (the single-job view kept for existing readers)."""
JOB_HISTORY = 200
"""Runs per job in ``jobs[].runs``: a day of a 10-minute schedule for the page's timeline."""
SKIP_HISTORY = 200
"""Skipped fires (overrun, backoff, paused) kept per job, for the timeline's marks."""
JOB = "default"
"""The one job's name until several jobs are configured."""
LOOP_ANSWER_SECONDS = 2.0
"""How long /livez waits for the event loop to run a callback before calling it stuck."""

LoopProbe = Callable[[float], bool]
"""Asks the event loop to answer within the given seconds; False when it did not."""


def _no_probe(timeout: float) -> bool:
    return True


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


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


class StatusStore(Observer):
    """Thread-safe record of what the scheduler is doing and has done."""

    def __init__(
        self,
        info: dict[str, Any],
        *,
        hard_limit: float,
        monotonic: Callable[[], float],
        loop_probe: LoopProbe = _no_probe,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.loop_probe = loop_probe
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._info = dict(info)
        self._hard_limit = hard_limit  # run timeout + shutdown grace: past it the run is wedged
        self._state = "starting"
        self._ready = False
        self._next_fire: datetime | None = None
        self._current: dict[str, Any] | None = None
        self._current_mono = 0.0
        self._history: deque[dict[str, Any]] = deque(maxlen=JOB_HISTORY)
        self._skips: deque[dict[str, Any]] = deque(maxlen=SKIP_HISTORY)
        self._last_success: datetime | None = None
        self._failures = 0
        self._paused = False
        self._trigger = "scheduled"

    # ------------------------------------------------------------ writers (the loop)

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        with self._lock:
            self._state, self._ready, self._next_fire = "waiting", True, next_fire

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        with self._lock:
            self._trigger = trigger

    def on_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused

    def on_run_start(self, run_id: str, started: datetime) -> None:
        with self._lock:
            self._state, self._ready = "running", True
            self._current = {
                "id": run_id,
                "start": _iso(started),
                "trigger": self._trigger,
                "stage": None,
                "stage_index": None,
                "stages_total": None,
                "stages_done": 0,
                "stages": [],
            }
            self._current_mono = self._monotonic()

    def on_progress(self, run_id: str, progress: Progress) -> None:
        with self._lock:
            if not self._current or self._current["id"] != run_id:
                return
            if progress.kind is ProgressKind.STAGE_STARTED:
                self._current["stage"] = progress.stage
                self._current["stage_index"] = progress.index
                self._current["stages_total"] = progress.total
            elif progress.kind is ProgressKind.STAGE_COMPLETED:
                self._current["stages_done"] += 1
                self._current["stages"].append(_stage_figures(progress))

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        with self._lock:
            current = self._current or {}
            start = current.get("start")
            end = datetime.fromisoformat(start) + timedelta(seconds=duration) if start else None
            self._history.appendleft(
                {
                    "id": run_id,
                    "start": start,
                    "end": _iso(end),
                    "duration_s": round(duration, 3),
                    "outcome": outcome.label.value,
                    "reason": outcome.reason,
                    "counts": dict(outcome.details.get("counts", {})),
                    "stages": list(current.get("stages", [])),
                    "trigger": current.get("trigger", self._trigger),
                }
            )
            if outcome.ok and start:
                self._last_success = datetime.fromisoformat(start)
            if outcome.ok:
                self._failures = 0
            elif outcome.label.value == "failure":
                self._failures += 1
            self._current = None
            self._state = "waiting"
            self._trigger = "scheduled"

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        with self._lock:
            self._skips.appendleft({"at": _iso(self._wall()), "reason": reason, "count": count})

    def on_stop(self) -> None:
        with self._lock:
            self._state, self._ready = "stopping", False

    # ------------------------------------------------------------ readers (the HTTP thread)

    def _job(self) -> dict[str, Any]:
        """The one job in the shape several jobs will share (called with the lock held)."""
        state = self._state
        if state == "waiting" and self._paused:
            state = "paused"
        return {
            "name": JOB,
            **{key: self._info.get(key) for key in ("mode", "zone", "invoke", "target")},
            "state": state,
            "paused": self._paused,
            "next_fire": _iso(self._next_fire) if self._state != "running" else None,
            "current": _copy_run(self._current) if self._current else None,
            "last_success": _iso(self._last_success),
            "consecutive_failures": self._failures,
            "runs": [_copy_run(run) for run in self._history],
            "skips": [dict(skip) for skip in self._skips],
        }

    def snapshot(self, job: str | None = None) -> dict[str, Any]:
        """Everything (the first job's fields at the top level, plus ``jobs``), or one job's view.

        KeyError when ``job`` names no job.
        """
        with self._lock:
            one = self._job()
            if job is not None and job != one["name"]:
                raise KeyError(job)
            return {
                **self._info,
                "state": self._state,
                "next_fire": one["next_fire"],
                "current_run": one["current"],
                "last_success": one["last_success"],
                "runs": [_copy_run(run) for run in list(self._history)[:HISTORY]],
                "jobs": [one],
            }

    def live(self) -> tuple[bool, str]:
        """Alive unless a run outlived its hard limit or the event loop does not answer.

        Asking the loop on demand costs nothing while idle, unlike a heartbeat timer.
        """
        now = self._monotonic()
        with self._lock:
            if self._current and now - self._current_mono > self._hard_limit:
                return False, f"run {self._current['id']} is past PROXBOX_API_TIMEOUT plus the grace"
            state = self._state
        if not self.loop_probe(LOOP_ANSWER_SECONDS):
            return False, f"the scheduler loop has not answered within {LOOP_ANSWER_SECONDS:g} s"
        return True, state

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            return self._ready, self._state
