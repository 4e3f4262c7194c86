"""The loop's life in the log: waits, run starts (and what started them) and ends, skips, pauses."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Label, Outcome
from proxbox_scheduler.core.trigger import RunLogAdapter


def _shown(moment: datetime) -> str:
    """Whole seconds for cron fires, milliseconds for sub-second interval grids."""
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


class LogObserver(Observer):
    """Writes the loop's life to the log: waits, run starts and ends, skips."""

    def __init__(self, mode: str, job: str = "default") -> None:
        self.log = RunLogAdapter(logging.getLogger("proxbox_scheduler.loop"), {"job": job})
        self.mode = mode
        self._trigger = "scheduled"

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self.log.info(
            "waiting for the next run",
            extra={"next_fire": _shown(next_fire), "wait_s": round(seconds, 3)},
        )

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        self._trigger = trigger

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self.log.info("run started", extra={"run_id": run_id, "mode": self.mode, "trigger": self._trigger})
        self._trigger = "scheduled"

    def on_paused(self, paused: bool) -> None:
        self.log.info("job paused: fires are skipped until resumed" if paused else "job resumed")

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        fields: dict[str, Any] = {
            "run_id": run_id,
            "outcome": outcome.label.value,
            "duration_s": round(duration, 3),
        }
        if outcome.reason:
            fields["reason"] = outcome.reason
        if next_wait > 0 and not outcome.ok:
            fields["backoff_s"] = round(next_wait, 3)
        level = logging.WARNING if outcome.label in (Label.FAILURE, Label.DEGRADED) else logging.INFO
        self.log.log(level, "run finished", extra=fields)

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self.log.info(
            "skipped scheduled fires", extra={"skip_reason": reason, "count": count, "detail": detail}
        )
