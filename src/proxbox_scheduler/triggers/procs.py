"""Process cleanup beyond the process group: child subreaper, descendants, reaping.

A command that daemonizes (``setsid sleep 777 &``) leaves its process group
and, without help, is reparented to PID 1. As a child subreaper (Linux
``PR_SET_CHILD_SUBREAPER``) the scheduler gets those orphans instead, so it
can find what a run left behind (its children that did not exist before the
run, and their descendants, read from /proc), stop it, and reap it, also
when it is PID 1 in a container without an init.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")
LEFTOVER_TERM_SECONDS = 2.0
"""How long what a run left behind may take to exit after SIGTERM before SIGKILL."""
POLL_SECONDS = 0.05

_subreaper = False


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (Linux); False where unsupported."""
    global _subreaper
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def is_subreaper() -> bool:
    """True once ``become_subreaper`` succeeded: every child of ours is then ours to reap."""
    return _subreaper


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _table() -> dict[int, tuple[int, str]]:
    """Every visible process: pid -> (parent pid, state)."""
    table: dict[int, tuple[int, str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROC):
            if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
                table[int(entry.name)] = info
    return table


Table = dict[int, tuple[int, str]]
"""pid -> (parent pid, state), one look at /proc."""


def children(table: Table | None = None) -> set[int]:
    """The direct children of this process."""
    me = os.getpid()
    return {child for child, (ppid, _) in (_table() if table is None else table).items() if ppid == me}


def descendants(roots: Iterable[int], table: Table | None = None) -> set[int]:
    """``roots`` that still exist and everything below them."""
    table = _table() if table is None else table
    below: dict[int, list[int]] = {}
    for child, (ppid, _) in table.items():
        below.setdefault(ppid, []).append(child)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(below.get(pid, ()))
    return found


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our exited children (no zombies)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def reap_zombies() -> None:
    """As subreaper, reap every exited child reparented to us since the last look."""
    if not _subreaper:
        return
    me = os.getpid()
    reap(pid for pid, (ppid, state) in _table().items() if ppid == me and state == "Z")


def _living(pids: Iterable[int]) -> set[int]:
    return {pid for pid in pids if (info := _stat(pid)) is not None and info[1] != "Z"}


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def stop_leftovers(before: set[int], exclude: int) -> set[int]:
    """Stop what a run left behind: children of ours not in ``before`` (orphans reparented
    to us as subreaper) other than ``exclude``, and all their descendants.

    SIGTERM, then SIGKILL after LEFTOVER_TERM_SECONDS; returns the pids it signalled.
    """
    table = _table()  # one look at /proc for both questions
    roots = children(table=table) - before - {exclude}
    targets = _living(descendants(roots, table))
    if not targets:
        reap(roots)
        return set()
    _signal(targets, signal.SIGTERM)
    if not await _vanished(targets, LEFTOVER_TERM_SECONDS):
        _signal(_living(descendants(targets)), signal.SIGKILL)
        await _vanished(targets, LEFTOVER_TERM_SECONDS)
    reap(children() - before - {exclude})
    return targets


async def _vanished(pids: set[int], timeout: float) -> bool:
    """Wait until none of ``pids`` is running (zombies count as gone), reaping ours meanwhile."""

    def gone() -> bool:
        reap(pids)
        return not _living(pids)

    return await poll_until(gone, timeout)


async def poll_until(done: Callable[[], bool], timeout: float) -> bool:
    """Check ``done`` every POLL_SECONDS until it holds (True) or ``timeout`` passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
