"""Replica telemetry: leadership, epoch, claims, failovers, abandoned claims, store health.

Metrics have bounded labels only (claim results, never a slot or a holder);
/status gets a ``replica`` section. ``LeaderOnly`` keeps a follower's skipped
fires out of the logs, pings and the status history: only runs that this
replica led reach the observers it wraps (metrics still count every skip).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.state.coordination import Coordinator
from proxbox_scheduler.state.shared import AbandonedClaim, ClaimStatus

CLAIM_RESULTS = tuple(status.value for status in ClaimStatus)
FOLLOWER_SKIPS = frozenset({"not_leader", "store_down", "claimed"})
ABANDONED_KEPT = 20


class ReplicaTelemetry:
    """The coordinator's events as Prometheus metrics and a /status section."""

    def __init__(self, registry: CollectorRegistry, replica: str, store: str) -> None:
        r = registry
        self.leader = Gauge("proxbox_scheduler_leader", "1 while this replica holds the lease.", registry=r)
        self.epoch = Gauge(
            "proxbox_scheduler_lease_epoch",
            "Fencing epoch of this replica's current or last term.",
            registry=r,
        )
        self.store_up = Gauge(
            "proxbox_scheduler_state_store_up", "1 while the shared state store answers.", registry=r
        )
        self.claims = Counter("proxbox_scheduler_claims", "Slot claims by result.", ["result"], registry=r)
        self.failovers = Counter(
            "proxbox_scheduler_failovers", "Terms this replica began by taking over from another.", registry=r
        )
        self.abandoned = Counter(
            "proxbox_scheduler_claims_abandoned",
            "Claims found running under an older epoch: their holder vanished mid-run.",
            registry=r,
        )
        for result in CLAIM_RESULTS:
            self.claims.labels(result)
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "replica": replica, "store": store, "store_up": None, "leading": False, "epoch": None,
            "leader": None, "claims": dict.fromkeys(CLAIM_RESULTS, 0), "failovers": 0,
        }  # fmt: skip
        self._abandoned: deque[dict[str, Any]] = deque(maxlen=ABANDONED_KEPT)

    def on_leading(self, epoch: int, takeover: bool) -> None:
        self.leader.set(1)
        self.epoch.set(epoch)
        if takeover:
            self.failovers.inc()
        with self._lock:
            self._state.update(leading=True, epoch=epoch, leader=self._state["replica"])
            self._state["failovers"] += int(takeover)

    def on_following(self, leader: str, why: str) -> None:
        self.leader.set(0)
        with self._lock:
            self._state.update(leading=False, leader=leader or None)

    def on_store(self, up: bool, why: str) -> None:
        self.store_up.set(int(up))
        with self._lock:
            self._state["store_up"] = up

    def on_claim(self, status: str) -> None:
        self.claims.labels(status).inc()
        with self._lock:
            self._state["claims"][status] += 1

    def on_abandoned(self, claims: list[AbandonedClaim]) -> None:
        self.abandoned.inc(len(claims))
        with self._lock:
            for claim in claims:
                self._abandoned.appendleft({"claim": claim.key, "holder": claim.holder, "epoch": claim.epoch})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self._state, "claims": dict(self._state["claims"]), "abandoned": list(self._abandoned)}


class LeaderOnly(Observer):
    """Passes run hooks on only for runs begun while leading; waits and skips always pass."""

    def __init__(self, inner: Observer, coordinator: Coordinator) -> None:
        self.inner = inner
        self.coordinator = coordinator
        self._passed: set[str] = set()

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self.inner.on_waiting(next_fire, seconds)

    def on_run_start(self, run_id: str, started: datetime) -> None:
        if self._leading():
            self._passed.add(run_id)
            self.inner.on_run_start(run_id, started)

    def on_progress(self, run_id: str, progress: Any) -> None:
        if run_id in self._passed:
            self.inner.on_progress(run_id, progress)

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        follower_skip = outcome.status is Status.SKIPPED and outcome.skip_reason in FOLLOWER_SKIPS
        if run_id in self._passed or not follower_skip:
            self._passed.discard(run_id)
            self.inner.on_run_end(run_id, outcome, duration, next_wait)

    def _leading(self) -> bool:
        """A run begun now is this replica's: it leads, or no coordinator runs (`once`)."""
        return self.coordinator.term is not None or not self.coordinator.active

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        if self._leading():  # told just before on_run_start
            self.inner.on_run_trigger(run_id, trigger)

    def on_paused(self, paused: bool) -> None:
        self.inner.on_paused(paused)

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self.inner.on_skip(reason, count, detail)

    def on_stop(self) -> None:
        self.inner.on_stop()
