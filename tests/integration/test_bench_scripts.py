"""The benchmarks still run: ``bench/run_all.py --quick`` exits 0 and every script prints its figures.

Figures are not judged here (benchmarks are not tests); only that each script
ran its whole course and reported what it measures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_ALL = ROOT / "bench" / "run_all.py"

# bench name -> figure names (prefixes) that its script must print
EXPECTED = {
    "jobs": [
        "1 job idle: CPU per minute",
        "100 jobs idle: CPU vs 1 job",
        "100 jobs idle: wakeups per minute",
        "100 jobs idle: RSS",
        "50 jobs at interval=2: lateness p99",
        "50 jobs at interval=2: overlapping runs on one target",
    ],
    "startup": ["start -> first 'waiting' log line, median"],
    "idle": ["CPU per minute", "wakeups per minute", "RSS while idle"],
    "throughput": [
        "server alone, raw socket reader",
        "end-to-end events/s",
        "end-to-end MB/s",
        "peak RSS",
        "decoder + verdict in-process",
        "events/s at",
        "peak RSS growth",
    ],
    "large_event": ["baseline peak RSS", "request -> verdict", "peak RSS (", "seconds to verdict at"],
    "timing": ["lateness p50", "lateness p99", "lateness max", "drift after the last run"],
    "shutdown": [
        "waiting: SIGTERM -> exit, max",
        "streaming: SIGTERM -> server sees disconnect",
        "streaming: SIGTERM -> exit",
        "streaming, finishing in grace",
        "streaming, second SIGTERM",
    ],
    "state": [
        "record one run (started + finished), p99",
        "event-loop lateness while recording",
        "startup: open + load",
    ],
    "replicas": [
        "postgres: claim + finish per run, p99",
        "postgres: failover, max",
        "postgres: idle load per replica",
        "redis: claim + finish per run, p99",
        "redis: failover, max",
        "redis: idle load per replica",
    ],
}
FIGURE = re.compile(r"^\[(\w+)\] (.+?) = \S")


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_run_all_quick_exits_0(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, quick_run.stdout[-3000:] + quick_run.stderr[-3000:]
    assert "== summary:" in quick_run.stdout


@pytest.mark.parametrize("bench", sorted(EXPECTED))
def test_each_benchmark_printed_its_figures(quick_run: subprocess.CompletedProcess[str], bench: str) -> None:
    names = [
        m.group(2) for line in quick_run.stdout.splitlines() if (m := FIGURE.match(line)) and m[1] == bench
    ]
    for expected in EXPECTED[bench]:
        assert any(name.startswith(expected) for name in names), (
            f"[{bench}] printed no '{expected}...' figure; it printed {names}\n{quick_run.stderr[-2000:]}"
        )
