"""Replica telemetry without a store: the leader-only filter and the metrics/status of coordinator events."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.state.shared import AbandonedClaim
from proxbox_scheduler.telemetry.replicas import LeaderOnly, ReplicaTelemetry

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Seen(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self.calls.append(("start", run_id))

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        self.calls.append(("end", run_id))

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        self.calls.append(("trigger", trigger))

    def on_paused(self, paused: bool) -> None:
        self.calls.append(("paused", paused))


def test_a_followers_skipped_fires_do_not_reach_the_wrapped_observer() -> None:
    coordinator = SimpleNamespace(term=None, active=True)
    seen = Seen()
    only = LeaderOnly(seen, coordinator)  # type: ignore[arg-type]
    only.on_run_start("f1", T0)
    only.on_run_end("f1", Outcome.skipped("not_leader", "another replica leads"), 0.0, 0.0)
    coordinator.term = object()
    only.on_run_start("l1", T0)
    only.on_run_end("l1", Outcome.skipped("claimed", "slot already claimed"), 0.0, 0.0)
    coordinator.active = False  # `once`: nothing is filtered
    coordinator.term = None
    only.on_run_start("o1", T0)
    only.on_run_end("o1", Outcome.success(), 1.0, 0.0)
    assert seen.calls == [("start", "l1"), ("end", "l1"), ("start", "o1"), ("end", "o1")]


def test_pauses_and_a_leaders_run_triggers_reach_the_wrapped_observer() -> None:
    coordinator = SimpleNamespace(term=None, active=True)
    seen = Seen()
    only = LeaderOnly(seen, coordinator)  # type: ignore[arg-type]
    only.on_paused(True)
    only.on_run_trigger("f1", "scheduled")  # a follower's fire stays out
    coordinator.term = object()
    only.on_run_trigger("l1", "manual")
    assert seen.calls == [("paused", True), ("trigger", "manual")]


def test_coordinator_events_become_metrics_and_a_status_section() -> None:
    registry = CollectorRegistry()
    telemetry = ReplicaTelemetry(registry, "pod-a", "redis://cache:6379/0")
    telemetry.on_store(True, "")
    telemetry.on_leading(7, takeover=True)
    telemetry.on_claim("won")
    telemetry.on_claim("lost")
    telemetry.on_abandoned([AbandonedClaim("default:2026-12-01T00:00:00.000+00:00", "pod-b/1", 6)])
    text = generate_latest(registry).decode()
    for line in (
        "proxbox_scheduler_leader 1.0",
        "proxbox_scheduler_lease_epoch 7.0",
        "proxbox_scheduler_state_store_up 1.0",
        'proxbox_scheduler_claims_total{result="won"} 1.0',
        'proxbox_scheduler_claims_total{result="not_leader"} 0.0',
        "proxbox_scheduler_failovers_total 1.0",
        "proxbox_scheduler_claims_abandoned_total 1.0",
    ):
        assert line in text
    doc = telemetry.snapshot()
    assert (doc["leading"], doc["epoch"], doc["failovers"], doc["claims"]["lost"]) == (True, 7, 1, 1)
    assert doc["abandoned"] == [
        {"claim": "default:2026-12-01T00:00:00.000+00:00", "holder": "pod-b/1", "epoch": 6}
    ]
    telemetry.on_following("pod-b/2", "the lease was taken over")
    assert (
        telemetry.snapshot()["leader"] == "pod-b/2"
        and "proxbox_scheduler_leader 0.0" in generate_latest(registry).decode()
    )
