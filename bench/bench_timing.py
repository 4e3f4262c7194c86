"""Timing: N runs at ``interval=0.1`` against bench/sse_server.py, which answers at once.

The server stamps each request's arrival with time.monotonic() (CLOCK_MONOTONIC
is shared by every process on Linux). A run's start is the arrival of its
first request (``/sync/active``); its lateness is that minus its slot on the
start-to-start grid. The first run pays for lazy imports and TLS setup, so
the server-side grid starts at the second run and the first run's extra
latency is shown on its own; the log-based figures use the first start. The same figures
from the "run started" log timestamps (wall clock, ms resolution) are shown
for comparison. Drift is the last run's lateness.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from common import BenchServer, Usage, child_env, figure, note, percentile, scheduler, sized

B = "timing"
INTERVAL = 0.1
TARGET_P99_MS = 5.0
TARGET_DRIFT_MS = 10.0


def lateness_ms(starts: list[float], ends: list[float], interval: float) -> tuple[list[float], int]:
    """Lateness (ms) of each start on the grid ``origin + k * interval``, and the number of re-anchors.

    The origin is the first start. A run that ends after the next slot makes the
    scheduler start the next run at once and re-anchor its grid there (see
    schedule.plan_interval), so that start is left out and becomes the new origin.
    """
    late: list[float] = [0.0]
    origin, slot, anchors = starts[0], 0, 0
    for k in range(1, len(starts)):
        slot += 1
        if ends[k - 1] > origin + slot * interval:
            origin, slot, anchors = starts[k], 0, anchors + 1
            continue
        late.append((starts[k] - origin - slot * interval) * 1000)
    return late, anchors


def log_seconds(stamp: str) -> float:
    """Seconds since the epoch of a log line's ``ts`` (``...T...123Z``)."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def measure(runs: int) -> tuple[Usage, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], Any]:
    """Run the scheduler for ``runs`` runs; the server's probe, stream and close records, and its log."""
    with BenchServer() as server:
        env = child_env(PROXBOX_MODE=f"interval={INTERVAL:g}", PROXBOX_API_URL=server.url)
        with scheduler("run", env) as sched:
            server.wait_for("request", "/full-update/stream", timeout=runs * INTERVAL + 30, count=runs)
            sched.wait_log("run finished", timeout=10, count=runs)
            usage = sched.stop()
        probes = server.find("request", "/sync/active")
        streams = server.find("request", "/full-update/stream")
        for stream in streams[:runs]:
            server.wait_closed(stream["conn"], timeout=10)
        closed = server.find("closed")
    assert usage is not None and usage.exit_code == 0, usage
    return usage, probes, streams, closed, sched.log


def main(argv: list[str] | None = None) -> int:
    runs = int(sized(argv, __doc__, "runs", "runs", 300, 30))
    usage, probes, streams, closed, log = measure(runs)
    ends = {r["conn"]: r["t"] for r in closed}
    starts = [r["t"] for r in probes[:runs]]
    # Run 1 is cold (first imports and TLS setup in the process): the grid starts at run 2 and
    # run 1's extra request latency is reported on its own.
    cold_ms = (starts[0] - (starts[1] - INTERVAL)) * 1000
    late, anchors = lateness_ms(starts[1:], [ends[s["conn"]] for s in streams[1:runs]], INTERVAL)
    log_recs = log.matching(lambda r: r.get("event") in ("run started", "run finished"))
    log_starts = [log_seconds(rec["ts"]) for _, rec in log_recs if rec["event"] == "run started"]
    log_ends = [log_seconds(rec["ts"]) for _, rec in log_recs if rec["event"] == "run finished"]
    log_late, _ = lateness_ms(log_starts[:runs], log_ends[:runs], INTERVAL)
    durations = [rec["duration_s"] for _, rec in log_recs if rec["event"] == "run finished"]
    to_stream = [(s["t"] - p["t"]) * 1000 for p, s in zip(probes, streams, strict=False)]
    wall_minus_mono = time.time() - time.monotonic()  # to put log stamps on the monotonic clock
    setup = [(t - (w - wall_minus_mono)) * 1000 for w, t in zip(log_starts[1:runs], starts[1:], strict=True)]
    report(runs, usage, late, anchors, log_late, durations, setup, to_stream, cold_ms)
    return 0


def report(
    runs: int,
    usage: Usage,
    late: list[float],
    anchors: int,
    log_late: list[float],
    durations: list[float],
    setup: list[float],
    to_stream: list[float],
    cold_ms: float,
) -> None:
    """Print the figures of one timing run."""
    note(
        f"{runs} runs at interval={INTERVAL:g}; server grid origin = run 2's start; {anchors} re-anchor(s) "
        f"after a run longer than the interval (first run {durations[0] * 1000:.0f} ms), "
        f"{len(late)} starts on the grid"
    )
    p99 = percentile(late, 99)
    figure(B, "lateness p50 (server arrival)", percentile(late, 50), "ms")
    figure(B, "lateness p99 (server arrival)", p99, "ms", f"< {TARGET_P99_MS:g} ms", p99 < TARGET_P99_MS)
    figure(B, "lateness max (server arrival)", max(late), "ms")
    drift = late[-1]
    figure(
        B,
        "drift after the last run (server arrival)",
        drift,
        "ms",
        f"< {TARGET_DRIFT_MS:g} ms",
        abs(drift) < TARGET_DRIFT_MS,
    )
    figure(
        B,
        "lateness p50 / p99 / max (log ts, ms resolution)",
        f"{percentile(log_late, 50):.1f} / {percentile(log_late, 99):.1f} / {max(log_late):.1f}",
        "ms",
    )
    figure(
        B,
        "run duration p50 / max (log)",
        f"{percentile(durations, 50) * 1000:.1f} / {max(durations) * 1000:.1f}",
        "ms",
    )
    figure(
        B,
        "'run started' log line -> probe arrival p50 / p99 / max (warm runs, ~1 ms)",
        f"{percentile(setup, 50):.1f} / {percentile(setup, 99):.1f} / {max(setup):.1f}",
        "ms",
    )
    figure(B, "probe -> stream request p50", percentile(to_stream, 50), "ms")
    figure(B, "first (cold) run: request arrival later than the warm grid by", cold_ms, "ms")
    figure(B, "lateness min (server arrival)", min(late), "ms")
    figure(B, "scheduler CPU per run", usage.cpu_s / runs * 1000, "ms")


if __name__ == "__main__":
    sys.exit(main())
