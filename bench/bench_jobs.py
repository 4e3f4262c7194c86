"""Many jobs in one process: idle cost of 100 far-away cron jobs, fire lateness of 50 busy interval jobs.

Idle: `run` with a job file of 1, then 100 jobs (``cron=0 0 1 1 *``), CPU time
and wakeups per minute over a window after every job logged its first wait,
and VmRSS. Busy: 50 jobs at ``interval=2`` against the emulator, each on its
own target (the emulator answers concurrent streams); lateness is each "run
started" log time minus the ``next_fire`` its job announced before it (ms
resolution of the log). Overlap: no two runs of one target may overlap, read
from the run started/finished lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from common import child_env, counters, figure, free_port, note, percentile, rss_mib, scheduler

from proxbox_emulator import Emulator, EmulatorSettings

B = "jobs"
IDLE_JOBS, BUSY_JOBS, INTERVAL = 100, 50, 2
TARGET_RSS_MIB, TARGET_CPU_RATIO, TARGET_P99_MS = 60.0, 2.0, 20.0


def job_file(folder: Path, count: int, mode: str, url: str) -> Path:
    lines = ['state_path = "memory"']
    for i in range(count):
        lines += [f"[targets.t{i}]", f'url = "{url}"', 'key = "bench-key"']
    for i in range(count):
        lines += [
            "[[jobs]]",
            f'name = "job{i}"',
            f'mode = "{mode}"',
            f'target = "t{i}"',
            "skip_if_active = false",
        ]
    path = folder / f"jobs-{count}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def idle(folder: Path, count: int, seconds: float) -> tuple[float, float, float]:
    """(CPU s/min, wakeups/min, RSS MiB) of `run` with ``count`` far-away cron jobs."""
    env = child_env(
        PROXBOX_SCHEDULER_CONFIG=str(job_file(folder, count, "cron=0 0 1 1 *", "http://127.0.0.1:9")),
        PROXBOX_SCHEDULER_HTTP_PORT=str(free_port()),
    )
    with scheduler("run", env) as sched:
        sched.wait_log("waiting for the next run", timeout=30, count=count)
        time.sleep(0.5)  # settle: measuring a window, not synchronising
        before, t0 = counters(sched.pid), time.monotonic()
        time.sleep(seconds)
        after, t1 = counters(sched.pid), time.monotonic()
        rss, _ = rss_mib(sched.pid)
        sched.stop()
    per_min = 60.0 / (t1 - t0)
    return (after.cpu_s - before.cpu_s) * per_min, (after.wakeups - before.wakeups) * per_min, rss


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def busy(folder: Path, seconds: float) -> tuple[list[float], int, int]:
    """(lateness ms of every run, runs, overlapping pairs on one target) for 50 interval jobs."""
    emu = Emulator(EmulatorSettings(key="bench-key", stage_delay=0.0)).start()
    try:
        env = child_env(
            PROXBOX_SCHEDULER_CONFIG=str(job_file(folder, BUSY_JOBS, f"interval={INTERVAL}", emu.url)),
            PROXBOX_SCHEDULER_HTTP_PORT=str(free_port()),
        )
        with scheduler("run", env) as sched:
            sched.wait_log("waiting for the next run", timeout=30, count=BUSY_JOBS)
            time.sleep(seconds)  # the measured window
            sched.stop()
        records: list[dict[str, Any]] = [rec for _, rec in sched.log.items if isinstance(rec, dict)]
    finally:
        emu.stop()
    announced: dict[str, float] = {}
    late: list[float] = []
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    open_runs: dict[str, float] = {}
    for rec in records:
        job, event = rec.get("job"), rec.get("event")
        if event == "waiting for the next run":
            announced[job] = stamp(rec["next_fire"])
        elif event == "run started" and job in announced:
            late.append((stamp(rec["ts"]) - announced.pop(job)) * 1000)
            open_runs[rec["run_id"]] = stamp(rec["ts"])
        elif event == "run finished" and rec.get("run_id") in open_runs:
            spans[job].append((open_runs.pop(rec["run_id"]), stamp(rec["ts"])))
    overlaps = sum(
        1
        for runs in spans.values()
        for (_, end), (start, _) in zip(sorted(runs), sorted(runs)[1:], strict=False)
        if start < end
    )
    return late, len(late), overlaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short windows, for the test suite")
    args = parser.parse_args(argv)
    idle_s, busy_s = (3.0, 5.0) if args.quick else (60.0, 60.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cpu1, wake1, rss1 = idle(folder, 1, idle_s)
        cpu100, wake100, rss100 = idle(folder, IDLE_JOBS, idle_s)
        late, runs, overlaps = busy(folder, busy_s)
    note(f"idle windows {idle_s:g} s, busy window {busy_s:g} s; figures scaled to one minute")
    figure(B, "1 job idle: CPU per minute", cpu1, "s")
    figure(B, "1 job idle: wakeups per minute", wake1, "/min")
    figure(B, "1 job idle: RSS", rss1, "MiB")
    ratio = cpu100 / cpu1 if cpu1 > 0 else (1.0 if cpu100 == 0 else float("inf"))  # both 0: equal
    figure(B, "100 jobs idle: CPU per minute", cpu100, "s")
    figure(
        B, "100 jobs idle: CPU vs 1 job", ratio, "x", f"<= {TARGET_CPU_RATIO:g}x", ratio <= TARGET_CPU_RATIO
    )
    figure(B, "100 jobs idle: wakeups per minute", wake100, "/min")
    figure(B, "100 jobs idle: RSS", rss100, "MiB", f"< {TARGET_RSS_MIB:g} MiB", rss100 < TARGET_RSS_MIB)
    p99 = percentile(late, 99) if late else float("inf")
    figure(B, "50 jobs at interval=2: runs", runs, "")
    figure(B, "50 jobs at interval=2: lateness p50", percentile(late, 50) if late else float("inf"), "ms")
    figure(
        B, "50 jobs at interval=2: lateness p99", p99, "ms", f"< {TARGET_P99_MS:g} ms", p99 < TARGET_P99_MS
    )
    figure(B, "50 jobs at interval=2: overlapping runs on one target", overlaps, "", "0", overlaps == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
