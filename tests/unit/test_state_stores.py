"""Every store behaves the same within one process: memory, SQLite on real files in tmp_path, and the
shared stores on a real PostgreSQL and a real redis-server (tests/support/stores.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from state_strategies import records

from proxbox_scheduler.state import (
    Bounds,
    Counters,
    MemoryStore,
    RunRecord,
    RunStart,
    SqliteStore,
    StateError,
)
from proxbox_scheduler.state.base import StateStore
from proxbox_scheduler.state.postgres import PostgresStore
from proxbox_scheduler.state.redis import RedisStore
from tests.support.stores import fresh_pg_url, fresh_prefix, pg_server, redis_srv

__all__ = ["pg_server", "redis_srv"]  # session fixtures used through ``make``

T = TypeVar("T")
T0 = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)
MakeStore = Callable[..., StateStore]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    where: list[str] = []

    def shared(kind: str) -> str:
        if not where:  # one database per test, however many stores the test builds on it
            server = request.getfixturevalue("pg_server" if kind == "postgres" else "redis_srv")
            where.append(fresh_pg_url(server) if kind == "postgres" else fresh_prefix())
        return where[0]

    def build(bounds: Bounds | None = None, now: Callable[[], dt.datetime] = lambda: T0) -> StateStore:
        if request.param == "memory":
            return MemoryStore(bounds, now=now)
        if request.param == "postgres":
            return PostgresStore(shared("postgres"), bounds, now=now)
        if request.param == "redis":
            server = request.getfixturevalue("redis_srv")
            return RedisStore(server.url(), bounds, now=now, prefix=shared("redis"))
        return SqliteStore(tmp_path / "state.db", bounds, now=now)

    return build


def start(
    n: int, job: str = "full", slot: dt.datetime | None = None, at: dt.datetime | None = None
) -> RunStart:
    return RunStart(f"run-{n}", job, at or T0 + dt.timedelta(minutes=n), "scheduled", slot, "pod-a")


async def record_runs(store: StateStore, outcomes: list[str], job: str = "full") -> list[RunRecord]:
    done = []
    for n, outcome in enumerate(outcomes):
        s = start(n, job)
        await store.run_started(s)
        record = s.finish(s.started + dt.timedelta(seconds=30), 30.0, outcome, counts={"devices": n})
        await store.run_finished(record, Counters(n, 0))
        done.append(record)
    return done


def test_history_is_newest_first_with_last_success_and_counters(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        done = await record_runs(store, ["success", "degraded", "failure", "failure"])
        state = await store.load("full")
        assert state.runs == tuple(reversed(done))
        assert state.last_success == done[1]  # degraded counts as a success
        assert state.counters == Counters(3, 0)
        assert (await store.load("full", recent=2)).runs == (done[3], done[2])
        await store.close()

    run(scenario())


def test_unknown_job_gets_a_fresh_state(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        state = await store.load("never")
        assert (state.runs, state.last_success, state.counters, state.last_slot, state.paused) == (
            (), None, Counters(), None, False,
        )  # fmt: skip
        await store.close()

    run(scenario())


def test_last_slot_is_set_at_start_and_never_moves_back(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        await store.run_started(start(1, slot=T0 + dt.timedelta(hours=1)))
        assert (await store.load("full")).last_slot == T0 + dt.timedelta(hours=1)
        await store.run_started(start(2, slot=T0))
        await store.run_started(start(3))  # a manual run has no slot
        assert (await store.load("full")).last_slot == T0 + dt.timedelta(hours=1)
        await store.close()

    run(scenario())


def test_pause_is_kept_per_job(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        await store.set_paused("vms", True)
        assert (await store.load("vms")).paused and not (await store.load("full")).paused
        await store.set_paused("vms", False)
        assert not (await store.load("vms")).paused
        await store.close()

    run(scenario())


def test_history_window_and_limit(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        done = await record_runs(store, ["success"] * 10)
        await record_runs(store, ["failure"] * 3, job="other")
        window = await store.history("full", T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=7))
        assert window == [done[6], done[5], done[4], done[3]]
        assert await store.history("full", T0, limit=2) == [done[9], done[8]]
        assert len(await store.history("other", T0)) == 3
        await store.close()

    run(scenario())


def test_history_is_bounded_by_count(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make(Bounds(max_runs=5))
        await store.open()
        done = await record_runs(store, ["success"] + ["failure"] * 11)
        state = await store.load("full", recent=100)
        assert state.runs == tuple(reversed(done[-5:]))
        assert state.last_success == done[0]  # kept although pruned from the history
        await store.close()

    run(scenario())


def test_history_is_bounded_by_age(make: MakeStore) -> None:
    clock = [T0 + dt.timedelta(days=1)]

    async def scenario() -> None:
        store = make(Bounds(max_age=dt.timedelta(days=1)), now=lambda: clock[0])
        await store.open()
        done = await record_runs(store, ["success"] * 4)  # started T0 .. T0+3 min
        clock[0] = T0 + dt.timedelta(days=1, minutes=2)
        assert (await store.load("full")).runs == (done[3], done[2])
        assert await store.history("full", T0 - dt.timedelta(days=9)) == [done[3], done[2]]
        await store.close()

    run(scenario())


def test_finishing_twice_keeps_one_record(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        s = start(1)
        await store.run_started(s)
        first = s.finish(T0, 1.0, "failure")
        await store.run_finished(first, Counters(1, 0))
        again = s.finish(T0, 2.0, "success")
        await store.run_finished(again, Counters(0, 0))
        assert (await store.load("full")).runs == (again,)
        await store.close()

    run(scenario())


def test_calls_before_open_or_after_close_raise_state_error(make: MakeStore) -> None:
    async def scenario() -> None:
        store = make()
        with pytest.raises(StateError, match="not open"):
            await store.load("full")
        await store.open()
        await store.close()
        await store.close()  # twice is fine
        with pytest.raises(StateError, match="not open"):
            await store.run_started(start(1))

    run(scenario())


@settings(max_examples=25, deadline=None)
@given(st.lists(records(job="full"), min_size=1, max_size=8, unique_by=lambda r: r.run_id))
def test_any_record_round_trips_through_both_stores(recs: list[RunRecord]) -> None:
    far_future = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    keep_all = Bounds(max_runs=100, max_age=far_future - dt.datetime(1, 1, 1, tzinfo=dt.UTC))

    async def through(store: StateStore) -> tuple[RunRecord, ...]:
        await store.open()
        for record in recs:
            await store.run_finished(record, Counters())
        state = await store.load("full", recent=100)
        await store.close()
        return state.runs

    with tempfile.TemporaryDirectory() as tmp:
        on_disk = run(through(SqliteStore(Path(tmp) / "s.db", keep_all, now=lambda: far_future)))
    in_memory = run(through(MemoryStore(keep_all, now=lambda: far_future)))
    assert sorted(on_disk, key=lambda r: r.run_id) == sorted(recs, key=lambda r: r.run_id)
    assert on_disk == in_memory
