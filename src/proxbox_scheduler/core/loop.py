"""The run loop: decides when a run starts, supervises it, and waits after it.

It owns no I/O of its own: time comes from the injected Clock, runs from the
injected Trigger, and everything worth reporting goes to the Observer, so the
same loop runs in production and, in virtual time, in the unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from proxbox_scheduler.core.clock import Clock, ClockWatch
from proxbox_scheduler.core.control import HOLD_SECONDS, PauseHook, PauseSwitch, Wake
from proxbox_scheduler.core.gate import TargetLock
from proxbox_scheduler.core.judge import Counts, judge_counts
from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.schedule import Mode, ModeKind, cron_fires, missed_fires, plan_cron, plan_interval
from proxbox_scheduler.core.trigger import RunContext, RunLogAdapter, Trigger, new_run_id
from proxbox_scheduler.state.base import (
    Counters,
    JobState,
    RunStart,
    StateError,
    StateStore,
    history_counts,
)

log = logging.getLogger("proxbox_scheduler.loop")

MAX_COUNTED_SKIPS = 100_000
MAX_DOUBLINGS = 60
"""The doubling stops growing here (long past any cap) so a months-long streak cannot overflow."""
AUTH_REJECTED_FLOOR_SECONDS = 30.0
"""The least wait after a rejected key, whatever the backoff (even 0): proxbox-api locks a key
out after five bad attempts, so a rejected key must never be retried in a tight loop."""
CANCEL_WAIT_SECONDS = 20.0
"""How long a cancelled trigger may take to clean up (exec: SIGTERM, then SIGKILL after 10 s)."""


@dataclass(frozen=True)
class LoopSettings:
    """The part of one job's configuration the loop reads (built by ``Config.loop_settings``).

    ``timeout_name`` is the setting that holds ``run_timeout``, named in the reason
    of a run that exceeded it, with ``unfinished`` saying what was left undone; ``replica``
    names this process in the run history; ``phase`` offsets an interval grid from the start
    (jobs of one process spread their fires instead of all firing at once).
    ``catchup`` (``skip`` or ``latest``) and ``starting_deadline`` decide what happens
    at start to fires missed while down.
    """

    mode: Mode
    tz: ZoneInfo
    backoff: float
    backoff_max: float
    run_timeout: float
    jitter: float
    shutdown_grace: float
    run_on_start: bool
    timeout_name: str
    unfinished: str
    replica: str
    phase: float
    job: str
    catchup: str
    starting_deadline: float


@dataclass(frozen=True)
class Fire:
    """The next start: at a monotonic instant (interval, continuous) or a wall-clock fire (cron).

    ``jittered`` fires are grid slots or cron fires, which jitter delays; immediate
    and catch-up starts are not. ``slot`` is the nominal fire time the run is for
    (None for runs no schedule asked for), ``kind`` why it runs (the history's trigger).
    """

    at_monotonic: float | None = None
    at_wall: datetime | None = None
    jittered: bool = True
    slot: datetime | None = None
    kind: str = "scheduled"


class Scheduler:
    """Runs the trigger on the schedule until asked to stop."""

    def __init__(
        self,
        settings: LoopSettings,
        trigger: Trigger,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        store: StateStore | None = None,
        memory: JobState | None = None,
        lock: TargetLock | None = None,
        pause_hook: PauseHook | None = None,
        watch: ClockWatch | None = None,
    ) -> None:
        """``store`` records every run and pause (None: nothing is kept); ``memory`` is what it held
        at start (streaks, last slot, paused); ``lock`` is the job's target, shared with other jobs
        on it; ``pause_hook`` persists a pause instead of the store; ``watch`` notices wall-clock
        steps for cron waits (one per process, shared by its jobs)."""
        self.settings = settings
        self.trigger = trigger
        self.clock = clock or Clock()
        self.observer = observer or Observer()
        self.rng = rng or random.Random()
        self.store = store
        self.lock = lock
        self.watch = watch or ClockWatch(self.clock)
        memory = memory or JobState(settings.job)
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._wake = asyncio.Event()  # ends a wait: a stop, a run request or a resume
        self._run_requested = False
        self._running = False
        if pause_hook is None and store is not None:
            pause_hook = functools.partial(store.set_paused, settings.job)
        self._pause = PauseSwitch(lambda paused: self.observer.on_paused(paused), pause_hook)
        self._paused_at_start = memory.paused
        self._auth_streak = memory.counters.auth_streak
        self._failures = memory.counters.consecutive_failures
        self._last_slot = memory.last_slot
        self._origin = 0.0  # interval grid origin (monotonic)
        self._index = 0  # grid slot of the last scheduled run
        self._last_fire: datetime | None = None  # cron fire of the last run
        self._woke_at: datetime | None = (
            None  # wall time a cron wait ended (fires before it were stepped past)
        )
        remembered = memory.last_success.counts if memory.last_success else {}
        self.last_counts: Counts | None = dict(remembered) if any(remembered.values()) else None
        """Object counts of the last success with objects (from the store after a restart)."""

    # ------------------------------------------------------------ control

    def request_stop(self) -> None:
        """First call: start nothing new and let a run finish within the grace. Second: cancel now."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_run(self) -> str | None:
        """Run as soon as possible without moving the schedule; the reason when refused.

        Runs never overlap: while one is going the request is refused, not queued.
        """
        if self.stopping:
            return "the scheduler is stopping"
        if self._running:
            return "a run is in progress"
        self._run_requested = True
        self._wake.set()
        return None

    @property
    def paused(self) -> bool:
        return self._pause.on

    def pause(self) -> None:
        """Skip fires (counted as ``paused``) until resumed; a requested run still runs."""
        self._pause.set(True)

    def resume(self) -> None:
        self._pause.set(False)
        self._wake.set()

    # ------------------------------------------------------------ entry points

    async def run_forever(self) -> None:
        """Fire according to the mode until stopped."""
        if self.settings.mode.kind is ModeKind.OFF:
            return
        if self._paused_at_start:  # a pause persisted by an earlier process holds across the restart
            self._pause.set(True, persist=False)
        now_mono, now_wall = self.clock.monotonic(), self.clock.now()
        self._origin, self._index = now_mono + self.settings.phase, 0
        # a slot a previous process already started is never run again (clock set back meanwhile)
        self._last_fire = max(now_wall, self._last_slot) if self._last_slot else now_wall
        missed = self._catch_up(now_wall)
        if missed is not None:
            fire = Fire(at_monotonic=now_mono, jittered=False, slot=missed, kind="catchup")
        elif self.settings.run_on_start:
            fire = Fire(at_monotonic=now_mono, jittered=False, kind="start")
        elif self.settings.mode.kind is ModeKind.CONTINUOUS:
            fire = Fire(at_monotonic=now_mono, jittered=False)
        else:
            fire = self._first_fire()
        try:
            while (wake := await self._wait_for(fire)) is not Wake.STOP:
                if wake is Wake.FIRE and fire.at_wall is not None:
                    self._woke_at = self.clock.now()
                if wake is Wake.FIRE and self._pause.on:
                    self.observer.on_skip("paused", 1, "the job is paused")
                    fire = self._next_fire(0.0)
                    continue
                run = Fire(kind="manual") if wake is Wake.RUN else fire  # a manual run is for no slot
                _, wait = await self._run(owes_pause=True, fire=run)
                if self.stopping:
                    return
                fire = self._after_manual(fire, wait) if wake is Wake.RUN else self._next_fire(wait)
        finally:
            self.observer.on_stop()

    async def run_once(self) -> Outcome:
        """A lone run (`once`): nothing follows it, so it owes no pause."""
        outcome, _ = await self._run(owes_pause=False, fire=Fire(kind="once"))
        return outcome

    async def _run(self, *, owes_pause: bool, fire: Fire) -> tuple[Outcome, float]:
        """One run, never two at once: a run request meanwhile (even while waiting for the
        target's turn) is refused."""
        self._running = True
        try:
            return await self._run_in_turn(owes_pause, fire)
        finally:
            self._running = False

    async def _run_in_turn(self, owes_pause: bool, fire: Fire) -> tuple[Outcome, float]:
        """One run in the target's turn; a fire that found no turn is a ``busy`` skip."""
        if self.lock is None:
            return await self._run_now(owes_pause, fire)
        if self.lock.busy():
            log.info(
                "waiting for another job on the same target",
                extra={"job": self.settings.job, "running_job": self.lock.holder},
            )
        if not await self.lock.acquire(self.settings.job, self.clock, self.settings.run_timeout, self._stop):
            detail = f"another job held the target for longer than {self.settings.timeout_name}"
            if not self.stopping:
                self.observer.on_skip("busy", 1, detail)
            return Outcome.skipped("busy", detail), 0.0
        try:
            return await self._run_now(owes_pause, fire)
        finally:
            self.lock.release(self.settings.job)

    async def _run_now(self, owes_pause: bool, fire: Fire) -> tuple[Outcome, float]:
        """One supervised run: timeout, shutdown grace, and no exception escapes; recorded in the store.

        Returns the outcome and the pause a scheduled run owes the next start (backoff).
        """
        run_id, job = new_run_id(), self.settings.job
        ctx = RunContext(
            run_id,
            RunLogAdapter(logging.getLogger("proxbox_scheduler.run"), {"run_id": run_id, "job": job}),
            lambda progress: self.observer.on_progress(run_id, progress),
            job=job,
            slot=fire.slot,
        )
        start = RunStart(run_id, job, self.clock.now(), fire.kind, fire.slot, self.settings.replica)
        await self._persist(lambda store: store.run_started(start))
        self.observer.on_run_trigger(run_id, fire.kind)
        self.observer.on_run_start(run_id, start.started)
        started = self.clock.monotonic()
        task = asyncio.create_task(self._guarded(ctx))
        outcome, self.last_counts = judge_counts(await self._supervise(task, started), self.last_counts)
        duration = self.clock.monotonic() - started
        self._count(outcome)
        wait = self._wait_after(outcome) if owes_pause else 0.0
        record = start.finish(
            self.clock.now(),
            duration,
            outcome.label.value,
            outcome.reason,
            history_counts(outcome.details.get("counts")),
        )
        counters = Counters(min(self._failures, 2**31 - 1), min(self._auth_streak, 2**31 - 1))
        await self._persist(lambda store: store.run_finished(record, counters))
        self.observer.on_run_end(run_id, outcome, duration, wait)
        return outcome, wait

    async def _persist(self, write: Callable[[StateStore], Awaitable[None]]) -> None:
        """One store write, shielded so a shutdown cannot tear it; a failed write is a warning."""
        if self.store is None:
            return
        try:
            await asyncio.shield(write(self.store))
        except StateError as exc:
            log.warning("the state store did not record the run: %s", exc, extra={"job": self.settings.job})

    # ------------------------------------------------------------ one run

    async def _guarded(self, ctx: RunContext) -> Outcome:
        try:
            return await self.trigger.run(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ctx.log.debug("trigger raised", exc_info=True)
            return Outcome.failure(f"{type(exc).__name__}: {exc}")

    async def _supervise(self, task: asyncio.Task[Outcome], started: float) -> Outcome:
        deadline = started + self.settings.run_timeout
        await self._wait_task(task, deadline, self._stop)
        if task.done():
            return task.result()
        if self.stopping:
            grace_end = min(deadline, self.clock.monotonic() + self.settings.shutdown_grace)
            await self._wait_task(task, grace_end, self._force)
            if task.done():
                return task.result()
            reason = "cancelled at shutdown"
            if self.clock.monotonic() >= deadline:
                reason = self._timeout_reason()
        else:
            reason = self._timeout_reason()
        await self._cancel(task)
        return Outcome.failure(reason)

    def _timeout_reason(self) -> str:
        s = self.settings
        return f"run exceeded {s.timeout_name} ({s.run_timeout:g} s) and was cancelled: {s.unfinished}"

    async def _wait_task(self, task: asyncio.Task[Outcome], until: float, wake: asyncio.Event) -> None:
        """Return when the task is done, ``wake`` is set, or the monotonic clock reaches ``until``."""
        if task.done() or wake.is_set():
            return
        timer = asyncio.create_task(self.clock.sleep(until - self.clock.monotonic(), wake))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    async def _cancel(self, task: asyncio.Task[Outcome]) -> None:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        if not done:
            log.warning("the cancelled run did not finish cleaning up in time; leaving it behind")
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()

    # ------------------------------------------------------------ waits

    def _count(self, outcome: Outcome) -> None:
        """The streaks the store keeps: failures since the last success, rejected keys among them
        (other failures, a 429 lockout among them, neither reset nor extend the key streak)."""
        if outcome.status is Status.SUCCESS:
            self._failures = self._auth_streak = 0
        elif outcome.status is Status.FAILURE:
            self._failures += 1
            self._auth_streak += int(outcome.auth_rejected)

    def _wait_after(self, outcome: Outcome) -> float:
        """Pause owed before the next start: backoff, doubled for each rejected key since the last success."""
        s = self.settings
        cap = max(s.backoff, s.backoff_max)
        if outcome.status is Status.SUCCESS:
            wait = 0.0
        elif outcome.status is Status.SKIPPED:
            wait = s.backoff if s.mode.kind is ModeKind.CONTINUOUS else 0.0
        elif outcome.auth_rejected:
            base = max(s.backoff, AUTH_REJECTED_FLOOR_SECONDS)
            wait = min(base * 2.0 ** min(self._auth_streak - 1, MAX_DOUBLINGS), max(cap, base))
        else:
            wait = s.backoff
        return max(wait, min(outcome.min_wait or 0.0, cap))

    async def _wait_for(self, fire: Fire) -> Wake:
        """Sleep until the fire (plus jitter), a run request or a stop, whichever comes first."""
        if fire.at_wall is not None:
            seconds = (fire.at_wall - self.clock.now()).total_seconds()
            self.observer.on_waiting(fire.at_wall.astimezone(self.settings.tz), max(0.0, seconds))
        else:
            assert fire.at_monotonic is not None
            seconds = max(0.0, fire.at_monotonic - self.clock.monotonic())
            when = self.clock.now() + timedelta(seconds=seconds)
            self.observer.on_waiting(when.astimezone(self.settings.tz), seconds)
        with self.watch.watching(self._wake) if fire.at_wall is not None else contextlib.nullcontext():
            while (step := self._step_towards(fire)) > 0:
                if await self.clock.sleep(step, self._wake) and (woken := self._woken()):
                    return woken
        if fire.jittered and self.settings.jitter > 0:
            delay = self.rng.uniform(0.0, self.settings.jitter)
            if await self.clock.sleep(delay, self._stop):
                return Wake.STOP
        return Wake.STOP if self.stopping else Wake.FIRE

    def _step_towards(self, fire: Fire) -> float:
        """The next sleep: to the fire, long when paused continuous; <= 0 at it.

        A cron sleep runs on the monotonic clock and is re-planned when it ends or the watch
        sees the wall clock step: stepped back, it never fires early; stepped forward, it fires
        within the watch's period.
        """
        if self._pause.on and self.settings.mode.kind is ModeKind.CONTINUOUS:
            return HOLD_SECONDS
        if fire.at_wall is not None:
            return (fire.at_wall - self.clock.now()).total_seconds()
        assert fire.at_monotonic is not None
        return fire.at_monotonic - self.clock.monotonic()

    def _woken(self) -> Wake | None:
        """Why the wait was woken; None for a resume or a wall-clock step, which only re-check the fire."""
        self._wake.clear()
        if self.stopping:
            return Wake.STOP
        if self._run_requested:
            self._run_requested = False
            return Wake.RUN
        return None

    # ------------------------------------------------------------ planning

    def _catch_up(self, now: datetime) -> datetime | None:
        """Fires missed while no process ran (after the last slot started): the one to run now, if any.

        ``latest`` runs the newest missed fire once when it is younger than the deadline;
        every other missed fire is counted as a ``missed`` skip.
        """
        if self._last_slot is None:
            return None
        s = self.settings
        count, latest = missed_fires(s.mode, self._last_slot, now, s.tz, MAX_COUNTED_SKIPS)
        if not count or latest is None:
            return None
        run = s.catchup == "latest" and (now - latest).total_seconds() <= s.starting_deadline
        if count - run:
            self.observer.on_skip("missed", count - run, "fires passed while the scheduler was not running")
        return latest if run else None

    def _interval_fire(self, at: float, jittered: bool = True) -> Fire:
        """A monotonic fire whose slot is the wall time it stands for."""
        slot = self.clock.now() + timedelta(seconds=at - self.clock.monotonic())
        return Fire(at_monotonic=at, jittered=jittered, slot=slot)

    def _first_fire(self) -> Fire:
        mode = self.settings.mode
        if mode.kind is ModeKind.INTERVAL:
            self._index = 1
            return self._interval_fire(self._origin + mode.interval)
        assert self._last_fire is not None
        fire = next(cron_fires(mode.cron, self._last_fire, self.settings.tz))
        self._last_fire = fire
        return Fire(at_wall=fire, slot=fire)

    def _after_manual(self, pending: Fire, wait: float) -> Fire:
        """A manual run leaves the schedule alone: the pending fire stays, unless the run owes
        a backoff or the mode is continuous (then it is planned as after any run)."""
        if wait or self.settings.mode.kind is ModeKind.CONTINUOUS:
            return self._next_fire(wait)
        return pending

    def _next_fire(self, wait: float) -> Fire:
        kind = self.settings.mode.kind
        if kind is ModeKind.CONTINUOUS:
            return Fire(at_monotonic=self.clock.monotonic() + wait, jittered=False)
        if kind is ModeKind.INTERVAL:
            return self._next_interval(wait)
        return self._next_cron(wait)

    def _next_interval(self, wait: float) -> Fire:
        now_mono = self.clock.monotonic()
        plan = plan_interval(self._origin, self._index, self.settings.mode.interval, now_mono)
        if plan.skipped:
            self.observer.on_skip("overrun", plan.skipped, "interval slots passed while the run was going")
        self._origin, self._index = plan.origin, plan.index
        earliest = now_mono + wait
        if earliest > plan.start:
            self._origin, self._index = earliest, 0
            return self._interval_fire(earliest, jittered=False)
        return self._interval_fire(plan.start, jittered=plan.start > now_mono)

    def _next_cron(self, wait: float) -> Fire:
        assert self._last_fire is not None
        woke, self._woke_at = self._woke_at, None
        s, now = self.settings, self.clock.now()
        plan = plan_cron(s.mode.cron, self._last_fire, s.tz, now, wait, woke, MAX_COUNTED_SKIPS)
        for reason, count, detail in (
            ("missed", plan.stepped, "the wall clock stepped past these cron fires (one ran)"),
            ("overrun", plan.overrun, "cron fires passed while the run was going"),
            ("backoff", plan.backoff, "cron fires fell inside the wait after a failure"),
        ):
            if count:
                self.observer.on_skip(reason, count, detail)
        self._last_fire = plan.fire
        return Fire(at_wall=plan.fire, slot=plan.fire)
