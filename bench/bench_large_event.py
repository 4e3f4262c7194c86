"""Large terminal event: ``complete`` whose single ``data:`` line is 16 MiB, then 64 MiB, through ``once``.

The body (two small step events, then the big ``complete``) is generated once
and served by bench/sse_server.py with sendfile. Seconds to verdict = request
arrival at the server -> the scheduler closing the connection after judging
the event; peak RSS is the child's VmHWM, polled (see common.HwmSampler). A tiny stream gives
the baseline RSS of a ``once`` run, so the event's own cost can be read off.
"""

from __future__ import annotations

import argparse
import sys

from common import (
    QUICK_FLOOD,
    BenchServer,
    MiB,
    figure,
    flood_body,
    large_body,
    once_against,
)

B = "large_event"
TARGET_S = 1.0
"""Seconds to verdict allowed for the largest event (64 MiB in the full run)."""


def run_once(path: str) -> tuple[float, float, float, float]:
    """(seconds to verdict, seconds to exit, peak RSS MiB, CPU s) of one ``once`` run on ``path``."""
    with BenchServer("--stream", path) as server:
        return once_against(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--mib", type=int, nargs="+", help="event sizes in MiB (default 16 64)")
    args = parser.parse_args(argv)
    sizes = args.mib or ([1, 4] if args.quick else [16, 64])
    _, _, base_rss, _ = run_once(str(flood_body(QUICK_FLOOD)))
    figure(B, f"baseline peak RSS (once, {QUICK_FLOOD:,} small events)", base_rss, "MiB")
    verdicts: dict[int, float] = {}
    for mib in sizes:
        size = mib * MiB
        verdict_s, exit_s, rss, cpu = run_once(str(large_body(size)))
        label = f"{mib} MiB data line"
        limit = 3 * mib + 40
        figure(B, f"request -> verdict ({label})", verdict_s, "s")
        figure(B, f"request -> process exit ({label})", exit_s, "s")
        figure(B, f"scheduler CPU, whole process ({label})", cpu, "s")
        figure(B, f"peak RSS ({label})", rss, "MiB", f"< 3 x {mib} + 40 = {limit} MiB", rss < limit)
        figure(B, f"peak RSS above baseline, per event byte ({label})", (rss - base_rss) / mib, "x")
        verdicts[mib] = verdict_s
    big = max(sizes)
    took = verdicts[big]
    figure(B, f"seconds to verdict at {big} MiB", took, "s", f"< {TARGET_S:g} s", took < TARGET_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
