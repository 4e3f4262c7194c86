"""The run loop in virtual time: every mode, overrun, backoff, waits, jitter, signals."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from proxbox_scheduler.config import load
from proxbox_scheduler.core.clock import CLOCK_WATCH_SECONDS, STEP_TOLERANCE_SECONDS
from proxbox_scheduler.core.loop import LoopSettings, Scheduler
from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.schedule import epoch_grid_slot, parse_mode
from proxbox_scheduler.core.trigger import RunContext
from tests.support.clock import FakeClock, run_virtual

UTCZ = ZoneInfo("UTC")


def loop_settings(mode: str, **overrides: Any) -> LoopSettings:
    """The loop's view of the default configuration, with a mode and some values replaced."""
    defaults = load({}).loop_settings()
    return dataclasses.replace(defaults, mode=parse_mode(mode), **{"tz": UTCZ, **overrides})


OK = Outcome.success()
FAIL = Outcome.failure("boom")
AUTH = Outcome.failure("API key rejected (HTTP 401)", auth_rejected=True)


@dataclass
class Step:
    """One scripted run: how long it takes and what it returns (or raises)."""

    duration: float = 1.0
    outcome: Outcome = OK
    raises: BaseException | None = None


@dataclass
class Script:
    """A trigger that plays steps, records when each run started, and stops the loop when done."""

    clock: FakeClock
    steps: list[Step]
    scheduler: Scheduler | None = None
    starts: list[float] = field(default_factory=list)
    walls: list[datetime] = field(default_factory=list)
    cancelled_at: list[float] = field(default_factory=list)
    slots: list[datetime | None] = field(default_factory=list)

    async def run(self, ctx: RunContext) -> Outcome:
        self.slots.append(ctx.slot)
        self.starts.append(self.clock.monotonic())
        self.walls.append(self.clock.now())
        step = self.steps[len(self.starts) - 1]
        if len(self.starts) == len(self.steps) and self.scheduler:
            asyncio.get_running_loop().call_later(step.duration, self.scheduler.request_stop)
        try:
            await asyncio.sleep(step.duration)
        except asyncio.CancelledError:
            self.cancelled_at.append(self.clock.monotonic())
            raise
        if step.raises:
            raise step.raises
        return step.outcome

    async def aclose(self) -> None:
        pass


class Recorder(Observer):
    def __init__(self) -> None:
        self.skips: list[tuple[str, int]] = []
        self.ends: list[tuple[Outcome, float, float]] = []
        self.waits: list[tuple[datetime, float]] = []

    def on_skip(self, reason: str, count: int, detail: str) -> None:
        self.skips.append((reason, count))

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        self.ends.append((outcome, duration, next_wait))

    def on_waiting(self, next_fire: datetime, seconds: float) -> None:
        self.waits.append((next_fire, seconds))


def play(
    mode: str,
    steps: list[Step],
    *,
    clock: FakeClock | None = None,
    rng: random.Random | None = None,
    before: Any = None,
    **settings: Any,
) -> tuple[Script, Recorder]:
    """Run the loop over the scripted steps in virtual time; stop after the last one."""
    clock = clock or FakeClock()
    script = Script(clock, steps)
    recorder = Recorder()
    settings_view = loop_settings(mode, **settings)

    async def main() -> None:
        scheduler = Scheduler(settings_view, script, clock=clock, observer=recorder, rng=rng)
        script.scheduler = scheduler
        if before:
            before(asyncio.get_running_loop(), clock, scheduler)
        await scheduler.run_forever()

    run_virtual(main())
    return script, recorder


# ---------------------------------------------------------------- interval


def test_interval_starts_are_start_to_start_on_the_grid() -> None:
    script, _ = play("interval=10", [Step(2)] * 5)
    assert script.starts == [10, 20, 30, 40, 50]


def test_interval_does_not_drift_over_thousands_of_runs() -> None:
    script, _ = play("interval=0.1", [Step(0.03)] * 3000)
    errors = [abs(start - 0.1 * (k + 1)) for k, start in enumerate(script.starts)]
    assert max(errors) < 1e-9


def test_interval_overrun_never_overlaps_and_skips_without_burst() -> None:
    script, recorder = play("interval=10", [Step(25), Step(1), Step(1)])
    # run 1: 10..35; slots 20 and 30 passed: 20 is served late at 35, 30 is skipped
    assert script.starts == [10, 35, 45]
    assert recorder.skips == [("overrun", 1)]


def test_interval_slot_passing_exactly_at_run_end_is_served_at_once() -> None:
    script, recorder = play("interval=10", [Step(10), Step(1)])
    assert script.starts == [10, 20]
    assert recorder.skips == []


def test_interval_failure_waits_backoff_when_it_ends_after_the_next_slot() -> None:
    script, _ = play("interval=10", [Step(1, FAIL), Step(1), Step(1)], backoff=30)
    # failure ends at 11: next = max(20, 11 + 30) = 41, then the grid re-anchors
    assert script.starts == [10, 41, 51]


def test_interval_failure_keeps_the_grid_when_backoff_is_shorter() -> None:
    script, _ = play("interval=10", [Step(1, FAIL), Step(1)], backoff=3)
    assert script.starts == [10, 20]


def test_run_on_start_runs_at_once_then_follows_the_interval() -> None:
    script, _ = play("interval=10", [Step(1)] * 3, run_on_start=True)
    assert script.starts == [0, 10, 20]


# ---------------------------------------------------------------- continuous


def test_continuous_runs_back_to_back_and_backs_off_after_failure() -> None:
    script, recorder = play("continuous", [Step(2), Step(3, FAIL), Step(2)], backoff=30)
    assert script.starts == [0, 2, 35]
    assert [wait for _, _, wait in recorder.ends] == [0, 30, 0]


def test_trigger_min_wait_wins_over_a_shorter_backoff() -> None:
    slow_down = Outcome.failure("HTTP 429", min_wait=300)
    script, _ = play("continuous", [Step(1, slow_down), Step(1)], backoff=30)
    assert script.starts == [0, 301]


def test_min_wait_is_capped_by_backoff_max() -> None:
    absurd = Outcome.failure("HTTP 503", min_wait=10**9)
    script, _ = play("continuous", [Step(1, absurd), Step(1)], backoff=30, backoff_max=600)
    assert script.starts == [0, 601]


def test_consecutive_auth_failures_double_the_wait_up_to_the_cap_and_success_resets() -> None:
    steps = [Step(0, AUTH)] * 5 + [Step(0), Step(0, AUTH), Step(0)]
    _, recorder = play("continuous", steps, backoff=30, backoff_max=150)
    assert [wait for _, _, wait in recorder.ends] == [30, 60, 120, 150, 150, 0, 30, 0]


def test_other_failures_and_lockouts_neither_reset_nor_extend_the_auth_streak() -> None:
    lockout = Outcome.failure("HTTP 429", min_wait=180)
    steps = [Step(0, AUTH), Step(0, AUTH), Step(0, FAIL), Step(0, lockout), Step(0, AUTH), Step(0)]
    _, recorder = play("continuous", steps, backoff=30)
    assert [wait for _, _, wait in recorder.ends] == [30, 60, 30, 180, 120, 0]


def test_a_very_long_auth_streak_stays_at_the_cap_without_overflow() -> None:
    _, recorder = play("continuous", [Step(0, AUTH)] * 1100, backoff=30, backoff_max=150)
    assert [wait for _, _, wait in recorder.ends][-3:] == [150, 150, 150]


def test_busy_skip_is_reported_and_continuous_waits_backoff() -> None:
    busy = Outcome.skipped("busy", "proxbox-api is already running a sync")
    script, recorder = play("continuous", [Step(0, busy), Step(1)], backoff=7)
    assert script.starts == [0, 7]
    assert recorder.ends[0][0].status is Status.SKIPPED


def test_busy_skip_in_interval_mode_follows_the_grid() -> None:
    busy = Outcome.skipped("busy", "busy")
    script, _ = play("interval=10", [Step(0, busy), Step(1)], backoff=7)
    assert script.starts == [10, 20]


# ---------------------------------------------------------------- jitter


def test_jitter_delays_each_scheduled_fire_within_bounds_without_moving_the_grid() -> None:
    script, _ = play("interval=10", [Step(0.5)] * 200, jitter=3, rng=random.Random(7))
    lateness = [start - 10 * (k + 1) for k, start in enumerate(script.starts)]
    assert all(0 <= late <= 3 for late in lateness)
    assert max(lateness) > 2.5 and min(lateness) < 0.5  # the whole range is used


def test_no_jitter_on_run_on_start_or_continuous() -> None:
    script, _ = play("continuous", [Step(1)] * 3, jitter=50, run_on_start=True, rng=random.Random(1))
    assert script.starts == [0, 1, 2]


# ---------------------------------------------------------------- cron


def test_cron_fires_on_wall_clock_fire_times() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC))
    script, recorder = play("cron=*/15 * * * *", [Step(5)] * 3, clock=clock)
    assert [w.strftime("%H:%M:%S") for w in script.walls] == ["10:15:00", "10:30:00", "10:45:00"]
    assert recorder.waits[0][0].isoformat() == "2026-11-29T10:15:00+00:00"


def test_cron_in_a_zone_logs_the_next_fire_in_that_zone() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    script, recorder = play("cron=0 9 * * *", [Step(1)], clock=clock, tz=ZoneInfo("America/Sao_Paulo"))
    assert recorder.waits[0][0].isoformat() == "2026-11-29T09:00:00-03:00"
    assert script.walls[0] == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_cron_overrun_skips_passed_fires_and_does_not_queue_them() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    script, recorder = play("cron=*/15 * * * *", [Step(40 * 60), Step(1)], clock=clock)
    # run 10:15..10:55 swallows 10:30 and 10:45; next is 11:00
    assert [w.strftime("%H:%M") for w in script.walls] == ["10:15", "11:00"]
    assert recorder.skips == [("overrun", 2)]


def test_cron_failure_backoff_skips_fires_inside_the_wait() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    script, recorder = play("cron=* * * * *", [Step(1, FAIL), Step(1)], clock=clock, backoff=150)
    # fails at 10:01:01, backoff until 10:03:31: 10:02 and 10:03 are skipped, 10:04 fires
    assert [w.strftime("%H:%M:%S") for w in script.walls] == ["10:01:00", "10:04:00"]
    assert recorder.skips == [("backoff", 2)]


def test_cron_never_fires_early_when_the_wall_clock_steps_back() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))

    def step_back(loop: asyncio.AbstractEventLoop, clk: FakeClock, _: Scheduler) -> None:
        loop.call_later(60, clk.jump, -3600)  # at 10:01 the clock reads 09:01

    script, _ = play("cron=15 10 * * *", [Step(1)], clock=clock, before=step_back)
    assert script.walls[0] == datetime(2026, 11, 29, 10, 15, tzinfo=UTC)
    assert script.starts[0] == pytest.approx(3600 + 15 * 60, abs=STEP_TOLERANCE_SECONDS)  # not a poll later


def test_cron_fires_promptly_when_the_wall_clock_steps_past_the_fire() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))

    def resume(loop: asyncio.AbstractEventLoop, clk: FakeClock, _: Scheduler) -> None:
        loop.call_later(30, clk.jump, 3 * 3600)  # container resumed 3 h later

    script, _ = play("cron=0 11 * * *", [Step(1)], clock=clock, before=resume)
    assert 30 <= script.starts[0] <= 30 + CLOCK_WATCH_SECONDS


def test_a_clock_stepped_past_several_fires_runs_one_and_counts_the_rest_as_missed() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))

    def resume(loop: asyncio.AbstractEventLoop, clk: FakeClock, _: Scheduler) -> None:
        loop.call_later(30, clk.jump, 3 * 3600)  # 10:00:30 -> 13:00:30: 11:00, 12:00 and 13:00 passed

    script, recorder = play("cron=0 * * * *", [Step(1), Step(1)], clock=clock, before=resume)
    assert [w.strftime("%H:%M") for w in script.walls] == ["13:00", "14:00"]
    assert [slot.strftime("%H:%M") for slot in script.slots if slot] == ["11:00", "14:00"]
    assert recorder.skips == [("missed", 2)]  # 12:00 and 13:00, not an "overrun" of a 1 s run


def test_cron_run_on_start_runs_now_then_at_the_next_fire() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 7, tzinfo=UTC))
    script, _ = play("cron=*/15 * * * *", [Step(1), Step(1)], clock=clock, run_on_start=True)
    assert [w.strftime("%H:%M") for w in script.walls] == ["10:07", "10:15"]


def test_cron_daily_job_runs_once_on_a_fall_back_night(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxbox_scheduler.core.clock.CLOCK_WATCH_SECONDS", 600.0)  # days pass: watch less
    ny = ZoneInfo("America/New_York")
    clock = FakeClock(datetime(2026, 10, 31, 12, 0, tzinfo=ny).astimezone(UTC))
    script, _ = play("cron=30 1 * * *", [Step(60)] * 3, clock=clock, tz=ny)
    local = [w.astimezone(ny).isoformat() for w in script.walls]
    assert local == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]


# ---------------------------------------------------------------- failures, timeouts, signals


def test_an_exception_in_the_trigger_is_a_failed_run_and_the_loop_goes_on() -> None:
    script, recorder = play("continuous", [Step(1, raises=RuntimeError("boom")), Step(1)], backoff=5)
    assert script.starts == [0, 6]
    first = recorder.ends[0][0]
    assert first.status is Status.FAILURE and first.reason == "RuntimeError: boom"


def test_run_longer_than_the_timeout_is_cancelled_and_fails() -> None:
    script, recorder = play("continuous", [Step(10_000), Step(1)], run_timeout=100, backoff=5)
    assert script.cancelled_at == [100]
    reason = recorder.ends[0][0].reason
    assert "PROXBOX_API_TIMEOUT (100 s)" in reason and "the sync did not finish" in reason
    assert script.starts == [0, 105]


def _stop_at(seconds: float, times: int = 1) -> Any:
    def schedule(loop: asyncio.AbstractEventLoop, _: FakeClock, scheduler: Scheduler) -> None:
        for _ in range(times):
            loop.call_later(seconds, scheduler.request_stop)

    return schedule


def test_stop_while_waiting_returns_at_once() -> None:
    script, _ = play("interval=3600", [Step(1)], before=_stop_at(5))
    assert script.starts == []


def test_stop_during_a_run_lets_it_finish_within_the_grace_and_starts_nothing_new() -> None:
    script, recorder = play("continuous", [Step(10), Step(1)], shutdown_grace=25, before=_stop_at(3))
    assert script.starts == [0]
    assert recorder.ends[0][0].ok and script.cancelled_at == []


def test_stop_during_a_long_run_cancels_it_after_the_grace() -> None:
    script, recorder = play("continuous", [Step(1000)], shutdown_grace=25, before=_stop_at(3))
    assert script.cancelled_at == [28]
    assert recorder.ends[0][0].reason == "cancelled at shutdown"


def test_second_stop_cancels_the_run_at_once() -> None:
    script, _ = play("continuous", [Step(1000)], shutdown_grace=25, before=_stop_at(3, times=2))
    assert script.cancelled_at == [3]


def test_run_once_returns_the_outcome_and_names_the_run() -> None:
    clock = FakeClock()
    script = Script(clock, [Step(2, FAIL)])
    recorder = Recorder()

    async def main() -> Outcome:
        settings = loop_settings("off")
        return await Scheduler(settings, script, clock=clock, observer=recorder).run_once()

    assert run_virtual(main()) == FAIL
    assert recorder.ends[0][1] == 2


def test_off_mode_does_nothing() -> None:
    script, _ = play("off", [Step(1)])
    assert script.starts == []


def test_waiting_reports_the_next_fire_before_each_wait() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    _, recorder = play("interval=60", [Step(1)] * 2, clock=clock)
    assert [fire for fire, _ in recorder.waits][:2] == [
        datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 2, tzinfo=UTC),
    ]
    assert recorder.waits[1][1] == pytest.approx(59)
    assert recorder.waits[0][0] - recorder.waits[1][0] == timedelta(minutes=-1)


# ---------------------------------------------------------------- slots (issue 14: what replicas claim)


def test_interval_slots_are_claimed_on_the_unix_epoch_grid_whatever_the_start() -> None:
    """The loop's nominal slots follow its own start; replicas claim them on the epoch grid."""
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, 3, 400000, tzinfo=UTC))
    script, _ = play("interval=10", [Step(1)] * 3, clock=clock)
    assert [s.second for s in script.slots] == [13, 23, 33]
    claimed = [epoch_grid_slot(s, 10) for s in script.slots]
    assert claimed == [datetime(2026, 11, 29, 10, 0, s, tzinfo=UTC) for s in (10, 20, 30)]


def test_cron_slots_are_the_nominal_fires_and_continuous_has_none() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC))
    script, _ = play("cron=*/5 * * * *", [Step(1)] * 2, clock=clock, jitter=30)
    assert script.slots == [datetime(2026, 11, 29, 10, m, tzinfo=UTC) for m in (5, 10)]
    continuous, _ = play("continuous", [Step(1)] * 2)
    assert continuous.slots == [None, None]
