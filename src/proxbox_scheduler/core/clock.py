"""The one place time comes from, so tests can run the loop in virtual time.

``monotonic`` measures durations and intervals; ``now`` is the wall clock
that cron is evaluated against; ``sleep`` waits on the event loop's clock and
returns early when ``wake`` is set (a shutdown signal). Tests substitute a
clock whose event loop runs in virtual time and whose wall clock can jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
