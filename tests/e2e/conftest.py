"""End-to-end fixtures: the REAL proxbox-api (../shared/peer/real-stack.sh) and the scheduler as a process.

The session fixture ``stack`` runs ``real-stack.sh up`` with its own PEER_DIR
(<repo>/.cache/e2e-peer, git-ignored, so the peer's venv survives reruns) and
free loopback ports, reads the ``KEY=VALUE`` lines it prints and runs ``down``
at the end, whatever happened. When the stack cannot start the tests are
skipped, except under CI (``CI`` set), where that is a failure showing the
stack's logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
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
STACK_SCRIPT = REPO.parent / "shared" / "peer" / "real-stack.sh"
PEER_DIR = REPO / ".cache" / "e2e-peer"
UP_TIMEOUT = 600.0  # a fresh venv (~50 s) plus proxbox-api startup (~30 s), with a wide margin
LOG_TAIL_LINES = 150
IN_CI = bool(os.environ.get("CI", "").strip()) and os.environ.get("CI", "").strip().lower() not in (
    "0",
    "false",
    "no",
)


# ---------------------------------------------------------------- the stack


def _clean_env() -> dict[str, str]:
    """This process's environment without PROXBOX_* settings, so nothing leaks into a test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PROXBOX_")}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_py312(python: str) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; raise SystemExit(0 if sys.version_info >= (3, 12) else 1)"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def find_python312() -> str | None:
    """A Python >= 3.12 that real-stack.sh would find to build the peer's venv (same search order)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [os.environ.get("PEER_PYTHON", ""), "python3.12"]
    candidates += sorted(str(p) for p in pyenv.glob("3.12*/bin/python3"))
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12", "python3.13"]
    candidates += sorted(str(p) for p in pyenv.glob("3.13*/bin/python3"))
    candidates += ["/usr/bin/python3.13", "python3"]
    for cand in candidates:
        path = shutil.which(cand) if cand and os.sep not in cand else cand
        if path and Path(path).exists() and _is_py312(path):
            return path
    return None


def python_available() -> bool:
    """A Python >= 3.12 exists, or the peer's venv (built by an earlier session) can be reused."""
    venv_python = PEER_DIR / "venv" / "bin" / "python"
    return find_python312() is not None or (venv_python.exists() and _is_py312(str(venv_python)))


def _logs_report(peer_dir: Path) -> str:
    """The tail of every file under PEER_DIR/logs/, for a failure message."""
    logs = peer_dir / "logs"
    if not logs.is_dir():
        return f"(no log directory {logs})"
    parts = []
    for path in sorted(p for p in logs.rglob("*") if p.is_file()):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        shown = lines[-LOG_TAIL_LINES:]
        head = f"----- {path} (last {len(shown)} of {len(lines)} lines) -----"
        parts.append("\n".join([head, *shown]))
    return "\n".join(parts) or f"(no files under {logs})"


def _cannot_start(reason: str, peer_dir: Path = PEER_DIR, with_logs: bool = True) -> None:
    """Skip locally; under CI, fail and show the stack's logs."""
    if IN_CI:
        where = ""
        if with_logs:  # shown once, in the first test's "Captured stderr setup"
            print(_logs_report(peer_dir), file=sys.stderr)
            where = f"\n(the tails of the stack's logs under {peer_dir / 'logs'} are in the captured stderr)"
        pytest.fail(f"the real proxbox-api stack could not start (CI): {reason}{where}", pytrace=False)
    pytest.skip(f"the real proxbox-api stack could not start: {reason}")


@dataclass
class Stack:
    """A running real-stack.sh: the KEY=VALUE lines it printed, plus helpers to poke at it."""

    values: dict[str, str]
    env: dict[str, str]

    @property
    def api_url(self) -> str:
        return self.values["PROXBOX_API_URL"]

    @property
    def api_key(self) -> str:
        return self.values["PROXBOX_API_KEY"]

    @property
    def peer_dir(self) -> Path:
        return Path(self.values.get("PEER_DIR", self.env["PEER_DIR"]))

    @property
    def api_log(self) -> Path:
        return self.peer_dir / "logs" / "proxbox-api.log"

    def script(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(STACK_SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def up(self) -> None:
        """Run `real-stack.sh up` and read its KEY=VALUE lines; fail or skip if it cannot start."""
        try:
            up = subprocess.run(
                ["bash", str(STACK_SCRIPT), "up"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=UP_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            _cannot_start(f"`real-stack.sh up` did not finish in {UP_TIMEOUT:g} s\n{stderr}")
        values = dict(line.split("=", 1) for line in up.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))
        missing_keys = {"PROXBOX_API_URL", "PROXBOX_API_KEY"} - set(values)
        if up.returncode != 0 or missing_keys:
            _cannot_start(
                f"`real-stack.sh up` exited {up.returncode}"
                + (f", missing {sorted(missing_keys)}" if missing_keys else "")
                + f"\nstderr:\n{up.stderr}"
            )
        self.values = values

    def restart(self) -> None:
        """A fresh proxbox-api (and fake NetBox), for when a run of its own never ends."""
        self.script("down")
        self.up()

    def fault(self, *args: str) -> None:
        done = self.script("fault", *args)
        assert done.returncode == 0, f"real-stack.sh fault {' '.join(args)} failed: {done.stderr}"

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
    if not STACK_SCRIPT.is_file():
        _cannot_start(f"{STACK_SCRIPT} not found", with_logs=False)
    missing = [tool for tool in ("bash", "curl") if shutil.which(tool) is None]
    if missing:
        _cannot_start(f"required tool(s) not found: {', '.join(missing)}", with_logs=False)
    if not python_available():
        _cannot_start("no Python >= 3.12 available for proxbox-api (set PEER_PYTHON)", with_logs=False)
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    env = _clean_env()
    env.update(
        PEER_DIR=str(PEER_DIR),
        PEER_API_PORT=str(_free_port()),
        PEER_NETBOX_PORT=str(_free_port()),
    )
    stack = Stack({}, env)
    try:
        stack.up()
        yield stack
    finally:
        down = subprocess.run(
            ["bash", str(STACK_SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120
        )
        if down.returncode != 0:
            print(f"real-stack.sh down exited {down.returncode}: {down.stderr}", file=sys.stderr)


@pytest.fixture(autouse=True)
def idle_stack(stack: Stack) -> Stack:
    """Every case starts with no sync running on proxbox-api (a busy probe would skip it).

    A run that proxbox-api itself never finishes (seen under load after a client hung up)
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
