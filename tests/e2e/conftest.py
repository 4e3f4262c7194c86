"""End-to-end fixtures: the real stack (tests/e2e/stack) and the scheduler as a process.

The session fixture ``stack`` runs ``python -m tests.e2e.stack up`` (PostgreSQL,
Redis, NetBox 4.7 + netbox-proxbox, the RQ worker, proxbox-api on a mock
Proxmox), reads the ``KEY=VALUE`` lines it prints and runs ``down`` at the end
when it started the stack itself. When the stack cannot start the tests are
skipped, except under CI (``CI`` set), where that is a failure showing which
service failed and the tail of its log. Nothing here imports proxbox_scheduler:
the scheduler is driven as a subprocess and observed through its JSON log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "tests.e2e.stack"]
UP_TIMEOUT = 2400.0  # a cold cache: two venvs (~1 min) and NetBox's 446 migrations (~7 min), with margin
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
NOT_UP = 3


# ---------------------------------------------------------------- the stack


def _clean_env() -> dict[str, str]:
    """This process's environment without PROXBOX_* settings, so nothing leaks into a test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PROXBOX_") or k == "PROXBOX_E2E_CACHE"}


def harness(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """One harness command, run from the repository root."""
    return subprocess.run(
        [*HARNESS, *args], cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )


def _cannot_start(reason: str) -> None:
    """Skip locally; under CI, fail (the harness's message names the service and shows its log)."""
    if IN_CI:
        pytest.fail(f"the e2e stack could not start (CI): {reason}", pytrace=False)
    pytest.skip(f"the e2e stack could not start: {reason}")


def _key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z_]+=", line))


@dataclass
class Stack:
    """The running stack: the KEY=VALUE lines of `up`, plus helpers to poke at it."""

    values: dict[str, str]

    @property
    def api_url(self) -> str:
        return self.values["PROXBOX_API_URL"]

    @property
    def api_key(self) -> str:
        return self.values["PROXBOX_API_KEY"]

    @property
    def netbox_url(self) -> str:
        return self.values["NETBOX_URL"]

    @property
    def netbox_cmd(self) -> list[str]:
        return shlex.split(self.values["NETBOX_CMD"])

    @property
    def api_log(self) -> Path:
        return Path(self.values["STACK_DIR"]) / "logs" / "proxbox-api.log"

    def up(self) -> None:
        """`up` and its KEY=VALUE lines; fail or skip if the stack cannot start."""
        try:
            done = harness("up", timeout=UP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _cannot_start(f"`up` did not finish in {UP_TIMEOUT:g} s")
        values = _key_values(done.stdout)
        if done.returncode != 0 or "PROXBOX_API_URL" not in values:
            _cannot_start(f"`up` exited {done.returncode}\n{done.stderr}")
        self.values = values

    def restart(self) -> None:
        """A fresh stack, for when proxbox-api keeps a run of its own going."""
        harness("down")
        self.up()

    def fault(self, *args: str) -> None:
        done = harness("fault", *args)
        assert done.returncode == 0, f"fault {' '.join(args)} failed: {done.stderr}"

    def clear_faults(self) -> None:
        self.fault("clear")

    @contextlib.contextmanager
    def faulted(self, *args: str) -> Iterator[None]:
        """A fault for the body; always cleared afterwards, also when the body fails."""
        try:
            self.fault(*args)
            yield
        finally:
            self.clear_faults()

    def sync_active(self, key: str | None = None) -> dict[str, Any]:
        """proxbox-api's GET /sync/active (with the good key unless told otherwise)."""
        headers = {"X-Proxbox-API-Key": key or self.api_key}
        response = httpx.get(f"{self.api_url}/sync/active", headers=headers, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def wait_active(self, want: bool, timeout: float, interval: float = 0.25) -> float | None:
        """Poll /sync/active until ``active`` is ``want``; seconds it took, or None on timeout."""
        start = time.monotonic()
        while True:
            if bool(self.sync_active().get("active")) is want:
                return time.monotonic() - start
            if time.monotonic() - start >= timeout:
                return None
            time.sleep(interval)

    def netbox(self, path: str, **params: str) -> Any:
        """GET on NetBox's REST API (directly, not through the fault proxy)."""
        response = httpx.get(
            f"{self.netbox_url}{path}",
            params=params,
            headers={"Authorization": f"Token {self.values['NETBOX_TOKEN']}", "Accept": "application/json"},
            timeout=30.0,
        )
        response.raise_for_status()
        return response.json()

    def count(self, path: str, **params: str) -> int:
        return int(self.netbox(path, limit="1", **params)["count"])

    def log_offset(self) -> int:
        """Current size of proxbox-api's log: the start of a window of access lines."""
        try:
            return self.api_log.stat().st_size
        except FileNotFoundError:
            return 0

    def access_lines(self, since: int, until: int | None = None) -> list[str]:
        """uvicorn access lines of proxbox-api written between two offsets."""
        with self.api_log.open("rb") as handle:
            handle.seek(since)
            data = handle.read() if until is None else handle.read(max(0, until - since))
        lines = data.decode("utf-8", "replace").splitlines()
        return [line for line in lines if re.search(r'"[A-Z]+ /\S* HTTP/[\d.]+" \d{3}', line)]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    was_up = harness("status").returncode == 0
    stack = Stack({})
    try:
        stack.up()
        yield stack
    finally:
        if not was_up:
            down = harness("down")
            if down.returncode != 0:
                print(f"e2e stack down exited {down.returncode}: {down.stderr}", file=sys.stderr)


@pytest.fixture(autouse=True)
def idle_stack(stack: Stack) -> Stack:
    """Every case starts with no sync running on proxbox-api (a busy probe would skip it).

    A run that proxbox-api itself never finishes (seen after a client hung up mid-stage)
    is not this case's business: the stack is restarted rather than failing the next case.
    """
    if stack.wait_active(False, timeout=30.0) is None:
        print(f"proxbox-api kept a run going ({stack.sync_active()}); restarting the stack")
        stack.restart()
        assert stack.wait_active(False, timeout=30.0) is not None, "a fresh proxbox-api reports a sync"
    return stack


# ---------------------------------------------------------------- the scheduler


def parse_ts(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))


def parse_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                out.append(doc)
    return out


def scheduler_env(stack: Stack, **overrides: str) -> dict[str, str]:
    env = _clean_env()
    env.update(
        PROXBOX_API_URL=stack.api_url,
        PROXBOX_API_KEY=stack.api_key,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
        PROXBOX_SCHEDULER_LOG_JSON="true",
        PROXBOX_SCHEDULER_LOG_LEVEL="INFO",
        PROXBOX_SCHEDULER_STATE_PATH="memory",  # each case starts from a clean slate, nothing in $HOME
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


SCHEDULER = [sys.executable, "-m", "proxbox_scheduler"]


@dataclass
class OnceResult:
    returncode: int
    stdout: str
    stderr: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == name]

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def run_once(stack: Stack, timeout: float = 120.0, **env: str) -> OnceResult:
    """`proxbox-scheduler once` to completion."""
    done = subprocess.run(
        [*SCHEDULER, "once"],
        env=scheduler_env(stack, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return OnceResult(done.returncode, done.stdout, done.stderr, parse_lines(done.stdout))


class SchedulerProcess:
    """`proxbox-scheduler run` in the background; stdout is read by a thread into a queue of records."""

    def __init__(self, stack: Stack, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [*SCHEDULER, "run", *args],
            env=scheduler_env(stack, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.started = time.monotonic()
        self.records: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.stderr_lines: list[str] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line.rstrip("\n"))
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                self._queue.put(doc)
        self._queue.put(None)  # end of output

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def next_record(self, timeout: float) -> dict[str, Any] | None:
        """The next log record within ``timeout`` s; None on timeout or when the output ended."""
        try:
            doc = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if doc is not None:
            self.records.append(doc)
        else:
            self._queue.put(None)  # keep reporting the end
        return doc

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str = "a log line"
    ) -> dict[str, Any]:
        """Consume records until one matches; fail the test (with the output so far) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            doc = self.next_record(left)
            if doc is None:
                if self.proc.poll() is not None:
                    break
                continue
            if predicate(doc):
                return doc
        pytest.fail(f"no {what} within {timeout:g} s\n{self.explain()}", pytrace=False)

    def collect_until(self, deadline: float) -> None:
        """Consume records until the monotonic ``deadline`` (or the end of the output)."""
        while (left := deadline - time.monotonic()) > 0:
            if self.next_record(left) is None and self.proc.poll() is not None:
                return

    def drain(self) -> None:
        """After exit: take every remaining record."""
        for thread in self._threads:
            thread.join(timeout=10)
        while self.next_record(0) is not None:
            pass

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and fail if it does not exit within ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.drain()
            pytest.fail(
                f"scheduler did not exit {timeout:g} s after SIGTERM\n{self.explain()}", pytrace=False
            )
        self.drain()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.drain()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == name]

    def explain(self) -> str:
        return (
            f"exit {self.proc.poll()}\n--- stdout ---\n"
            + "\n".join(self.raw[-200:])
            + "\n--- stderr ---\n"
            + "\n".join(self.stderr_lines[-50:])
        )


@pytest.fixture
def spawn(stack: Stack) -> Iterator[Callable[..., SchedulerProcess]]:
    """Start `proxbox-scheduler run` processes; any still alive at the end of the test is killed."""
    started: list[SchedulerProcess] = []

    def start(*args: str, **env: str) -> SchedulerProcess:
        proc = SchedulerProcess(stack, *args, **env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
