"""Startup: process start -> the first "waiting for the next run" log line of ``run``.

Timed from just before the spawn to the line's arrival on the pipe, with the
status server on (as deployed). A bare ``python -c pass`` is timed the same
way for scale: that much is the interpreter's, not the scheduler's.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import PYTHON, child_env, figure, free_port, percentile, scheduler, sized

B = "startup"
TARGET_S = 0.4


def bare_interpreter() -> float:
    """Seconds for ``python -c pass`` to start and exit."""
    start = time.monotonic()
    subprocess.run([PYTHON, "-c", "pass"], check=True)
    return time.monotonic() - start


def to_waiting() -> tuple[float, float]:
    """(seconds to the "starting" line, seconds to the first "waiting" line) of one ``run``."""
    env = child_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_API_URL="http://127.0.0.1:9",
        PROXBOX_SCHEDULER_HTTP_PORT=str(free_port()),
    )
    with scheduler("run", env) as sched:
        starting, _ = sched.wait_log("proxbox-scheduler starting")
        waiting, _ = sched.wait_log("waiting for the next run")
        sched.stop()
    return starting - sched.started, waiting - sched.started


def main(argv: list[str] | None = None) -> int:
    repeats = int(sized(argv, __doc__, "repeats", "spawns to time", 7, 2))
    bare = [bare_interpreter() for _ in range(repeats)]
    runs = [to_waiting() for _ in range(repeats)]
    waiting = [w for _, w in runs]
    median = percentile(waiting, 50)
    figure(B, f"bare interpreter start+exit, median of {repeats}", percentile(bare, 50), "s")
    figure(B, f"start -> 'starting' log line, median of {repeats}", percentile([s for s, _ in runs], 50), "s")
    figure(
        B,
        f"start -> first 'waiting' log line, median of {repeats}",
        median,
        "s",
        f"< {TARGET_S:g} s",
        median < TARGET_S,
    )
    figure(B, "start -> first 'waiting' log line, max", max(waiting), "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
