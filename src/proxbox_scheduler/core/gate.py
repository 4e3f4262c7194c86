"""Per-target turns: jobs that call the same proxbox-api (or NetBox) take turns.

By default one job of ours runs on a target at a time: a second sync beside a
running one would only compete for the same NetBox (or be skipped as ``busy``).
Instead its fire waits for the running job, at most its own run timeout, then
starts. A target may allow more at once (``slots``), e.g. jobs narrowed to
different Proxmox endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib

from proxbox_scheduler.core.clock import Clock


class TargetLock:
    """``slots`` turns at a time on one target, for the jobs of one event loop."""

    def __init__(self, slots: int = 1) -> None:
        self._holders: list[str] = []
        self._lock = asyncio.Semaphore(slots)

    @property
    def holder(self) -> str:
        """The jobs holding a turn, comma-separated (for the log line of one that waits)."""
        return ", ".join(self._holders)

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
        self._holders.append(job)
        return True

    def release(self, job: str) -> None:
        self._holders.remove(job)
        self._lock.release()
