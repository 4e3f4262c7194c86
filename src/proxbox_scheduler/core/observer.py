"""The telemetry contract: what the loop reports, and a fan-out to several listeners."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from proxbox_scheduler.core.outcome import Outcome, Progress

log = logging.getLogger("proxbox_scheduler.loop")


class Observer:
    """Hooks for telemetry; every method is optional. Observers must not raise or block."""

    def on_waiting(self, next_fire: datetime, seconds: float) -> None: ...

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        """Just before ``on_run_start``: what started the run (``scheduled``, ``manual``)."""

    def on_run_start(self, run_id: str, started: datetime) -> None: ...

    def on_progress(self, run_id: str, progress: Progress) -> None: ...

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None: ...

    def on_skip(self, reason: str, count: int, detail: str) -> None: ...

    def on_paused(self, paused: bool) -> None:
        """The job was paused (its fires are skipped as ``paused``) or resumed."""

    def on_stop(self) -> None: ...


class FanOut(Observer):
    """Passes every hook to several observers; one failing observer does not stop the others."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self._observers = list(observers)

    def _each(self, name: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.debug("observer %s.%s failed", type(observer).__name__, name, exc_info=True)

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self._each("on_waiting", next_fire, seconds)

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        self._each("on_run_trigger", run_id, trigger)

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self._each("on_run_start", run_id, started)

    def on_progress(self, run_id: str, progress: Progress) -> None:
        self._each("on_progress", run_id, progress)

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        self._each("on_run_end", run_id, outcome, duration, next_wait)

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self._each("on_skip", reason, count, detail)

    def on_paused(self, paused: bool) -> None:
        self._each("on_paused", paused)

    def on_stop(self) -> None:
        self._each("on_stop")
