"""Per-target turns: jobs that call the same proxbox-api (or NetBox) never run at the same time.

proxbox-api refuses or serialises concurrent syncs, so a second job of ours
starting on a busy target would only be skipped as ``busy``. Instead its fire
waits for the running job, at most its own run timeout, then starts.
"""

from __future__ import annotations

import asyncio
import contextlib

from proxbox_scheduler.core.clock import Clock


class TargetLock:
    """One turn at a time on one target, for the jobs of one event loop; ``holder`` names the job."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.holder = ""
        self._lock = asyncio.Lock()

    def busy(self) -> bool:
        return self._lock.locked()

    async def acquire(self, job: str, clock: Clock, seconds: float, stop: asyncio.Event) -> bool:
        """Take the turn; False when ``seconds`` passed or ``stop`` was set first."""
        taker = asyncio.ensure_future(self._lock.acquire())
        timer = asyncio.ensure_future(clock.sleep(seconds, stop))
        try:
            await asyncio.wait({taker, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not taker.done():
            taker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await taker
        if taker.cancelled():
            return False
        self.holder = job
        return True

    def release(self) -> None:
        self.holder = ""
        self._lock.release()
