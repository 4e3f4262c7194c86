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
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from proxbox_scheduler import __version__
from proxbox_scheduler.config import Config, ConfigError, JobConfig, name_of
from proxbox_scheduler.core.clock import Clock, ClockWatch
from proxbox_scheduler.core.gate import TargetLock
from proxbox_scheduler.core.loop import CANCEL_WAIT_SECONDS, Scheduler
from proxbox_scheduler.core.observer import FanOut, Observer
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.ops.address import base_url
from proxbox_scheduler.signals import STOP_SIGNALS
from proxbox_scheduler.state import MemoryStore, StateLocked, StateStore, StateUnavailable, store_from_setting
from proxbox_scheduler.telemetry.log_observer import LogObserver
from proxbox_scheduler.telemetry.metrics import Metrics
from proxbox_scheduler.telemetry.status import JOB_HISTORY, LoopProbe, StatusStore
from proxbox_scheduler.triggers import make_trigger
from proxbox_scheduler.triggers.guard import guarded, netbox_source

if TYPE_CHECKING:
    from proxbox_scheduler.ops.server import OpsServer
    from proxbox_scheduler.triggers.coordinated import Replicas

log = logging.getLogger("proxbox_scheduler")


class Service:
    """One scheduler process: ``serve`` runs every job's loop, ``once`` a single run of one job."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        observers: list[Observer] | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.watch = ClockWatch(self.clock)
        """One wall-clock watcher for every job's cron wait (idle cost does not grow with jobs)."""
        self.store = store or store_from_setting(config.state_path)
        self.observers = observers or []
        netbox = netbox_source(config)
        self.triggers = {
            job.name: guarded(make_trigger(job, self.clock, config.names(job.name)), job, config, netbox)
            for job in config.jobs
        }
        first = config.jobs[0]
        self.metrics = Metrics(
            version=__version__, mode=str(first.mode), invoke=first.invoke, jobs=[j.name for j in config.jobs]
        )
        limits = {
            job.name: (
                job.run_timeout + config.shutdown_grace + CANCEL_WAIT_SECONDS,
                config.names(job.name)("run_timeout"),
            )
            for job in config.jobs
        }
        self.status = StatusStore(
            {"version": __version__},
            hard_limit=max(seconds for seconds, _ in limits.values()),
            limits=limits,
            monotonic=self.clock.monotonic,
            wall=self.clock.now,
            jobs=[
                {
                    "name": j.name,
                    "mode": str(j.mode),
                    "zone": j.tz.key,
                    "invoke": j.invoke,
                    "target": j.target,
                }
                for j in config.jobs
            ],
        )
        self.replicas: Replicas | None = self._coordinate() if config.state_url else None
        """Issue 14: replicas share a store and one leads; see triggers/coordinated.py."""
        self.by_name: dict[str, Scheduler] = {}
        """Every job's loop by name, in the order of the configuration (what control acts on)."""
        self._stopping = False

    @property
    def schedulers(self) -> list[Scheduler]:
        return list(self.by_name.values())

    def _observer(self, job: JobConfig, shown_mode: str) -> Observer:
        """The job's telemetry: state first, then the log line, so whoever reads "run finished"
        finds /status updated."""
        telemetry: list[Observer] = [
            self.metrics.job(job.name),
            self.status.job(job.name),
            LogObserver(shown_mode, job.name),
        ]
        if job.ping_url:
            from proxbox_scheduler.telemetry.ping import Pinger

            telemetry.append(Pinger(job.ping_url))
        if self.replicas is not None:  # a follower's skipped fires stay out of status, logs and pings
            from proxbox_scheduler.telemetry.replicas import LeaderOnly

            coordinator = self.replicas.coordinator
            telemetry = [telemetry[0], *(LeaderOnly(each, coordinator) for each in telemetry[1:])]
        return FanOut([*telemetry, *self.observers])

    async def _scheduler(self, job: JobConfig, lock: TargetLock, shown_mode: str = "") -> Scheduler:
        """The job's loop, started from what the store remembers of it; ``shown_mode`` is the mode
        its log lines name (`once` for a lone run)."""
        remembered = await self.store.load(job.name, recent=JOB_HISTORY)
        self.metrics.job(job.name).restore(remembered)
        self.status.job(job.name).restore(remembered)
        return Scheduler(
            self.config.loop_settings(job.name),
            self.triggers[job.name],
            clock=self.clock,
            observer=self._observer(job, shown_mode or str(job.mode)),
            store=self.store,
            memory=remembered,
            lock=lock,
            watch=self.watch,
        )

    async def _open_store(self, *, lenient: bool) -> None:
        """Open the state store; ``lenient`` (`once`): a store held by a running scheduler is replaced
        by memory with a warning. Any other failure is bad configuration (exit 2)."""
        try:
            opened = await self.store.open()
        except StateLocked as exc:
            if not lenient:
                raise ConfigError(name_of("state_path"), self.config.state_path, str(exc)) from None
            log.warning("%s: this run is not recorded", exc)
            self.store = MemoryStore()
            opened = await self.store.open()
        except StateUnavailable as exc:
            raise ConfigError(name_of("state_path"), self.config.state_path, str(exc)) from None
        for warning in opened.warnings:
            log.warning(warning)
        for run in opened.interrupted:
            log.warning(
                "a run was interrupted by the end of the previous process",
                extra={"job": run.job, "run_id": run.run_id, "started": run.started.isoformat()},
            )

    def _coordinate(self) -> Replicas:
        """The coordinator of this replica group (one lease for every job), wired into /status and /readyz."""
        from proxbox_scheduler.triggers.coordinated import replicas_for

        replicas = replicas_for(self.config, self.clock, self.metrics.registry)
        self.status.sections["replica"] = replicas.telemetry.snapshot
        self.status.gates.append(replicas.coordinator.ready)
        return replicas

    async def _run_coordinated(self, replicas: Replicas) -> None:
        """Every job's loop, each fire claimed first, with the lease kept beside them; the lease
        outlives the last run, then is given up. `once` stays a plain, unclaimed run."""
        for scheduler in self.schedulers:
            scheduler.trigger = replicas.wrap(scheduler.trigger, scheduler.settings.mode)
        stop = asyncio.Event()
        keeper = asyncio.create_task(replicas.coordinator.run(stop))
        try:
            await asyncio.gather(*(scheduler.run_forever() for scheduler in self.schedulers))
        finally:
            stop.set()
            await keeper

    def _announce(self, command: str) -> None:
        log.info(
            "proxbox-scheduler starting",
            extra={
                "version": __version__,
                "command": command,
                "target": self.config.target,
                "netbox_awareness": "on" if self.config.netbox else "off",
                "config": self.config.public(),
            },
        )
        for warning in self.config.warnings:
            log.warning(warning)

    def request_stop(self) -> None:
        """As a signal does: first call lets runs finish within the grace, the second cancels them."""
        self._stopping = True
        for scheduler in self.schedulers:
            scheduler.request_stop()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping:
            log.warning("second %s: cancelling the runs in flight now", name)
        else:
            log.info("%s received: stopping", name, extra={"signal": name})
        self.request_stop()

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
        control = Control(token, loop, self.by_name) if token else None
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
    async def _lifecycle(
        self, jobs: Sequence[JobConfig], *, serve_http: bool, shown_mode: str = ""
    ) -> AsyncIterator[None]:
        """Signal handlers, store, the jobs' loops (their telemetry restored before anyone can ask),
        the /livez probe and (for `run`) the operations server around the body.

        The handlers come first: a stop signal caught before this point (by the entry point's
        early handler) stops at once, and one while the store opens is not lost.
        """
        loop = asyncio.get_running_loop()
        caught = getattr(signal.getsignal(STOP_SIGNALS[0]), "pending", [])  # one early handler for all
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        if caught:
            self._on_signal(caught[0])
        ops = None
        try:
            await self._open_store(lenient=not serve_http)
            locks: dict[str, TargetLock] = {}
            for job in jobs:  # telemetry restored before anyone can ask the ops server
                lock = locks.get(job.lock) or locks.setdefault(job.lock, TargetLock(job.lock_slots))
                self.by_name[job.name] = await self._scheduler(job, lock, shown_mode)
            ops = self._start_ops_server(loop) if serve_http else None
            self.status.loop_probe = self._loop_probe(loop)
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            for trigger in self.triggers.values():
                await trigger.aclose()
            if ops:
                ops.close()
            await self.store.close()

    async def serve(self) -> None:
        """Run every job's schedule until SIGTERM/SIGINT; jobs on one target take turns."""
        self._announce("run")
        async with self._lifecycle(self.config.jobs, serve_http=True):
            if self._stopping:  # a signal came while the store was loading
                self.request_stop()
            if self.replicas is not None:
                await self._run_coordinated(self.replicas)
            else:
                await asyncio.gather(*(scheduler.run_forever() for scheduler in self.schedulers))
        log.info("stopped")

    async def once(self, name: str | None = None) -> Outcome:
        """One run of the job (the first by default) now, whatever its mode says."""
        self._announce("once")
        job = self.config.job(name)
        async with self._lifecycle([job], serve_http=False, shown_mode="once"):
            scheduler = self.schedulers[0]
            outcome = await scheduler.run_once()
            scheduler.observer.on_stop()
        return outcome
