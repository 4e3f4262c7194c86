"""Run every benchmark (each in its own process), echo its figures, then print a summary.

``--quick`` shrinks every size so the whole set runs in well under a minute
(the test suite uses it). Figures never fail the run: the exit status is
non-zero only when a benchmark script itself fails. ``--markdown FILE``
also writes the machine and the figures as a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, PYTHON, machine

SCRIPTS = (
    "bench_startup.py",
    "bench_idle.py",
    "bench_throughput.py",
    "bench_large_event.py",
    "bench_timing.py",
    "bench_shutdown.py",
    "bench_state.py",
    "bench_replicas.py",
    "bench_jobs.py",
)
FIGURE = re.compile(r"^\[(\w+)\] (.+?) = (.+?)(?:  \(target (.+?)(?:: (met|MISSED))?\))?$")
TIMEOUT_S = 600


def run_script(script: str, quick: bool) -> tuple[int, list[str], float]:
    """Run one benchmark, echoing its output; return (exit code, figure lines, seconds)."""
    cmd = [PYTHON, str(BENCH / script)] + (["--quick"] if quick else [])
    print(f"\n== {script}{' --quick' if quick else ''}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    figures = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        if FIGURE.match(line.rstrip("\n")):
            figures.append(line.rstrip("\n"))
    try:
        code = proc.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return code, figures, time.monotonic() - start


def markdown(info: dict[str, str], figures: list[str], quick: bool) -> str:
    """The figures as a Markdown table, headed by the machine they ran on."""
    head = ", ".join(f"{k} {v}" for k, v in info.items())
    lines = [
        f"Machine: {head}{' (--quick sizes)' if quick else ''}",
        "",
        "| bench | figure | value | target |",
    ]
    lines.append("|---|---|---|---|")
    for line in figures:
        m = FIGURE.match(line)
        assert m is not None
        bench, name, value, target, verdict = m.groups()
        shown = f"{target} ({verdict})" if verdict else (target or "")
        lines.append(f"| {bench} | {name} | {value} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (the test suite's run)")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    parser.add_argument("--markdown", type=Path, help="also write the figures as Markdown here")
    args = parser.parse_args(argv)
    info = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    failed, figures = [], []
    total = time.monotonic()
    for script in args.only or SCRIPTS:
        code, found, took = run_script(script, args.quick)
        print(f"-- {script}: exit {code}, {len(found)} figures, {took:.1f} s", flush=True)
        figures += found
        if code != 0 or not found:
            failed.append(script)
    missed = [f for f in figures if f.endswith(": MISSED)")]
    took = time.monotonic() - total
    print(f"\n== summary: {len(figures)} figures in {took:.1f} s, {len(missed)} missed targets")
    for line in missed:
        print("  " + line)
    if args.markdown:
        args.markdown.write_text(markdown(info, figures, args.quick))
    if failed:
        print("benchmark scripts that failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
