"""Idle: ``run`` waiting for a far-away cron fire (``cron=0 0 1 1 *``) with the status server on.

After the "waiting for the next run" line and a short settle, CPU time (from
/proc/<pid>/task/*/schedstat, nanosecond resolution) and wakeups (voluntary +
nonvoluntary context switches of every thread) are read at the start and the
end of the window; their difference is reported per minute. RSS is VmRSS at
the end of the window.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import PYTHON, child_env, counters, figure, free_port, note, rss_mib, scheduler, sized

B = "idle"
TARGET_CPU_PER_MIN = 0.05
TARGET_RSS_MIB = 45.0
SETTLE_S = 0.5
REFERENCE = (
    "import asyncio\n"
    "async def main():\n"
    "    while True:\n"
    "        await asyncio.sleep(1.0)\n"
    "asyncio.run(main())\n"
)
"""A bare asyncio loop waking once a second, measured in the same window: the platform's floor."""


def main(argv: list[str] | None = None) -> int:
    seconds = sized(argv, __doc__, "seconds", "seconds of window", 60, 3)
    env = child_env(
        PROXBOX_MODE="cron=0 0 1 1 *",
        PROXBOX_API_URL="http://127.0.0.1:9",  # never called: the fire is months away
        PROXBOX_SCHEDULER_HTTP_PORT=str(free_port()),
    )
    reference = subprocess.Popen([PYTHON, "-c", REFERENCE])
    try:
        with scheduler("run", env) as sched:
            sched.wait_log("status server listening")
            sched.wait_log("waiting for the next run")
            time.sleep(SETTLE_S)
            before, ref_before, t0 = counters(sched.pid), counters(reference.pid), time.monotonic()
            time.sleep(seconds)
            after, ref_after, t1 = counters(sched.pid), counters(reference.pid), time.monotonic()
            rss, hwm = rss_mib(sched.pid)
            usage = sched.stop()
    finally:
        reference.kill()
        reference.wait()
    assert usage is not None
    window = t1 - t0
    per_min = 60.0 / window
    cpu = (after.cpu_s - before.cpu_s) * per_min
    wakeups = (after.wakeups - before.wakeups) * per_min
    note(f"window {window:.1f} s, {after.threads} threads; figures scaled to one minute")
    figure(B, "CPU per minute", cpu, "s", f"< {TARGET_CPU_PER_MIN:g} s", cpu < TARGET_CPU_PER_MIN)
    figure(B, "wakeups per minute (all threads)", wakeups, "/min")
    ref_cpu = (ref_after.cpu_s - ref_before.cpu_s) * per_min
    ref_wakeups = (ref_after.wakeups - ref_before.wakeups) * per_min
    figure(B, "reference: bare asyncio loop sleeping 1 s, CPU per minute", ref_cpu, "s")
    figure(B, "reference: bare asyncio loop sleeping 1 s, wakeups per minute", ref_wakeups, "/min")
    figure(B, "RSS while idle", rss, "MiB", f"< {TARGET_RSS_MIB:g} MiB", rss < TARGET_RSS_MIB)
    figure(B, "peak RSS since start (VmHWM)", hwm, "MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
