"""The ``exec`` trigger: run a command (by default NetBox's ``manage.py proxbox_sync``).

The command runs without a shell, in its own process group, so that a
timeout or shutdown can stop everything it started (``sh -c`` wrappers,
Django workers) with one signal and leave neither zombies nor orphans; what
escaped the group (a daemon in its own session) is found and stopped by
``procs`` when the scheduler is a child subreaper. The child gets the
scheduler's environment without ``PROXBOX_API_KEY`` (see ``child_env``), and
its output is scrubbed of every configured secret before it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from proxbox_scheduler.config import VARIABLES
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.trigger import RunContext
from proxbox_scheduler.jobs import JobConfig
from proxbox_scheduler.redact import Scrubber
from proxbox_scheduler.triggers import procs

LINE_LIMIT = 4000
"""Bytes of one output line kept for the log; the rest is counted, not stored."""
TAIL_LINES = 5
"""Lines of stderr quoted in a failure's reason."""
TAIL_LINE_CHARS = 500
"""Cap on each quoted stderr line, so a reason stays one readable log field."""
"""How often the process group is checked while it is being stopped."""
REAP_WAIT_SECONDS = 5.0
"""Bound on waiting for the group to vanish after SIGKILL (a process stuck in the kernel)."""
DRAIN_WAIT_SECONDS = 2.0
"""Bound on reading what is left in the pipes once the group is gone."""

Before = set[int] | None
"""This process's children before a spawn; None when not a subreaper (nothing to look for)."""


class ExecTrigger:
    """Runs ``config.exec_cmd``; exit 0 is success, anything else a failure with its cause."""

    def __init__(self, config: JobConfig, *, kill_after: float = 10.0) -> None:
        self._argv = config.exec_cmd
        self._command = config.target
        self._cwd = config.exec_cwd
        self._kill_after = kill_after
        self._scrub = Scrubber(config.secrets())
        self._env = child_env(os.environ)

    async def aclose(self) -> None:
        """Nothing is held between runs: each run owns and cleans up its process."""

    async def run(self, ctx: RunContext) -> Outcome:
        loop = asyncio.get_running_loop()
        before = procs.children() if procs.is_subreaper() else None
        try:
            transport, proto = await loop.subprocess_exec(
                lambda: _Protocol(loop, ctx.log, self._scrub(self._command), self._scrub),
                *self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome.failure(self._spawn_failure(exc))
        try:
            return await self._supervise(transport, proto, ctx, before)
        except asyncio.CancelledError:
            ctx.log.warning("run cancelled; stopping the command")
            await _complete_despite_cancel(self._stop_and_drain(transport, proto, ctx, before))
            raise
        finally:
            transport.close()

    def _spawn_failure(self, exc: OSError) -> str:
        """Name what was missing: the command can vanish after startup validation."""
        program = self._argv[0]
        if isinstance(exc, FileNotFoundError):
            if self._cwd is not None and exc.filename == str(self._cwd):
                return f"cannot start {program!r}: working directory {str(self._cwd)!r} not found"
            return f"cannot start {program!r}: command not found"
        if isinstance(exc, PermissionError):
            return f"cannot start {program!r}: permission denied"
        return f"cannot start {program!r}: {exc.strerror or exc}"

    async def _supervise(
        self,
        transport: asyncio.SubprocessTransport,
        proto: _Protocol,
        ctx: RunContext,
        before: set[int] | None,
    ) -> Outcome:
        pid = transport.get_pid()
        # The exit alone, not Process.wait(): that also waits for the pipes to
        # close, which a background process left behind can hold open forever.
        await asyncio.shield(proto.exited)
        _reap_orphans(pid)
        if _group_alive(pid):
            ctx.log.warning("the command exited but left processes behind")
            await self._stop_group(transport, ctx)
        await self._stop_leftovers(pid, ctx, before)
        await proto.drain(ctx.log)
        code = transport.get_returncode()
        assert code is not None
        return _verdict(code, proto.stdout, proto.stderr)

    async def _stop_and_drain(
        self,
        transport: asyncio.SubprocessTransport,
        proto: _Protocol,
        ctx: RunContext,
        before: set[int] | None,
    ) -> None:
        await self._stop_group(transport, ctx)
        await self._stop_leftovers(transport.get_pid(), ctx, before)
        await proto.drain(ctx.log)

    async def _stop_leftovers(self, pid: int, ctx: RunContext, before: Before) -> None:
        """Stop what escaped the group (daemons reparented to us as subreaper), then reap."""
        if before is None:
            return
        stopped = await procs.stop_leftovers(before, exclude=pid)
        if stopped:
            ctx.log.warning(
                "stopped processes the command left behind outside its group", extra={"pids": sorted(stopped)}
            )
        procs.reap_zombies()

    async def _stop_group(self, transport: asyncio.SubprocessTransport, ctx: RunContext) -> None:
        """SIGTERM the whole group, SIGKILL it after ``kill_after`` if anything survived."""
        pgid = transport.get_pid()
        _signal_group(pgid, signal.SIGTERM)
        if await _group_gone(transport, self._kill_after):
            return
        ctx.log.log(
            logging.WARNING,
            f"processes alive {self._kill_after:g} s after SIGTERM; sending SIGKILL",
            extra={"pgid": pgid},
        )
        _signal_group(pgid, signal.SIGKILL)
        if not await _group_gone(transport, REAP_WAIT_SECONDS):
            ctx.log.error("processes survive SIGKILL; leaving them", extra={"pgid": pgid})


# ---------------------------------------------------------------- output


class _Output:
    """One pipe of the child, cut into lines that are logged as they come.

    Lines keep at most LINE_LIMIT bytes; the excess is counted, not stored,
    so a line without a newline for megabytes cannot exhaust memory.
    """

    def __init__(
        self,
        name: str,
        logger: logging.LoggerAdapter,  # type: ignore[type-arg]
        scrub: Callable[[str], str],
    ) -> None:
        self.name = name
        self._scrub = scrub
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._logger = logger
        self._head = bytearray()
        self._cut = 0

    def feed(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._keep(piece)
            self._emit()
        self._keep(rest)

    def close(self) -> None:
        """Emit the last line when the stream ended without a newline."""
        if self._head or self._cut:
            self._emit()

    def _keep(self, piece: bytes) -> None:
        room = LINE_LIMIT - len(self._head)
        self._head += piece[:room]
        self._cut += max(0, len(piece) - room)

    def _emit(self) -> None:
        line = self._scrub(self._head.decode(errors="replace").removesuffix("\r"))
        if self._cut:
            line += f" [cut: {len(self._head) + self._cut} bytes in all]"
        self._head.clear()
        self._cut = 0
        self.lines += 1
        if self.name == "stderr":
            self.tail.append(line[:TAIL_LINE_CHARS])
        self._logger.info(line, extra={"stream": self.name})


class _Protocol(asyncio.SubprocessProtocol):
    """Consumes both pipes as data arrives, so a flood on either never stalls the child."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        logger: logging.LoggerAdapter,  # type: ignore[type-arg]
        command: str,
        scrub: Callable[[str], str],
    ) -> None:
        self._logger = logger
        self._command = command
        self.stdout = _Output("stdout", logger, scrub)
        self.stderr = _Output("stderr", logger, scrub)
        self.exited: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._open = {1: self.stdout, 2: self.stderr}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Log the start here: it is called before any output is delivered."""
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._logger.info(f"started {self._command}", extra={"pid": transport.get_pid()})

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self._open[fd].feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.pop(fd).close()
        if not self._open and not self._closed.done():
            self._closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    async def drain(self, logger: logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        """Wait for the pipes to close; give up if a process outside the group holds one."""
        done, _ = await asyncio.wait({self._closed}, timeout=DRAIN_WAIT_SECONDS)
        if not done:
            logger.warning("an escaped process holds the output open; not reading on")


SECRET_VARIABLES = frozenset(v.name for v in VARIABLES if v.secret)
"""Left out of the child's environment: a command that needs the key reads PROXBOX_API_KEY_FILE."""


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: the scheduler's, without the API key itself."""
    return {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}


def _verdict(code: int, out: _Output, err: _Output) -> Outcome:
    details = {"exit_code": code, "stdout_lines": out.lines, "stderr_lines": err.lines}
    if code == 0:
        return Outcome.success("exited with code 0", details=details)
    reason = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    if err.tail:
        reason += "; last stderr: " + " | ".join(err.tail)
    return Outcome.failure(reason, details=details)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ---------------------------------------------------------------- the process group


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while any process (zombies included) is in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans(pgid: int) -> None:
    """Reap group members reparented to us (we are PID 1 in a container), so none stays a zombie.

    Only called once the direct child is reaped: asyncio's watcher waits for that one.
    """
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


async def _group_gone(transport: asyncio.SubprocessTransport, timeout: float) -> bool:
    """Wait until the direct child is reaped and its group is empty, or ``timeout`` passes."""
    pgid = transport.get_pid()

    def gone() -> bool:
        if transport.get_returncode() is None:
            return False
        _reap_orphans(pgid)
        return not _group_alive(pgid)

    return await procs.poll_until(gone, timeout)


async def _complete_despite_cancel(cleanup: Awaitable[None]) -> None:
    """Finish the cleanup even if the run is cancelled again meanwhile: orphans outlive us."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()
