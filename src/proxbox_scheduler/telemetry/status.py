"""Live state for /status, /livez and /readyz: the current run, the last runs, the loop's pulse.

Written by the loop (through observer hooks) and read by the HTTP server's
thread, so every access holds one lock and readers get copies.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind

HISTORY = 20
LOOP_ANSWER_SECONDS = 2.0
"""How long /livez waits for the event loop to run a callback before calling it stuck."""

LoopProbe = Callable[[float], bool]
"""Asks the event loop to answer within the given seconds; False when it did not."""
Gate = Callable[[], tuple[bool, str]]
"""A further readiness condition (e.g. the shared state store answers): (ready, why)."""


def _no_probe(timeout: float) -> bool:
    return True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


class StatusStore(Observer):
    """Thread-safe record of what the scheduler is doing and has done."""

    def __init__(
        self,
        info: dict[str, Any],
        *,
        hard_limit: float,
        monotonic: Callable[[], float],
        loop_probe: LoopProbe = _no_probe,
    ) -> None:
        self.loop_probe = loop_probe
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._info = dict(info)
        self._hard_limit = hard_limit  # run timeout + shutdown grace: past it the run is wedged
        self._state = "starting"
        self._ready = False
        self._next_fire: datetime | None = None
        self._current: dict[str, Any] | None = None
        self._current_mono = 0.0
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._last_success: datetime | None = None
        self.sections: dict[str, Callable[[], Any]] = {}
        """Extra /status sections computed when read (e.g. ``replica``), set by whoever wires them."""
        self.gates: list[Gate] = []

    # ------------------------------------------------------------ writers (the loop)

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        with self._lock:
            self._state, self._ready, self._next_fire = "waiting", True, next_fire

    def on_run_start(self, run_id: str, started: datetime) -> None:
        with self._lock:
            self._state, self._ready = "running", True
            self._current = {"id": run_id, "start": _iso(started), "stage": None, "stages_done": 0}
            self._current_mono = self._monotonic()

    def on_progress(self, run_id: str, progress: Progress) -> None:
        with self._lock:
            if not self._current or self._current["id"] != run_id:
                return
            if progress.kind is ProgressKind.STAGE_STARTED:
                self._current["stage"] = progress.stage
                self._current["stages_total"] = progress.total
            elif progress.kind is ProgressKind.STAGE_COMPLETED:
                self._current["stages_done"] += 1

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        with self._lock:
            start = self._current["start"] if self._current else None
            self._history.appendleft(
                {
                    "id": run_id,
                    "start": start,
                    "duration_s": round(duration, 3),
                    "outcome": outcome.label.value,
                    "reason": outcome.reason,
                    "counts": dict(outcome.details.get("counts", {})),
                    **({"replica": outcome.details["replica"]} if "replica" in outcome.details else {}),
                }
            )
            if outcome.ok and start:
                self._last_success = datetime.fromisoformat(start)
            self._current = None
            self._state = "waiting"

    def on_stop(self) -> None:
        with self._lock:
            self._state, self._ready = "stopping", False

    # ------------------------------------------------------------ readers (the HTTP thread)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._info,
                "state": self._state,
                "next_fire": _iso(self._next_fire) if self._state != "running" else None,
                "current_run": dict(self._current) if self._current else None,
                "last_success": _iso(self._last_success),
                "runs": [dict(run) for run in self._history],
            } | {name: section() for name, section in self.sections.items()}

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
            ready, state = self._ready, self._state
        for gate in self.gates:
            ok, why = gate()
            if not ok:
                return False, why
        return ready, state
