"""Prometheus metrics, fed by the loop's observer hooks.

Names follow Prometheus rules: the ``proxbox_scheduler_`` prefix, base units
(seconds), ``_total`` for counters, ``_timestamp_seconds`` for Unix times. No
label carries a secret or a command line; ``job`` takes only configured names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Label, Outcome, Status
from proxbox_scheduler.state.base import INTERRUPTED, JobState

OUTCOMES = (Label.SUCCESS, Label.FAILURE, Label.DEGRADED, INTERRUPTED)
SKIP_REASONS = ("overrun", "busy", "backoff", "missed", "netbox_unreachable")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The scheduler's metrics in a registry of its own (no process-global state).

    Every per-run metric has a ``job`` label; its values are the configured job
    names (``jobs``), so the label set is bounded. ``job(name)`` is the job's observer.
    """

    def __init__(self, *, version: str, mode: str, invoke: str, jobs: Sequence[str] = ("default",)) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        job = ["job"]
        self.runs = Counter(
            "proxbox_scheduler_runs", "Finished runs by outcome.", [*job, "outcome"], registry=r
        )
        self.skips = Counter(
            "proxbox_scheduler_skips", "Skipped fires by reason.", [*job, "reason"], registry=r
        )
        self.duration = Histogram(
            "proxbox_scheduler_run_duration_seconds",
            "Duration of finished runs.",
            job,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "proxbox_scheduler_run_in_progress", "1 while a run is going.", job, registry=r
        )
        self.last_run = Gauge(
            "proxbox_scheduler_last_run_timestamp_seconds",
            "Start of the last run (Unix time).",
            job,
            registry=r,
        )
        self.last_success = Gauge(
            "proxbox_scheduler_last_success_timestamp_seconds",
            "Start of the last successful run (Unix time).",
            job,
            registry=r,
        )
        self.next_run = Gauge(
            "proxbox_scheduler_next_run_timestamp_seconds",
            "Next scheduled fire (Unix time).",
            job,
            registry=r,
        )
        self.consecutive_failures = Gauge(
            "proxbox_scheduler_consecutive_failures", "Failed runs since the last success.", job, registry=r
        )
        self.objects = Gauge(
            "proxbox_scheduler_last_sync_objects",
            "Objects of each kind in the last successful sync.",
            [*job, "kind"],
            registry=r,
        )
        self.netbox_reachable: Gauge | None = None  # only with NetBox awareness on: see note_netbox
        Info("proxbox_scheduler_build", "Version and schedule (of the first job).", registry=r).info(
            {"version": version, "mode": mode, "invoke": invoke}
        )
        self._jobs = {name: JobMetrics(self, name) for name in jobs}

    def job(self, name: str) -> JobMetrics:
        return self._jobs[name]

    def note_netbox(self, outcome: Outcome) -> None:
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


class JobMetrics(Observer):
    """One job's samples of the shared families, fed by that job's loop."""

    def __init__(self, metrics: Metrics, job: str) -> None:
        self.m, self.name = metrics, job
        for outcome in OUTCOMES:
            metrics.runs.labels(job, outcome)
        for reason in SKIP_REASONS:
            metrics.skips.labels(job, reason)
        for gauge in (metrics.in_progress, metrics.last_run, metrics.last_success, metrics.next_run):
            gauge.labels(job)
        metrics.consecutive_failures.labels(job)
        metrics.duration.labels(job)
        self._started: dict[str, float] = {}
        self._kinds: set[str] = set()

    def restore(self, remembered: JobState) -> None:
        """Gauges from what the store kept; each run found interrupted at open counts once."""
        m, job = self.m, self.name
        if remembered.runs:
            m.last_run.labels(job).set(remembered.runs[0].started.timestamp())
        if remembered.last_success is not None:
            m.last_success.labels(job).set(remembered.last_success.started.timestamp())
        m.consecutive_failures.labels(job).set(remembered.counters.consecutive_failures)
        m.runs.labels(job, INTERRUPTED).inc(len(remembered.interrupted))

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self.m.next_run.labels(self.name).set(next_fire.timestamp())

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self._started[run_id] = started.timestamp()
        self.m.in_progress.labels(self.name).set(1)
        self.m.last_run.labels(self.name).set(started.timestamp())

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        m, job = self.m, self.name
        started = self._started.pop(run_id, None)
        m.in_progress.labels(job).set(0)
        m.note_netbox(outcome)
        if outcome.status is Status.SKIPPED:
            m.skips.labels(job, outcome.skip_reason or "busy").inc()
            return
        m.runs.labels(job, outcome.label).inc()
        m.duration.labels(job).observe(duration)
        if outcome.ok:
            m.consecutive_failures.labels(job).set(0)
            if started is not None:
                m.last_success.labels(job).set(started)
            counts: dict[str, Any] = outcome.details.get("counts", {})
            kinds = {kind for kind, value in counts.items() if isinstance(value, (int, float))}
            for gone in self._kinds - kinds:  # the last sync's kinds only: labels never pile up
                m.objects.remove(job, gone)
            for kind in kinds:
                m.objects.labels(job, kind).set(counts[kind])
            self._kinds = kinds
        else:
            m.consecutive_failures.labels(job).inc()

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self.m.skips.labels(self.name, reason).inc(count)
