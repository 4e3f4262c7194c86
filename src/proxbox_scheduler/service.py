"""The process: wires configuration, trigger, telemetry and signals around the loop.

Like uvicorn's Server, this owns the lifecycle (startup line, signal
handlers, the operations server, orderly shutdown) so the CLI stays thin.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from proxbox_scheduler import __version__
from proxbox_scheduler.config import Config, ConfigError, name_of
from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.loop import CANCEL_WAIT_SECONDS, Scheduler
from proxbox_scheduler.core.observer import FanOut, Observer
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.trigger import Trigger
from proxbox_scheduler.ops.address import base_url
from proxbox_scheduler.telemetry.log_observer import LogObserver
from proxbox_scheduler.telemetry.metrics import Metrics
from proxbox_scheduler.telemetry.status import JOB, LoopProbe, StatusStore
from proxbox_scheduler.triggers import make_trigger

if TYPE_CHECKING:
    from proxbox_scheduler.ops.server import OpsServer

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
        self.trigger = trigger or make_trigger(config, self.clock)
        self.metrics = Metrics(version=__version__, mode=str(config.mode), invoke=config.invoke)
        self.status = StatusStore(
            {
                "version": __version__,
                "mode": str(config.mode),
                "zone": config.tz.key,
                "invoke": config.invoke,
                "target": config.target,
            },
            hard_limit=config.run_timeout + config.shutdown_grace + CANCEL_WAIT_SECONDS,
            monotonic=self.clock.monotonic,
            wall=self.clock.now,
        )
        # state first, then the log line: whoever reads "run finished" finds /status updated
        telemetry: list[Observer] = [self.metrics, self.status, LogObserver(str(config.mode))]
        if config.ping_url:
            from proxbox_scheduler.telemetry.ping import Pinger

            telemetry.append(Pinger(config.ping_url))
        self.scheduler = Scheduler(
            config.loop_settings(),
            self.trigger,
            clock=self.clock,
            observer=FanOut([*telemetry, *(observers or [])]),
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

    @staticmethod
    def _loop_probe(loop: asyncio.AbstractEventLoop) -> LoopProbe:
        """For /livez, from the server's thread: does the event loop run a callback in time?"""

        def answers(timeout: float) -> bool:
            answered = threading.Event()
            try:
                loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop is closed
                return False
            return answered.wait(timeout)

        return answers

    def _start_ops_server(self, loop: asyncio.AbstractEventLoop) -> OpsServer | None:
        if not self.config.http_port:
            return None
        from proxbox_scheduler.ops.control import Control
        from proxbox_scheduler.ops.server import OpsServer, PageSettings

        host, port = self.config.http_host, self.config.http_port
        token = self.config.control_token
        control = Control(token, loop, {JOB: self.scheduler}) if token else None
        page = PageSettings(stale_after=self.config.stale_after)
        try:
            ops = OpsServer(host, port, self.status, self.metrics, control=control, page=page)
        except OSError as exc:
            # a port in use or not allowed is the port's fault; anything else (no such address) the host's
            blame = (
                (name_of("http_port"), str(port))
                if exc.errno in (errno.EADDRINUSE, errno.EACCES)
                else (name_of("http_host"), host)
            )
            why = exc.strerror or str(exc)
            raise ConfigError(*blame, f"cannot listen on {host}:{port} ({why})") from None
        ops.start()
        log.info(
            "status server listening",
            extra={"url": base_url(host, ops.port) + "/", "control": "on" if control else "off"},
        )
        return ops

    @contextlib.asynccontextmanager
    async def _lifecycle(self, *, serve_http: bool) -> AsyncIterator[None]:
        """Signal handlers, the /livez loop probe and (for `run`) the operations server around the body."""
        loop = asyncio.get_running_loop()
        ops = self._start_ops_server(loop) if serve_http else None
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.status.loop_probe = self._loop_probe(loop)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            await self.trigger.aclose()
            if ops:
                ops.close()

    async def serve(self) -> None:
        """Run the schedule until SIGTERM/SIGINT."""
        self._announce("run")
        async with self._lifecycle(serve_http=True):
            await self.scheduler.run_forever()
        log.info("stopped")

    async def once(self) -> Outcome:
        """One run now, whatever the mode says."""
        self._announce("once")
        async with self._lifecycle(serve_http=False):
            outcome = await self.scheduler.run_once()
        self.scheduler.observer.on_stop()
        return outcome
