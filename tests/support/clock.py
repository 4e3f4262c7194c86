"""Shared test machinery: a virtual-time event loop and a clock whose wall time can jump."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from proxbox_scheduler.core.clock import Clock

T = TypeVar("T")


class _VirtualSelector:
    """Polls the real selector without blocking and turns every would-be wait into a time jump."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("virtual-time loop would block forever: nothing is scheduled")
        self._loop.now += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock only moves when every task is waiting on a timer."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_VirtualSelector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in virtual time (hours pass in milliseconds)."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


class FakeClock(Clock):
    """Monotonic time is the virtual loop's; the wall clock follows it from ``start`` and can jump."""

    def __init__(self, start: datetime = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)) -> None:
        self.start = start
        self.offset = 0.0

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic() + self.offset)

    def jump(self, seconds: float) -> None:
        """Step the wall clock (NTP step, container resumed) without moving monotonic time."""
        self.offset += seconds
