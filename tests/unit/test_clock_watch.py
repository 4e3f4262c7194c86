"""The one wall-clock watcher of a process, in virtual time: it wakes waiters on a step only,
and many cron jobs share its one timer instead of each polling the wall clock."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from proxbox_scheduler.config import load
from proxbox_scheduler.core.clock import CLOCK_WATCH_SECONDS, STEP_TOLERANCE_SECONDS, ClockWatch
from proxbox_scheduler.core.loop import Scheduler
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.schedule import parse_mode
from proxbox_scheduler.core.trigger import RunContext
from tests.support.clock import FakeClock, run_virtual


class CountingClock(FakeClock):
    """Counts wall-clock reads: each one is a job (or the watch) waking to look at the time."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return super().now()


class Starts:
    """A trigger that records the virtual instant of every run."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.at: list[float] = []

    async def run(self, ctx: RunContext) -> Outcome:
        self.at.append(self.clock.monotonic())
        return Outcome.success()

    async def aclose(self) -> None:
        pass


def cron_jobs(clock: FakeClock, mode: str, count: int, watch: ClockWatch) -> list[tuple[Scheduler, Starts]]:
    settings = dataclasses.replace(load({}).loop_settings(), mode=parse_mode(mode))
    jobs = []
    for _ in range(count):
        trigger = Starts(clock)
        jobs.append((Scheduler(settings, trigger, clock=clock, watch=watch), trigger))
    return jobs


def test_a_hundred_idle_cron_jobs_read_the_wall_clock_once_per_watch_period() -> None:
    clock = CountingClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    reads: list[int] = []

    async def main() -> None:
        watch = ClockWatch(clock)
        jobs = cron_jobs(clock, "cron=0 3 1 6 *", 100, watch)  # next fire months away
        tasks = [asyncio.create_task(job.run_forever()) for job, _ in jobs]
        await asyncio.sleep(60)  # every job has planned its fire and is asleep
        reads.append(clock.reads)
        await asyncio.sleep(3600)
        reads.append(clock.reads)
        for job, _ in jobs:
            job.request_stop()
        await asyncio.gather(*tasks)
        assert watch._task is None  # no waiter left: the watch's timer is gone too

    run_virtual(main())
    assert reads[1] - reads[0] <= 3600 / CLOCK_WATCH_SECONDS + 1  # one read per tick, not one per job


def test_a_forward_step_wakes_every_waiting_cron_job_within_one_period() -> None:
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    jobs_ref: list[tuple[Scheduler, Starts]] = []

    async def main() -> None:
        watch = ClockWatch(clock)
        jobs_ref.extend(cron_jobs(clock, "cron=0 13 * * *", 3, watch))
        asyncio.get_running_loop().call_later(100, clock.jump, 3 * 3600)  # resumed VM, 15:01 now
        tasks = [asyncio.create_task(job.run_forever()) for job, _ in jobs_ref]
        await asyncio.sleep(100 + CLOCK_WATCH_SECONDS + 1)
        for job, _ in jobs_ref:
            job.request_stop()
        await asyncio.gather(*tasks)

    run_virtual(main())
    for _, trigger in jobs_ref:
        assert len(trigger.at) == 1 and 100 <= trigger.at[0] <= 100 + CLOCK_WATCH_SECONDS


def test_the_watch_wakes_on_a_step_only_and_runs_only_while_someone_waits() -> None:
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    seen: list[bool] = []

    async def main() -> None:
        watch = ClockWatch(clock, period=5)
        wake = asyncio.Event()
        with watch.watching(wake):
            assert watch._task is not None
            await asyncio.sleep(12)
            seen.append(wake.is_set())  # time passing is no step
            clock.jump(STEP_TOLERANCE_SECONDS / 5)
            await asyncio.sleep(5)
            seen.append(wake.is_set())  # nor is a read-to-read jitter
            clock.jump(-2)
            await asyncio.sleep(5)
            seen.append(wake.is_set())  # a step back is
        assert watch._task is None

    run_virtual(main())
    assert seen == [False, False, True]


def test_a_job_that_planned_between_a_step_back_and_a_step_forward_is_woken_too() -> None:
    """The two steps cancel out for the watch's earlier reading, not for the job planned between."""
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    jobs: list[tuple[Scheduler, Starts]] = []

    async def main() -> None:
        watch = ClockWatch(clock)
        jobs.extend(cron_jobs(clock, "cron=10 12 * * *", 2, watch))  # 600 s away
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(jobs[0][0].run_forever())]
        loop.call_later(1, clock.jump, -3600)
        loop.call_later(2, lambda: tasks.append(asyncio.create_task(jobs[1][0].run_forever())))
        loop.call_later(3, clock.jump, 3600)  # back where it was: planned at 2 s, job 1 is 1 h off
        await asyncio.sleep(700)
        for job, _ in jobs:
            job.request_stop()
        await asyncio.gather(*tasks)

    run_virtual(main())
    assert [trigger.at for _, trigger in jobs] == [[600], [600]]
