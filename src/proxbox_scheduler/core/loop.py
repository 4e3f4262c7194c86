"""The run loop: decides when a run starts, supervises it, and waits after it.

It owns no I/O of its own: time comes from the injected Clock, runs from the
injected Trigger, and everything worth reporting goes to the Observer, so the
same loop runs in production and, in virtual time, in the unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.schedule import Mode, ModeKind, cron_fires, plan_interval
from proxbox_scheduler.core.trigger import RunContext, RunLogAdapter, Trigger

log = logging.getLogger("proxbox_scheduler.loop")

CRON_POLL_SECONDS = 5.0
"""Longest single sleep while waiting for a cron fire: the wall clock is re-read
at least this often, so a clock stepped back never fires early and a clock
stepped forward fires within this many seconds. Without a step the last sleep
ends exactly at the fire. (Longer polls save idle wakeups; see bench/RESULTS.md.)"""
MAX_COUNTED_SKIPS = 100_000
MAX_DOUBLINGS = 60
"""The doubling stops growing here (long past any cap) so a months-long streak cannot overflow."""
CANCEL_WAIT_SECONDS = 20.0
"""How long a cancelled trigger may take to clean up (exec: SIGTERM, then SIGKILL after 10 s)."""


@dataclass(frozen=True)
class LoopSettings:
    """The part of one job's configuration the loop reads (built by ``Config.loop_settings``).

    ``timeout_name`` is the setting that holds ``run_timeout``, named in the reason
    of a run that exceeded it.
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


@dataclass(frozen=True)
class Fire:
    """The next start: at a monotonic instant (interval, continuous) or a wall-clock fire (cron).

    ``jittered`` fires are grid slots or cron fires, which jitter delays; immediate
    and catch-up starts are not.
    """

    at_monotonic: float | None = None
    at_wall: datetime | None = None
    jittered: bool = True


def new_run_id() -> str:
    """A UUID, as healthchecks.io expects for its rid parameter."""
    return str(uuid.uuid4())


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
    ) -> None:
        self.settings = settings
        self.trigger = trigger
        self.clock = clock or Clock()
        self.observer = observer or Observer()
        self.rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._auth_streak = 0
        self._origin = 0.0  # interval grid origin (monotonic)
        self._index = 0  # grid slot of the last scheduled run
        self._last_fire: datetime | None = None  # cron fire of the last run

    # ------------------------------------------------------------ control

    def request_stop(self) -> None:
        """First call: start nothing new and let a run finish within the grace. Second: cancel now."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------ entry points

    async def run_forever(self) -> None:
        """Fire according to the mode until stopped."""
        if self.settings.mode.kind is ModeKind.OFF:
            return
        now_mono = self.clock.monotonic()
        self._origin, self._index = now_mono, 0
        self._last_fire = self.clock.now()
        immediate = self.settings.run_on_start or self.settings.mode.kind is ModeKind.CONTINUOUS
        fire = Fire(at_monotonic=now_mono, jittered=False) if immediate else self._first_fire()
        try:
            while await self._wait_for(fire):
                _, wait = await self._run(owes_pause=True, slot=self._slot(fire))
                if self.stopping:
                    return
                fire = self._next_fire(wait)
        finally:
            self.observer.on_stop()

    async def run_once(self) -> Outcome:
        """A lone run (`once`): nothing follows it, so it owes no pause."""
        outcome, _ = await self._run(owes_pause=False)
        return outcome

    # ---- issue 14 hook (replicas): the nominal fire time that replicas claim; the lead
    # reconciles this with issue 13's per-job slot. Interval slots sit on a grid anchored
    # at the Unix epoch so that every replica names the same fire the same way.
    def _slot(self, fire: Fire) -> datetime | None:
        if fire.at_wall is not None:
            return fire.at_wall
        if self.settings.mode.kind is not ModeKind.INTERVAL or fire.at_monotonic is None:
            return None
        wall = self.clock.now() - timedelta(seconds=self.clock.monotonic() - fire.at_monotonic)
        step = self.settings.mode.interval
        return datetime.fromtimestamp(round(wall.timestamp() / step) * step, wall.tzinfo)

    # ---- end of issue 14 hook

    async def _run(self, *, owes_pause: bool, slot: datetime | None = None) -> tuple[Outcome, float]:
        """One supervised run: timeout, shutdown grace, and no exception escapes.

        Returns the outcome and the pause a scheduled run owes the next start (backoff).
        """
        run_id = new_run_id()
        ctx = RunContext(
            run_id,
            RunLogAdapter(logging.getLogger("proxbox_scheduler.run"), {"run_id": run_id}),
            lambda progress: self.observer.on_progress(run_id, progress),
            slot=slot,  # issue 14 hook
        )
        self.observer.on_run_start(run_id, self.clock.now())
        started = self.clock.monotonic()
        task = asyncio.create_task(self._guarded(ctx))
        outcome = await self._supervise(task, started)
        duration = self.clock.monotonic() - started
        wait = self._wait_after(outcome) if owes_pause else 0.0
        self.observer.on_run_end(run_id, outcome, duration, wait)
        return outcome, wait

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
        return f"run exceeded {s.timeout_name} ({s.run_timeout:g} s) and was cancelled"

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

    def _wait_after(self, outcome: Outcome) -> float:
        """Pause owed before the next start: backoff, doubled for each rejected key since the
        last success (other failures, a 429 lockout among them, neither reset nor extend that)."""
        s = self.settings
        cap = max(s.backoff, s.backoff_max)
        if outcome.status is Status.SUCCESS:
            self._auth_streak = 0
            wait = 0.0
        elif outcome.status is Status.SKIPPED:
            wait = s.backoff if s.mode.kind is ModeKind.CONTINUOUS else 0.0
        elif outcome.auth_rejected:
            self._auth_streak += 1
            wait = min(s.backoff * 2.0 ** min(self._auth_streak - 1, MAX_DOUBLINGS), cap)
        else:
            wait = s.backoff
        return max(wait, min(outcome.min_wait or 0.0, cap))

    async def _wait_for(self, fire: Fire) -> bool:
        """Sleep until the fire (plus jitter); False when a stop came first."""
        if fire.at_wall is not None:
            seconds = (fire.at_wall - self.clock.now()).total_seconds()
            self.observer.on_waiting(fire.at_wall.astimezone(self.settings.tz), max(0.0, seconds))
            while (left := (fire.at_wall - self.clock.now()).total_seconds()) > 0:
                if await self.clock.sleep(min(left, CRON_POLL_SECONDS), self._stop):
                    return False
        else:
            assert fire.at_monotonic is not None
            seconds = max(0.0, fire.at_monotonic - self.clock.monotonic())
            when = self.clock.now() + timedelta(seconds=seconds)
            self.observer.on_waiting(when.astimezone(self.settings.tz), seconds)
            if await self.clock.sleep(seconds, self._stop):
                return False
        if fire.jittered and self.settings.jitter > 0:
            delay = self.rng.uniform(0.0, self.settings.jitter)
            if await self.clock.sleep(delay, self._stop):
                return False
        return not self.stopping

    # ------------------------------------------------------------ planning

    def _first_fire(self) -> Fire:
        mode = self.settings.mode
        if mode.kind is ModeKind.INTERVAL:
            self._index = 1
            return Fire(at_monotonic=self._origin + mode.interval)
        assert self._last_fire is not None
        fire = next(cron_fires(mode.cron, self._last_fire, self.settings.tz))
        self._last_fire = fire
        return Fire(at_wall=fire)

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
            return Fire(at_monotonic=earliest, jittered=False)
        return Fire(at_monotonic=plan.start, jittered=plan.start > now_mono)

    def _next_cron(self, wait: float) -> Fire:
        assert self._last_fire is not None
        now_wall = self.clock.now()
        earliest = now_wall + timedelta(seconds=wait)
        overrun = backoff = 0
        for fire in cron_fires(self.settings.mode.cron, self._last_fire, self.settings.tz):
            if fire >= earliest and fire > now_wall:
                break
            if overrun + backoff >= MAX_COUNTED_SKIPS:
                fire = next(cron_fires(self.settings.mode.cron, earliest, self.settings.tz))
                break
            if fire <= now_wall:
                overrun += 1
            else:
                backoff += 1
        if overrun:
            self.observer.on_skip("overrun", overrun, "cron fires passed while the run was going")
        if backoff:
            self.observer.on_skip("backoff", backoff, "cron fires fell inside the wait after a failure")
        self._last_fire = fire
        return Fire(at_wall=fire)
