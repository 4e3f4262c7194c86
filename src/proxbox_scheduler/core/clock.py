"""The one place time comes from, so tests can run the loop in virtual time.

``monotonic`` measures durations and intervals; ``now`` is the wall clock
that cron is evaluated against; ``sleep`` waits on the event loop's clock and
returns early when ``wake`` is set (a shutdown signal). Tests substitute a
clock whose event loop runs in virtual time and whose wall clock can jump.
``ClockWatch`` is the one timer per process that notices the wall clock jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime


class Clock:
    """Real time: the event loop's monotonic clock and the system wall clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float, wake: asyncio.Event) -> bool:
        """Sleep ``seconds``; return True if ``wake`` was set before or during the sleep."""
        if wake.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(0.0, seconds))
        return wake.is_set()


CLOCK_WATCH_SECONDS = 5.0
"""How often the one watcher of a process compares the wall clock with the monotonic clock:
a forward step of the wall clock is noticed within this many seconds."""
STEP_TOLERANCE_SECONDS = 0.05
"""The least change of (wall - monotonic) taken as a step; reading the two clocks one after
the other differs by microseconds, and NTP slews both clocks alike."""


class ClockWatch:
    """One timer for the whole process that wakes the waiting cron jobs when the wall clock steps.

    A cron job sleeps on the monotonic clock to its wall-clock fire; only a step of the wall
    clock against the monotonic one (NTP step, settimeofday, a resumed VM) makes that sleep
    wrong. Rather than each job re-reading the wall clock on its own timer (idle wakeups and CPU
    growing with the number of jobs), this task compares the two clocks every ``period`` and sets
    the wake event of every waiting job when they moved apart. It runs only while a job waits.
    """

    def __init__(self, clock: Clock, period: float | None = None) -> None:
        self.clock = clock
        self.period = CLOCK_WATCH_SECONDS if period is None else period
        self._waiters: dict[asyncio.Event, float] = {}
        """Each waiter's wake event and the offset (wall - monotonic) it planned its sleep on."""
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self, wake: asyncio.Event) -> Iterator[None]:
        """While inside, a wall-clock step sets ``wake`` (the waiter then re-reads its fire).

        The offset is taken here, before the waiter reads the wall clock to plan: a step in
        between is seen as one (a needless re-check at worst), never missed.
        """
        self._waiters[wake] = self._offset()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())
        try:
            yield
        finally:
            self._waiters.pop(wake, None)
            if not self._waiters and self._task is not None:
                self._task.cancel()
                self._task = None

    def _offset(self) -> float:
        return self.clock.now().timestamp() - self.clock.monotonic()

    async def _watch(self) -> None:
        never = asyncio.Event()
        while True:
            await self.clock.sleep(self.period, never)
            offset = self._offset()
            for wake, planned in tuple(self._waiters.items()):
                if abs(offset - planned) >= STEP_TOLERANCE_SECONDS:
                    self._waiters[wake] = offset  # it re-plans on the clock as it reads now
                    wake.set()
