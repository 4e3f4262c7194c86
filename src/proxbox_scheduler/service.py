"""The process: wires configuration, trigger, telemetry and signals around the loop.

Like uvicorn's Server, this owns the lifecycle (startup line, signal
handlers, orderly shutdown) so the CLI stays a thin parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from proxbox_scheduler import __version__
from proxbox_scheduler.clock import Clock
from proxbox_scheduler.config import Config
from proxbox_scheduler.logs import LogObserver
from proxbox_scheduler.loop import LoopSettings, Observer, Observers, Scheduler
from proxbox_scheduler.outcome import Outcome
from proxbox_scheduler.triggers import make_trigger
from proxbox_scheduler.triggers.base import Trigger

log = logging.getLogger("proxbox_scheduler")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Service:
    """One scheduler process: ``serve`` for the long-running loop, ``once`` for a single run."""

    def __init__(
        self,
        config: Config,
        *,
        trigger: Trigger | None = None,
        clock: Clock | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.trigger = trigger or make_trigger(config)
        extra = observers or []
        self.scheduler = Scheduler(
            LoopSettings.from_config(config),
            self.trigger,
            clock=self.clock,
            observer=Observers([LogObserver(str(config.mode)), *extra]),
        )

    def _announce(self, command: str) -> None:
        log.info(
            "proxbox-scheduler starting",
            extra={
                "version": __version__,
                "command": command,
                "target": self.config.target,
                "config": self.config.public(),
            },
        )
        for warning in self.config.warnings:
            log.warning(warning)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.scheduler.stopping:
            log.warning("second %s: cancelling the run in flight now", name)
        else:
            log.info("%s received: stopping", name, extra={"signal": name})
        self.scheduler.request_stop()

    @contextlib.asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[None]:
        """Signal handlers in place for the body; the trigger closed after it."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            await self.trigger.aclose()

    async def serve(self) -> None:
        """Run the schedule until SIGTERM/SIGINT."""
        self._announce("run")
        async with self._lifecycle():
            await self.scheduler.run_forever()
        log.info("stopped")

    async def once(self) -> Outcome:
        """One run now, whatever the mode says."""
        self._announce("once")
        async with self._lifecycle():
            return await self.scheduler.run_once()
