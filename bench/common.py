"""Shared benchmark helpers: spawning the scheduler and the bench server, /proc sampling, figures.

Everything is measured on whole processes, as an operator would see them: the
scheduler is ``python -m proxbox_scheduler ...`` in a child process, the server
is ``bench/sse_server.py`` in another, and times are compared on
CLOCK_MONOTONIC, which every process on Linux shares.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from proxbox_emulator import journal_padding
from proxbox_emulator.stages import item_frames

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test harness (tests/support) is shared with the benchmarks
from tests.support.processes import free_port  # noqa: E402, F401 - shared with the bench scripts

BENCH = ROOT / "bench"
PYTHON = sys.executable
CACHE = Path(tempfile.gettempdir()) / "proxbox-bench"
MiB = 1024 * 1024
READ_CHUNK = 64 * 1024
"""httpcore reads the socket 64 KiB at a time; the in-process decoder figures use the same chunks."""
QUICK_FLOOD = 1000
"""Item events in the small stream used for baselines."""
BODY_VERSION = 1
"""Bumped when the generated bodies change, so cached files are rebuilt."""

# ---------------------------------------------------------------- figures


def figure(
    bench: str, name: str, value: float | str, unit: str = "", target: str = "", met: bool | None = None
) -> None:
    """Print one figure line: ``[bench] name = value unit  (target ...: met|MISSED)``."""
    if isinstance(value, float):
        shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    else:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
    line = f"[{bench}] {name} = {shown}"
    if unit:
        line += f" {unit}"
    if target:
        verdict = "" if met is None else (": met" if met else ": MISSED")
        line += f"  (target {target}{verdict})"
    print(line, flush=True)


def sized(argv: list[str] | None, doc: str | None, flag: str, what: str, full: float, quick: float) -> float:
    """The benchmark's size from ``--FLAG N`` or ``--quick`` (the test suite's small run)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick:g} {what}, for the test suite")
    parser.add_argument(f"--{flag}", type=float, help=f"{what} (default {full:g}, quick {quick:g})")
    args = parser.parse_args(argv)
    return getattr(args, flag) or (quick if args.quick else full)


def note(text: str) -> None:
    """A line of context that is not a figure."""
    print(f"  {text}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def machine() -> dict[str, str]:
    """What the figures ran on."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": _loadavg(),
    }


def _loadavg() -> str:
    """1-minute load average: other work on the machine skews wall-clock figures."""
    try:
        with open("/proc/loadavg") as load:
            return load.read().split()[0]
    except OSError:
        return "unknown"


# ---------------------------------------------------------------- /proc


def proc_status(pid: int, task: str | None = None) -> dict[str, str]:
    """``/proc/<pid>/status`` (or one thread's) as a dict of raw values."""
    path = f"/proc/{pid}/task/{task}/status" if task else f"/proc/{pid}/status"
    fields: dict[str, str] = {}
    with open(path) as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process, in MiB."""
    status = proc_status(pid)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


@dataclass(frozen=True)
class Counters:
    """CPU time and context switches of a live process, summed over its threads."""

    cpu_s: float  # from schedstat: nanosecond resolution, unlike /proc/<pid>/stat's ticks
    wakeups: int  # voluntary + nonvoluntary context switches
    threads: int


def counters(pid: int) -> Counters:
    cpu_ns = wakeups = threads = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread may end while we look
            with open(f"/proc/{pid}/task/{task}/schedstat") as sched:
                cpu_ns += int(sched.read().split()[0])
            status = proc_status(pid, task)
            wakeups += int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
            threads += 1
    return Counters(cpu_ns / 1e9, wakeups, threads)


@dataclass(frozen=True)
class Usage:
    """What ``wait4`` says about one finished child (and its polled VmHWM, when sampled)."""

    exit_code: int
    ended: float  # monotonic time the exit was seen
    ru_maxrss_mib: float  # see HwmSampler: includes the spawning parent's RSS
    cpu_s: float
    wakeups: int
    max_rss_mib: float = 0.0  # VmHWM of the exec'd program, polled

    def with_hwm(self, hwm_mib: float) -> Usage:
        return Usage(self.exit_code, self.ended, self.ru_maxrss_mib, self.cpu_s, self.wakeups, hwm_mib)


class HwmSampler:
    """Polls VmHWM of a running child until it exits.

    ru_maxrss from wait4 is not used for peak RSS: on Linux, exec records the
    hiwater RSS of the memory it replaces, and with vfork (what subprocess
    uses) that is the *parent's*, so a large benchmark process would inflate
    every child's figure. VmHWM is the exec'd program's own.
    """

    def __init__(self, pid: int, period: float = 0.005) -> None:
        self.pid, self.period, self.peak_kib = pid, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                hwm = int(proc_status(self.pid)["VmHWM"].split()[0])
            except (OSError, KeyError, ValueError):  # gone, or a zombie without memory
                return
            self.peak_kib = max(self.peak_kib, hwm)
            if self._stop.wait(self.period):
                return

    def stop(self) -> None:
        """Stop polling (call before the child is reaped, so its pid cannot be reused meanwhile)."""
        self._stop.set()
        self._thread.join(1.0)

    def peak_mib(self) -> float:
        return self.peak_kib / 1024


def wait_child(
    proc: subprocess.Popen[Any], timeout: float, before_reap: Callable[[], None] | None = None
) -> Usage:
    """Wait for ``proc`` to exit (woken by a pidfd, so the time is exact) and reap it with wait4."""
    deadline = time.monotonic() + timeout
    fd = os.pidfd_open(proc.pid)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise TimeoutError(f"{proc.args!r} did not exit within {timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                break
    finally:
        os.close(fd)
    ended = time.monotonic()
    if before_reap is not None:
        before_reap()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(
        exit_code=proc.returncode,
        ended=ended,
        ru_maxrss_mib=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        wakeups=usage.ru_nvcsw + usage.ru_nivcsw,
    )


# ---------------------------------------------------------------- child processes


class Lines:
    """Reads a child's stdout on a thread; each line is kept with the monotonic time it arrived."""

    def __init__(self, stream: IO[bytes], parse: Callable[[str], Any]) -> None:
        self.items: list[tuple[float, Any]] = []
        self._cond = threading.Condition()
        self._parse = parse
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            t = time.monotonic()
            item = self._parse(raw.decode("utf-8", "replace"))
            with self._cond:
                self.items.append((t, item))
                self._cond.notify_all()

    def wait_for(self, match: Callable[[Any], bool], timeout: float, count: int = 1) -> tuple[float, Any]:
        """The ``count``-th item that matches, with its arrival time; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [(t, item) for t, item in self.items if match(item)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (not self._thread.is_alive() and len(found) < count):
                    raise TimeoutError(f"no match #{count} within {timeout:g} s (have {len(found)})")
                self._cond.wait(min(left, 0.5))

    def matching(self, match: Callable[[Any], bool]) -> list[tuple[float, Any]]:
        with self._cond:
            return [(t, item) for t, item in self.items if match(item)]

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


def _json_or_text(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {"event": line.rstrip("\n"), "unparsed": True}
    return value if isinstance(value, dict) else {"event": line}


def child_env(**variables: str) -> dict[str, str]:
    """The environment without any inherited PROXBOX_* setting, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXBOX_")}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(
        PROXBOX_SCHEDULER_LOG_JSON="true",
        PROXBOX_SCHEDULER_LOG_LEVEL="INFO",
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
        PROXBOX_SCHEDULER_HTTP_PORT="0",
        PROXBOX_SCHEDULER_STATE_PATH="memory",  # a benchmark leaves nothing in $HOME
    )
    env.update(variables)
    return env


class Scheduler:
    """``python -m proxbox_scheduler <command>`` with its JSON log lines collected."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "proxbox_scheduler", command],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.hwm = HwmSampler(self.pid)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.log = Lines(self.proc.stdout, _json_or_text)
        self.err = Lines(self.proc.stderr, str)

    def wait_log(self, event: str, timeout: float = 10.0, count: int = 1) -> tuple[float, dict[str, Any]]:
        """Arrival time and record of the ``count``-th log line whose ``event`` is ``event``."""
        try:
            return self.log.wait_for(lambda rec: rec.get("event") == event, timeout, count)
        except TimeoutError as exc:
            raise TimeoutError(f"scheduler never logged {event!r}: {exc}\n{self.stderr()}") from None

    def signal(self, signum: int = signal.SIGTERM) -> float:
        """Send a signal; return the monotonic time it was sent."""
        t = time.monotonic()
        os.kill(self.pid, signum)
        return t

    def wait(self, timeout: float) -> Usage:
        usage = wait_child(self.proc, timeout, before_reap=self.hwm.stop)
        self.log.join()
        self.err.join()
        return usage.with_hwm(self.hwm.peak_mib())

    def stderr(self) -> str:
        return "".join(item for _, item in self.err.items)

    def stop(self, timeout: float = 10.0) -> Usage | None:
        """SIGTERM and reap, if still running."""
        if self.proc.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.signal()
        return self.wait(timeout)


class BenchServer:
    """``bench/sse_server.py`` in its own process; its reports are collected as dicts."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(BENCH / "sse_server.py"), *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        self.reports = Lines(self.proc.stdout, json.loads)
        _, hello = self.reports.wait_for(lambda r: r["ev"] == "listening", 10.0)
        self.port: int = hello["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_for(
        self, ev: str, path: str | None = None, timeout: float = 30.0, count: int = 1
    ) -> dict[str, Any]:
        """The ``count``-th report ``ev`` (for ``path``, when given)."""
        _, rec = self.reports.wait_for(
            lambda r: r["ev"] == ev and (path is None or r.get("path") == path), timeout, count
        )
        return rec

    def wait_closed(self, conn: int, timeout: float = 30.0) -> dict[str, Any]:
        """The report that connection ``conn`` was closed by the client."""
        _, rec = self.reports.wait_for(lambda r: r["ev"] == "closed" and r["conn"] == conn, timeout)
        return rec

    def find(self, ev: str, path: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for _, r in self.reports.matching(
                lambda r: r["ev"] == ev and (path is None or r.get("path") == path)
            )
        ]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def scheduler(command: str, env: dict[str, str]) -> Iterator[Scheduler]:
    """A scheduler process that is stopped (SIGTERM, then SIGKILL) whatever happens."""
    sched = Scheduler(command, env)
    try:
        yield sched
    finally:
        if sched.proc.returncode is None:
            with contextlib.suppress(Exception):
                sched.stop(timeout=30.0)
            if sched.proc.poll() is None:
                sched.proc.kill()
                sched.proc.wait()


# ---------------------------------------------------------------- stream bodies

PRELUDE = (
    'event: step\ndata: {"step": "stream", "status": "started", "message": "operation_id=bench"}\n\n'
    'event: step\ndata: {"step": "virtual-machines", "status": "started"}\n\n'
)
COMPLETE = (
    'event: complete\ndata: {"ok": true, "message": "Full update sync completed.", '
    '"result": {"devices_count": 1, "virtual_machines_count": %d}}\n\n'
)


def _cached(name: str, build: Callable[[IO[bytes]], None]) -> Path:
    """A generated body under CACHE, built once (atomically) and reused by later runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"v{BODY_VERSION}-{name}"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            build(out)
        tmp.replace(path)
    return path


def flood_body(events: int) -> Path:
    """``events`` item_progress events, then ``complete``: the throughput stream."""

    def build(out: IO[bytes]) -> None:
        out.write(PRELUDE.encode())
        batch = 10_000
        for start in range(1, events + 1, batch):
            out.write(item_frames(start, min(start + batch - 1, events), events).encode())
        out.write((COMPLETE % events).encode())

    return _cached(f"flood-{events}.sse", build)


NETBOX_URL = "https://netbox.example.com"


def large_body(data_bytes: int) -> Path:
    """One ``complete`` event whose single data line is exactly ``data_bytes`` long.

    The bulk is a list of journal-entry-like records (the emulator's
    ``--result-bytes`` padding), so parsing it builds realistic objects.
    """

    def build(out: IO[bytes]) -> None:
        head = '{"ok": true, "message": "Full update sync completed.", "result": {"devices_count": 1, '
        head += '"journal_entries": '
        tail = "}}"
        line = head + journal_padding(data_bytes - len(head) - len(tail), NETBOX_URL, 50) + tail
        assert len(line) == data_bytes, (len(line), data_bytes)
        out.write(PRELUDE.encode())
        out.write(b"event: complete\ndata: " + line.encode() + b"\n\n")

    return _cached(f"large-{data_bytes}.sse", build)


def once_against(server: BenchServer) -> tuple[float, float, float, float]:
    """One ``once`` run: (request -> verdict s, request -> exit s, peak RSS MiB, CPU s)."""
    with scheduler("once", child_env(PROXBOX_API_URL=server.url)) as sched:
        usage = sched.wait(timeout=120)
    if usage.exit_code != 0:
        raise RuntimeError(f"once exited {usage.exit_code}: {sched.stderr()}")
    request = server.find("request", "/full-update/stream")[-1]
    closed = server.wait_closed(request["conn"])
    return closed["t"] - request["t"], usage.ended - request["t"], usage.max_rss_mib, usage.cpu_s
