"""Processes the harness starts: detached, logged, recorded by pid, stopped only by that pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import HOST, Layout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pid_file(lay: Layout, name: str) -> Path:
    return lay.run / f"{name}.pid"


def read_pid(lay: Layout, name: str) -> int | None:
    try:
        return int(pid_file(lay, name).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def alive(lay: Layout, name: str) -> int | None:
    """The pid of our ``name`` when it still runs the command we started (no pid reuse).

    The command line may be empty for a moment while a server rewrites its process title.
    """
    pid = read_pid(lay, name)
    if pid is None or not _running(pid):
        return None
    marker = pid_file(lay, name).read_text().split(maxsplit=1)[1:]
    line = _cmdline(pid)
    return pid if not line or not marker or marker[0].strip() in line else None


def spawn(lay: Layout, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, marker: str) -> int:
    """Start ``argv`` in its own session (so its whole group can be stopped), log to logs/<name>.log."""
    lay.run.mkdir(parents=True, exist_ok=True)
    lay.logs.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with lay.log(name).open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file(lay, name).write_text(f"{proc.pid} {marker}\n")
    return proc.pid


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not _running(pid)


def stop(lay: Layout, name: str, grace: float = 15.0) -> bool:
    """SIGTERM our process group, SIGKILL after ``grace`` s; True when something was stopped."""
    pid = alive(lay, name)
    pid_file(lay, name).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not wait_until(lambda: _gone(pid), grace):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: _gone(pid), 5.0)
    return True


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def http_status(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> int:
    """The HTTP status of a GET, 0 when nothing answered."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def wait_ready(lay: Layout, name: str, ready: Callable[[], bool], timeout: float) -> None:
    """Wait for ``ready``; fail naming ``name`` (with its log) when it exits or stays unready."""

    def done() -> bool:
        if alive(lay, name) is None:
            raise StackError(name, "exited during start-up", lay.log(name))
        return ready()

    if not wait_until(done, timeout, interval=0.25):
        raise StackError(name, f"not ready after {timeout:g} s", lay.log(name))


def run_logged(argv: Sequence[str], log: Path, service: str, **kwargs: object) -> None:
    """Run a set-up step to completion; a failure names ``service`` and shows the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise StackError(service, f"{Path(argv[0]).name} exited {done.returncode}", log)
