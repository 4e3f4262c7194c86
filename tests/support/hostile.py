"""Shared pieces of the hardening tests (issue 10): SSE frames, the CLI's environment, /proc looks."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from tests.support.processes import base_env

KEY = "hardening-key-7Qx2vB9mZ4"
STREAM = "/full-update/stream"


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


DONE = frame(
    "complete", {"ok": True, "message": "Full update sync completed.", "result": {"devices_count": 3}}
)


def http_env(url: str, **variables: str) -> dict[str, str]:
    """`run`/`once` against ``url`` without the busy check and without the status server."""
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_API_URL=url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_SKIP_IF_ACTIVE="false",
        PROXBOX_SCHEDULER_HTTP_PORT="0",
    )
    env.update(variables)
    return env


def pids_with_arg(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (a unique sleep duration, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    """Clean up what a failing test left behind (our own markers only)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (Threads, ...)."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
