"""The loop with a state store and other jobs, in virtual time: slots, catch-up, streaks, target turns."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from proxbox_scheduler.core.gate import TargetLock
from proxbox_scheduler.core.loop import AUTH_REJECTED_FLOOR_SECONDS, Scheduler
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.trigger import RunContext
from proxbox_scheduler.state import Counters, JobState, MemoryStore
from tests.support.clock import FakeClock, run_virtual
from tests.unit.test_loop import AUTH, Recorder, loop_settings

HOURLY = "cron=0 * * * *"
START = FakeClock().start  # 10:00:00 UTC, itself a fire of HOURLY


@dataclass
class Job:
    """A trigger that records each run (virtual start, end, slot) and stops its loop after ``runs``."""

    clock: FakeClock
    runs: int
    duration: float = 1.0
    outcome: Outcome = field(default_factory=Outcome.success)
    store: MemoryStore | None = None
    scheduler: Scheduler | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)
    slots: list[datetime | None] = field(default_factory=list)
    slot_recorded: list[bool] = field(default_factory=list)

    async def run(self, ctx: RunContext) -> Outcome:
        start = self.clock.monotonic()
        self.slots.append(ctx.slot)
        if self.store is not None and ctx.slot is not None:  # the start was durable before the run
            self.slot_recorded.append((await self.store.load(ctx.job)).last_slot == ctx.slot)
        await asyncio.sleep(self.duration)
        self.spans.append((start, self.clock.monotonic()))
        if len(self.spans) >= self.runs and self.scheduler:
            self.scheduler.request_stop()
        return self.outcome

    async def aclose(self) -> None:
        pass


def scheduler(job: Job, mode: str, name: str = "default", **kw: Any) -> tuple[Scheduler, Recorder]:
    recorder = Recorder()
    store, memory, lock = kw.pop("store", None), kw.pop("memory", None), kw.pop("lock", None)
    settings = loop_settings(mode, job=name, **kw)
    sched = Scheduler(
        settings, job, clock=job.clock, observer=recorder, store=store, memory=memory, lock=lock
    )
    job.scheduler = sched
    return sched, recorder


def test_slots_are_the_nominal_fires_and_recorded_before_each_run() -> None:
    clock = FakeClock()

    async def main() -> tuple[Job, JobState]:
        store = MemoryStore(now=clock.now)
        await store.open()
        job = Job(clock, runs=2, store=store)
        sched, _ = scheduler(job, HOURLY, store=store)
        await sched.run_forever()
        return job, await store.load("default")

    job, state = run_virtual(main())
    fires = [clock.start + timedelta(hours=1), clock.start + timedelta(hours=2)]
    assert job.slots == fires and job.slot_recorded == [True, True]
    assert state.last_slot == fires[-1] and [r.slot for r in state.runs] == fires[::-1]
    assert all(r.trigger == "scheduled" and r.outcome == "success" for r in state.runs)


def restarted(
    mode: str, last_slot_ago: float, runs: int = 1, at: datetime = START, **kw: Any
) -> tuple[Job, Recorder, FakeClock]:
    """A loop starting at ``at`` with a remembered last slot ``last_slot_ago`` seconds before it."""
    clock = FakeClock(at)
    memory = JobState("default", last_slot=clock.start - timedelta(seconds=last_slot_ago))
    job = Job(clock, runs=runs)
    sched, recorder = scheduler(job, mode, memory=memory, **kw)
    run_virtual(sched.run_forever())
    return job, recorder, clock


def test_the_history_names_the_replica_that_ran_each_run() -> None:
    clock = FakeClock()

    async def main() -> JobState:
        store = MemoryStore(now=clock.now)
        await store.open()
        sched, _ = scheduler(Job(clock, runs=2, store=store), HOURLY, store=store, replica="pod-a")
        await sched.run_forever()
        return await store.load("default")

    state = run_virtual(main())
    assert [run.replica for run in state.runs] == ["pod-a", "pod-a"]


def test_latest_runs_the_newest_missed_fire_once_at_start() -> None:
    # last slot 07:00, now 10:00: 08:00, 09:00, 10:00 missed; 10:00 is 0 s old -> run now
    job, recorder, clock = restarted(HOURLY, 3 * 3600, runs=2, catchup="latest", starting_deadline=600)
    assert job.spans[0][0] == 0 and job.slots[0] == clock.start
    assert job.slots[1] == clock.start + timedelta(hours=1)  # then the schedule, 10:00 not again
    assert recorder.skips == [("missed", 2)]


def test_latest_older_than_the_deadline_is_skipped_like_the_others() -> None:
    # now 10:50, last slot 06:40 -> missed 07:00..10:00; 10:00 is 3000 s old
    at = START + timedelta(minutes=50)
    job, recorder, _ = restarted(HOURLY, 4 * 3600 + 600, at=at, catchup="latest", starting_deadline=600)
    assert job.spans[0][0] == 600 and job.slots == [START + timedelta(hours=1)]
    assert recorder.skips == [("missed", 4)]


def test_skip_counts_the_missed_fires_and_waits_for_the_next() -> None:
    job, recorder, _ = restarted(HOURLY, 3 * 3600, catchup="skip")  # 08:00, 09:00 and 10:00 (now)
    assert job.spans[0][0] == 3600 and recorder.skips == [("missed", 3)]


def test_a_slot_started_before_the_restart_is_not_run_again_even_with_the_clock_set_back() -> None:
    job, recorder, clock = restarted(HOURLY, -3600, catchup="latest")  # last slot 11:00, now 10:00
    assert job.slots == [clock.start + timedelta(hours=2)] and recorder.skips == []


def test_interval_catch_up_continues_the_old_grid() -> None:
    job, recorder, clock = restarted("interval=60", 150, runs=2, catchup="latest", starting_deadline=45)
    # old grid: last -150 s, missed at -90 and -30; -30 is younger than 45 s -> run now with that slot
    assert job.spans[0][0] == 0 and job.slots[0] == clock.start - timedelta(seconds=30)
    assert job.spans[1][0] == 60 and recorder.skips == [("missed", 1)]


def test_the_rejected_key_doubling_continues_after_a_restart() -> None:
    clock = FakeClock()
    memory = JobState("default", counters=Counters(consecutive_failures=3, auth_streak=3))
    job = Job(clock, runs=1, outcome=AUTH)
    sched, recorder = scheduler(job, "continuous", memory=memory, backoff=10, backoff_max=10_000)
    run_virtual(sched.run_forever())
    assert recorder.ends[0][2] == max(10, AUTH_REJECTED_FLOOR_SECONDS) * 2**3  # the fourth rejection in a row


def two_jobs(lock_a: TargetLock, lock_b: TargetLock, **b_settings: Any) -> tuple[Job, Job, Recorder]:
    """Job a runs once, 30 s from its first fire at 4 s; job b (interval 10) runs 1 s, three times."""
    clock = FakeClock()
    a, b = Job(clock, runs=1, duration=30), Job(clock, runs=3)
    sa, _ = scheduler(a, "interval=4", "a", lock=lock_a)
    sb, rb = scheduler(b, "interval=10", "b", lock=lock_b, **b_settings)

    async def main() -> None:
        task_a = asyncio.ensure_future(sa.run_forever())
        await sb.run_forever()
        sa.request_stop()
        await task_a

    run_virtual(main())
    return a, b, rb


def test_jobs_on_one_target_take_turns_and_the_waiting_fire_starts_when_the_other_ends() -> None:
    lock = TargetLock()
    a, b, _ = two_jobs(lock, lock)
    (a_start, a_end), *_ = a.spans
    assert (a_start, a_end) == (4, 34)
    b_starts = [start for start, _ in b.spans]
    assert b_starts[0] == 34  # fired at 10, waited for a
    assert all(not (a_start <= s < a_end) for s in b_starts)


def test_jobs_on_different_targets_run_at_the_same_time() -> None:
    _, b, _ = two_jobs(TargetLock(), TargetLock())
    assert [start for start, _ in b.spans] == [10, 20, 30]


def test_the_wait_for_the_target_is_bounded_by_the_job_timeout() -> None:
    lock = TargetLock()
    _, b, recorder = two_jobs(lock, lock, run_timeout=5)
    # fires at 10 and 20 give up after 5 s; the one at 30 gets the target when a ends at 34
    assert recorder.skips == [("busy", 1), ("busy", 1)] and b.spans[0][0] == 34


def test_a_target_with_two_slots_runs_two_jobs_at_once() -> None:
    a, b, recorder = two_jobs(*[TargetLock(slots=2)] * 2)
    assert a.spans == [(4, 34)] and [start for start, _ in b.spans] == [10, 20, 30]  # b beside a
    assert recorder.skips == []


def test_a_target_lock_gives_out_its_slots_and_the_next_job_waits_for_a_release() -> None:
    clock, stop = FakeClock(), asyncio.Event()
    lock = TargetLock(slots=2)
    seen: list[object] = []

    async def main() -> None:
        seen.append(await lock.acquire("a", clock, 5, stop) and await lock.acquire("b", clock, 5, stop))
        seen.append((lock.busy(), lock.holder))
        seen.append(await lock.acquire("c", clock, 5, stop))  # both slots held past its wait
        asyncio.get_running_loop().call_later(2, lock.release, "a")
        start = clock.monotonic()
        seen.append(await lock.acquire("c", clock, 5, stop))
        seen.append((clock.monotonic() - start, lock.holder))

    run_virtual(main())
    assert seen == [True, (True, "a, b"), False, True, (2, "b, c")]
