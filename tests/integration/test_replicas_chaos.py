"""Chaos on three real replicas (`proxbox-scheduler run`, interval=1) sharing a real PostgreSQL or Redis.

During one run of about 50 s: the leader is SIGKILLed, the next leader is
SIGSTOPped past its TTL and continued, the leader's store connection is
killed (pg_terminate_backend / CLIENT KILL), and the store is restarted.
What the counting server saw is compared with what the replicas claimed:
every request belongs to exactly one claim, no slot is claimed twice, and no
gap between runs exceeds TTL + interval + 1 s except while the store is down.
The rolling restart replaces every replica one by one and duplicates nothing.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from proxbox_scheduler.state.shared import client_name
from tests.support import pg, redis_server
from tests.support.processes import poll
from tests.support.replicas import CountingServer, Fleet, Replica, fleet
from tests.support.stores import unavailable

TTL = 3.0
INTERVAL = 1.0
GAP_LIMIT = TTL + INTERVAL + 1.0
STORE_DOWN_S = 2.0


@dataclass
class Store:
    """One real store server the test can restart and whose client connections it can cut."""

    kind: str
    server: Any

    @property
    def url(self) -> str:
        return self.server.url("scheduler") if self.kind == "postgres" else self.server.url()

    def cut(self, replica: Replica) -> int:
        name = client_name(replica.name)
        if self.kind == "postgres":
            return int(self.server.terminate_backends("scheduler", name))
        return int(self.server.kill_client(name))

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@pytest.fixture(params=["postgres", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "postgres":
        if not pg.available():
            unavailable("PostgreSQL 15")
        with pg.postgres_server() as server:
            server.create_database("scheduler")
            yield Store("postgres", server)
    else:
        if not redis_server.available():
            unavailable("redis-server")
        with redis_server.redis_server() as server:
            yield Store("redis", server)


@pytest.fixture
def target() -> Iterator[CountingServer]:
    counting = CountingServer()
    counting.server.start()
    yield counting
    counting.server.stop()


def one_leader(group: Fleet, timeout: float = 15.0, other_than: Replica | None = None) -> Replica:
    def found() -> Replica | None:
        leaders = [r for r in group.leaders() if r is not other_than]
        return leaders[0] if len(leaders) == 1 else None

    return poll(found, timeout, "exactly one leader")


def runs_after(target: CountingServer, count: int, more: int = 2, timeout: float = 15.0) -> None:
    poll(lambda: target.count() >= count + more, timeout, f"{more} more runs after {count}")


def successful_runs(group: Fleet) -> dict[str, str]:
    """run_id -> replica name of every run that ended in success (the server answered it)."""
    done = {}
    for replica in group.everyone():
        for doc in replica.proc.out.json_lines():
            if doc.get("event") == "run finished" and doc.get("outcome") == "success":
                done[doc["run_id"]] = replica.name
    return done


def check_history(group: Fleet, target: CountingServer, down: tuple[float, float] | None) -> None:
    claims = group.claims()
    keys = Counter(c["claim"] for c in claims)
    assert [k for k, n in keys.items() if n > 1] == [], "a slot was claimed twice"
    claimed_runs = {c["run_id"] for c in claims}
    done = successful_runs(group)
    assert set(done) <= claimed_runs, "a run succeeded without a claim"
    # the leader SIGKILLed mid-run leaves one request the server saw and no replica finished
    assert len(done) <= target.count() <= len(done) + 1, "the server saw runs that were not claimed"
    assert target.count() <= len(claimed_runs), "the server saw more runs than were claimed"
    arrivals = target.arrivals()
    for before, after in itertools.pairwise(arrivals):
        limit = GAP_LIMIT
        if down is not None and before <= down[1] and after >= down[0]:
            limit += down[1] - down[0]  # the store was down in between: no replica may run then
        assert after - before <= limit, f"gap of {after - before:.2f} s between runs (limit {limit:.2f})"


def status_of(replica: Replica) -> dict[str, Any]:
    return poll(replica.status, 10, f"{replica.name}'s /status")


def test_chaos_kill_stop_cut_and_restart_never_runs_a_slot_twice(
    store: Store, target: CountingServer
) -> None:
    with fleet(target.url, store.url, TTL, 3) as group:
        first = one_leader(group)
        runs_after(target, 0, more=3)

        group.kill(first)  # SIGKILL: no release, the lease must expire on the store's clock
        second = one_leader(group, timeout=TTL + 5)
        runs_after(target, target.count())

        stopped_at = time.monotonic()
        group.pause(second)  # SIGSTOP the new leader past its TTL
        third = one_leader(group, timeout=TTL + 5, other_than=second)
        poll(lambda: time.monotonic() - stopped_at > TTL + 1 and third.leading(), 15, "the TTL to pass")
        since = second.proc.out.mark()
        group.resume(second)
        # it stops leading on its own deadline (the epoch fence behind it: test_coordination.py)
        second.proc.out.wait_for(lambda d: str(d.get("event")).startswith("stopped leading"), 10, since)
        runs_after(target, target.count())
        late = [d for d in second.proc.out.json_lines()[since:] if d.get("event") == "slot claimed"]
        assert late == [], "the continued replica ran a slot after losing its term"
        assert not second.leading()

        leader = one_leader(group)
        assert store.cut(leader) >= 1  # kill the leader's store connection: it reconnects and goes on
        runs_after(target, target.count(), more=3)

        before = target.count()
        down_from = time.time()
        store.stop()
        poll(lambda: all(r.ready() == 503 for r in group.replicas), 15, "every /readyz to answer 503")
        assert all(status_of(r)["replica"]["store_up"] is False for r in group.replicas)
        assert target.count() <= before + 1  # at most the run that was already claimed
        stalled = target.count()
        store.start()
        down_to = time.time()
        assert stalled == target.count() or target.arrivals()[-1] >= down_to - 0.5
        runs_after(target, target.count(), more=3, timeout=TTL * 4)
        assert all(r.ready() == 200 for r in group.replicas)

        runs_after(target, target.count(), more=20, timeout=40)  # the rest of the minute, steady
        assert sum(status_of(r)["replica"]["failovers"] for r in group.replicas) >= 1
    check_history(group, target, (down_from, down_to))


def test_rolling_restart_of_every_replica_duplicates_nothing(store: Store, target: CountingServer) -> None:
    with fleet(target.url, store.url, TTL, 3) as group:
        one_leader(group)
        runs_after(target, 0, more=2)
        for old in list(group.replicas):
            fresh = group.start()
            poll(lambda r=fresh: r.ready() == 200, 15, f"{fresh.name} to be ready")
            assert group.terminate(old) == 0  # SIGTERM: it finishes its run and gives the lease up
            one_leader(group, timeout=TTL + 5)
            runs_after(target, target.count(), more=2)
    check_history(group, target, None)
