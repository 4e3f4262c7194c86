"""State store: record 10,000 runs in SQLite, then time a fresh process's startup with that history.

Recording: each run is ``run_started`` + ``run_finished`` awaited from the
event loop, as the scheduler does; a 1 ms heartbeat on the same loop measures
how late the loop gets while the writes happen on the store's thread (the
"off the event loop" goal). 10 jobs x 1,000 runs are kept, i.e. the default
per-job bound is full for every job. Startup: a new ``python`` process imports
the store, opens the file (lock, quick_check, in-flight recovery) and loads
every job plus its last 24 h of history, which is what the scheduler and its
status page need before the first fire.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, figure, note, percentile

from proxbox_scheduler.state import Counters, RunStart, SqliteStore

B = "state"
STARTUP_TARGET_S = 0.5
JOBS = 10
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

STARTUP_CHILD = """
import asyncio, datetime as dt, json, sys, time
t0 = time.monotonic()
from proxbox_scheduler.state import SqliteStore
t1 = time.monotonic()

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    jobs = [f"job{j}" for j in range(int(sys.argv[2]))]
    runs = [len((await store.load(job)).runs) + len(await store.history(job, since)) for job in jobs]
    await store.close()
    return sum(runs)

found = asyncio.run(main())
print(json.dumps({"import_s": t1 - t0, "open_load_s": time.monotonic() - t1, "rows": found}))
"""


class Heartbeat:
    """A 1 ms timer on the loop; its lateness says how long the loop was held."""

    def __init__(self, period: float = 0.001) -> None:
        self.period, self.late, self._stop = period, [0.0], False

    async def run(self) -> None:
        while not self._stop:
            due = time.monotonic() + self.period
            await asyncio.sleep(self.period)
            self.late.append(time.monotonic() - due)

    def stop(self) -> None:
        self._stop = True


async def idle_heartbeat(seconds: float) -> list[float]:
    """The heartbeat's lateness with nothing else to do: the machine's own jitter, for scale."""
    beat = Heartbeat()
    ticker = asyncio.create_task(beat.run())
    await asyncio.sleep(seconds)
    beat.stop()
    await ticker
    return beat.late


async def record(path: Path, runs: int) -> tuple[list[float], list[float]]:
    """Record ``runs`` runs round-robin over the jobs; (per-run seconds, heartbeat lateness)."""
    now = dt.datetime.now(dt.UTC)
    store = SqliteStore(path)
    await store.open()
    beat = Heartbeat()
    ticker = asyncio.create_task(beat.run())
    costs = []
    for n in range(runs):
        started = now - dt.timedelta(seconds=runs - n)  # the newest ones fall in the last 24 h
        start = RunStart(f"run-{n}", f"job{n % JOBS}", started, "scheduled", started, "bench")
        t = time.monotonic()
        await store.run_started(start)
        await store.run_finished(start.finish(started, 1.0, "success", counts={"devices": n}), Counters())
        costs.append(time.monotonic() - t)
    beat.stop()
    await ticker
    await store.close()
    return costs, beat.late


def startup(path: Path) -> dict[str, float]:
    out = subprocess.run(
        [PYTHON, "-c", STARTUP_CHILD, str(path), str(JOBS)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs and 2 startups, for the test suite")
    args = parser.parse_args(argv)
    runs, repeats = (1000, 2) if args.quick else (10_000, 7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        costs, late = asyncio.run(record(path, runs))
        idle = asyncio.run(idle_heartbeat(0.5 if args.quick else 3.0))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        starts = [startup(path) for _ in range(repeats)]
    note(f"{runs:,} runs over {JOBS} jobs; synchronous=FULL (two fsyncs per run)")
    figure(B, f"record one run (started + finished), p50 of {runs:,}", percentile(costs, 50) * 1e3, "ms")
    figure(B, f"record one run (started + finished), p99 of {runs:,}", percentile(costs, 99) * 1e3, "ms")
    for name, values in (("while recording", late), ("idle, for scale", idle)):
        p99, worst = percentile(values, 99) * 1e3, max(values) * 1e3
        figure(B, f"event-loop lateness {name}, p99 / max (1 ms heartbeat)", f"{p99:.2f} / {worst:.2f}", "ms")
    figure(B, f"state file size after {runs:,} runs (incl. WAL)", size / 2**20, "MiB")
    figure(B, "rows read at startup (load + 24 h history, all jobs)", int(starts[0]["rows"]))
    figure(
        B,
        f"startup: import of the store, median of {repeats}",
        percentile([s["import_s"] for s in starts], 50),
        "s",
    )
    median = percentile([s["open_load_s"] for s in starts], 50)
    met = median < STARTUP_TARGET_S
    figure(
        B, f"startup: open + load every job, median of {repeats}", median, "s", f"< {STARTUP_TARGET_S} s", met
    )
    figure(B, "startup: open + load every job, max", max(s["open_load_s"] for s in starts), "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
