"""What an operator can do to a job's loop from outside: wake it for a run, pause and resume it.

Kept apart from the loop so the loop stays about timing; the pause switch knows nothing
of fires, only that a pause changed and who must hear of it (the observer, the store).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

log = logging.getLogger("proxbox_scheduler.loop")

HOLD_SECONDS = 3600.0
"""One sleep of a paused continuous job, which has no fires to skip: it waits to be woken."""

PauseHook = Callable[[bool], Awaitable[None]]
"""Persists a pause or resume (``StateStore.set_paused`` for the job when a store is wired)."""


class Wake(Enum):
    """How a wait ended: the fire came, a run was requested, or a stop."""

    FIRE = "fire"
    RUN = "run"
    STOP = "stop"


class PauseSwitch:
    """Paused or not; each change goes to the observer and, in the background, to the hook."""

    def __init__(self, tell: Callable[[bool], None], hook: PauseHook | None = None) -> None:
        """``tell`` passes each change on (the loop's current observer); ``hook`` persists it."""
        self.tell = tell
        self.hook = hook
        self.on = False
        self._tasks: set[asyncio.Task[None]] = set()

    def set(self, paused: bool, *, persist: bool = True) -> None:
        """Change the state (a no-op when unchanged); must be called inside the running loop.
        ``persist=False`` for a state that came from the store (writing it back would be a no-op)."""
        if paused == self.on:
            return
        self.on = paused
        self.tell(paused)
        if persist and self.hook is not None:
            task = asyncio.get_running_loop().create_task(self._persist(self.hook, paused))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _persist(hook: PauseHook, paused: bool) -> None:
        """A failed write is a warning: the pause holds in this process either way."""
        try:
            await hook(paused)
        except Exception:
            log.warning("could not persist the pause state", exc_info=log.isEnabledFor(logging.DEBUG))
