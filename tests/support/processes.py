"""Shared machinery for the process-level tests: spawn the CLI and read its log lines.

No sleeps as synchronisation: a reader thread collects every output line and
``wait_for`` blocks on a condition until a matching line arrives (or the
stream ends, or the deadline passes); ``poll`` retries a probe with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

BIN_DIR = Path(sys.executable).parent
CLI = str(BIN_DIR / "proxbox-scheduler")
PYTHON = sys.executable


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_env(**variables: str) -> dict[str, str]:
    """An almost empty environment (PATH only, no state file: tests run side by side) plus the variables."""
    env = {"PATH": os.environ.get("PATH", str(BIN_DIR)), "PROXBOX_SCHEDULER_STATE_PATH": "memory"}
    env.update(variables)
    return env


def parse_json(line: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class LineReader:
    """Reads a text stream line by line in a daemon thread; waiters block on a condition."""

    def __init__(self, stream: IO[str], name: str = "output") -> None:
        self.name = name
        self.lines: list[str] = []
        self.eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name=name)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Index of the next line: pass as ``since`` to wait only for lines after now."""
        with self._cond:
            return len(self.lines)

    def wait_line(self, match: Callable[[str], T | None], timeout: float, since: int = 0) -> T:
        """The first non-None ``match(line)`` over lines from ``since`` on; AssertionError on timeout/EOF."""
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self.lines):
                    found = match(self.lines[index])
                    index += 1
                    if found is not None and found is not False:
                        return found
                if self.eof:
                    raise AssertionError(f"{self.name} ended without the expected line:\n{self._tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no expected line on {self.name} in {timeout} s:\n{self._tail()}")
                self._cond.wait(left)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, since: int = 0
    ) -> dict[str, Any]:
        """The first JSON log line (parsed) for which ``predicate`` is true."""

        def match(line: str) -> dict[str, Any] | None:
            doc = parse_json(line)
            return doc if doc is not None and predicate(doc) else None

        return self.wait_line(match, timeout, since)

    def wait_eof(self, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.eof, timeout):
                raise AssertionError(f"{self.name} still open after {timeout} s")

    def json_lines(self) -> list[dict[str, Any]]:
        with self._cond:
            docs = [parse_json(line) for line in self.lines]
        return [doc for doc in docs if doc is not None]

    def _tail(self, count: int = 25) -> str:
        return "\n".join(self.lines[-count:])


def log_docs(stdout: str) -> list[dict[str, Any]]:
    """The JSON log lines of a finished process's stdout."""
    return [doc for doc in map(parse_json, stdout.splitlines()) if doc is not None]


def finished_runs(stdout: str) -> list[dict[str, Any]]:
    """The "run finished" log lines, oldest first."""
    return [doc for doc in log_docs(stdout) if doc.get("event") == "run finished"]


def event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """Predicate: a log line whose event is ``name`` (prefix match) and whose fields match."""

    def pred(doc: dict[str, Any]) -> bool:
        return str(doc.get("event", "")).startswith(name) and all(doc.get(k) == v for k, v in fields.items())

    return pred


@dataclass
class Proc:
    """A child process with both output streams read in threads."""

    popen: subprocess.Popen[str]
    out: LineReader
    err: LineReader
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, since: int = 0
    ) -> dict[str, Any]:
        return self.out.wait_for(predicate, timeout, since)

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Exit code; the reader threads are drained so ``out``/``err`` are complete."""
        code = self.popen.wait(timeout=timeout)
        self.out.wait_eof(5)
        self.err.wait_eof(5)
        return code

    def all_output(self) -> str:
        return self.out.text + "\n" + self.err.text

    def stop(self) -> None:
        """Terminate (then kill) this process only, by its own handle."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def spawn(args: list[str], env: Mapping[str, str]) -> Proc:
    popen = subprocess.Popen(
        args,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    return Proc(popen, LineReader(popen.stdout, "stdout"), LineReader(popen.stderr, "stderr"))  # type: ignore[arg-type]


@contextlib.contextmanager
def running(args: list[str], env: Mapping[str, str]) -> Iterator[Proc]:
    """``spawn`` that always stops the child on the way out."""
    proc = spawn(args, env)
    try:
        yield proc
    finally:
        proc.stop()


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """The console script to completion, output captured."""
    return subprocess.run(
        [CLI, *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------- HTTP


def poll(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (OSError, ValueError) as exc:  # not listening yet, half-written body
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)
