"""Prometheus metrics, fed by the loop's observer hooks.

Names follow Prometheus rules: the ``proxbox_scheduler_`` prefix, base units
(seconds), ``_total`` for counters, ``_timestamp_seconds`` for Unix times. No
label carries a secret or a command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Label, Outcome, Status

OUTCOMES = (Label.SUCCESS, Label.FAILURE, Label.DEGRADED)
SKIP_REASONS = ("overrun", "busy", "backoff", "netbox_unreachable")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(Observer):
    """The scheduler's metrics in a registry of its own (no process-global state)."""

    def __init__(self, *, version: str, mode: str, invoke: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("proxbox_scheduler_runs", "Finished runs by outcome.", ["outcome"], registry=r)
        self.skips = Counter("proxbox_scheduler_skips", "Skipped fires by reason.", ["reason"], registry=r)
        self.duration = Histogram(
            "proxbox_scheduler_run_duration_seconds",
            "Duration of finished runs.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge("proxbox_scheduler_run_in_progress", "1 while a run is going.", registry=r)
        self.last_run = Gauge(
            "proxbox_scheduler_last_run_timestamp_seconds", "Start of the last run (Unix time).", registry=r
        )
        self.last_success = Gauge(
            "proxbox_scheduler_last_success_timestamp_seconds",
            "Start of the last successful run (Unix time).",
            registry=r,
        )
        self.next_run = Gauge(
            "proxbox_scheduler_next_run_timestamp_seconds", "Next scheduled fire (Unix time).", registry=r
        )
        self.consecutive_failures = Gauge(
            "proxbox_scheduler_consecutive_failures", "Failed runs since the last success.", registry=r
        )
        self.objects = Gauge(
            "proxbox_scheduler_last_sync_objects",
            "Objects of each kind in the last successful sync.",
            ["kind"],
            registry=r,
        )
        self.netbox_reachable: Gauge | None = None  # only with NetBox awareness on: see _note_netbox
        Info("proxbox_scheduler_build", "Version and schedule.", registry=r).info(
            {"version": version, "mode": mode, "invoke": invoke}
        )
        for outcome in OUTCOMES:
            self.runs.labels(outcome)
        for reason in SKIP_REASONS:
            self.skips.labels(reason)
        self._started: dict[str, float] = {}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self.next_run.set(next_fire.timestamp())

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self._started[run_id] = started.timestamp()
        self.in_progress.set(1)
        self.last_run.set(started.timestamp())

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        started = self._started.pop(run_id, None)
        self.in_progress.set(0)
        self._note_netbox(outcome)
        if outcome.status is Status.SKIPPED:
            self.skips.labels(outcome.skip_reason or "busy").inc()
            return
        self.runs.labels(outcome.label).inc()
        self.duration.observe(duration)
        if outcome.ok:
            self.consecutive_failures.set(0)
            if started is not None:
                self.last_success.set(started)
            counts: dict[str, Any] = outcome.details.get("counts", {})
            for kind, value in counts.items():
                if isinstance(value, (int, float)):
                    self.objects.labels(kind).set(value)
        else:
            self.consecutive_failures.inc()

    def _note_netbox(self, outcome: Outcome) -> None:
        """The gauge appears with the first NetBox check, so it never reads 0 while awareness is off."""
        if "netbox_reachable" not in outcome.details:
            return
        if self.netbox_reachable is None:
            self.netbox_reachable = Gauge(
                "proxbox_scheduler_netbox_reachable",
                "1 when NetBox answered the last check before a run, 0 when it could not be asked.",
                registry=self.registry,
            )
        self.netbox_reachable.set(1 if outcome.details["netbox_reachable"] else 0)

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self.skips.labels(reason).inc(count)
