"""Shutdown: SIGTERM -> process exit, while waiting and while a run is streaming.

* waiting: ``run`` with a far interval and the status server on; SIGTERM after
  the "waiting for the next run" line.
* streaming, never finishing: bench/sse_server.py holds the stream open with
  keepalives; SIGTERM mid-stream must let the run go on for the grace, then
  cancel it, close the stream (the server sees the disconnect) and exit.
* streaming, finishing within the grace: the server sends ``complete`` shortly
  after the SIGTERM; the run must end in success and the process exit then.
* a second SIGTERM mid-stream cancels the run at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from common import BenchServer, child_env, figure, free_port, note, percentile, scheduler

B = "shutdown"
TARGET_WAITING_S = 0.2
GRACE_S = 1.0
COMPLETE_AFTER_S = 0.8
SIGNAL_AFTER_S = 0.3
"""Seconds after the stream request arrives before the SIGTERM (the run is mid-stream)."""
SLACK_S = 0.2
"""Allowed beyond the grace for cancelling, closing and exiting."""


def while_waiting(repeats: int) -> tuple[list[float], list[float]]:
    """SIGTERM -> exit times, and SIGTERM -> "stopped" log line, with the scheduler waiting."""
    times, stopped = [], []
    for _ in range(repeats):
        env = child_env(
            PROXBOX_MODE="interval=3600",
            PROXBOX_API_URL="http://127.0.0.1:9",
            PROXBOX_SCHEDULER_HTTP_PORT=str(free_port()),
        )
        with scheduler("run", env) as sched:
            sched.wait_log("waiting for the next run")
            time.sleep(0.2)
            sent = sched.signal()
            usage = sched.wait(timeout=30)
        if usage.exit_code != 0:
            raise RuntimeError(f"run exited {usage.exit_code} after SIGTERM: {sched.stderr()}")
        times.append(usage.ended - sent)
        stopped.append(sched.wait_log("stopped", timeout=1)[0] - sent)
    return times, stopped


def while_streaming(*server_args: str, second_signal: bool = False) -> dict[str, float | str]:
    """SIGTERM (and maybe a second one) mid-stream; times to the server's disconnect and to exit."""
    with BenchServer("--hold", *server_args) as server:
        env = child_env(
            PROXBOX_MODE="interval=3600",
            PROXBOX_API_URL=server.url,
            PROXBOX_SCHEDULER_RUN_ON_START="true",
            PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS=f"{GRACE_S:g}",
        )
        with scheduler("run", env) as sched:
            request = server.wait_for("request", "/full-update/stream")
            time.sleep(max(0.0, request["t"] + SIGNAL_AFTER_S - time.monotonic()))
            sent = sched.signal()
            if second_signal:
                time.sleep(0.05)
                sched.signal(signal.SIGTERM)
            usage = sched.wait(timeout=GRACE_S + 30)
            closed = server.wait_closed(request["conn"], timeout=10)
        _, finished = sched.wait_log("run finished", timeout=1)
        stopped, _ = sched.wait_log("stopped", timeout=1)
    return {
        "stopped": stopped - sent,
        "closed": closed["t"] - sent,
        "exit": usage.ended - sent,
        "outcome": f"{finished['outcome']} ({finished.get('reason', '')})",
        "code": usage.exit_code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for the test suite")
    args = parser.parse_args(argv)
    waits, logged = while_waiting(2 if args.quick else 5)
    worst = max(waits)
    figure(B, f"waiting: SIGTERM -> 'stopped' log line, median of {len(waits)}", percentile(logged, 50), "s")
    figure(B, f"waiting: SIGTERM -> exit, median of {len(waits)}", percentile(waits, 50), "s")
    figure(
        B, "waiting: SIGTERM -> exit, max", worst, "s", f"< {TARGET_WAITING_S:g} s", worst < TARGET_WAITING_S
    )

    cut = while_streaming()
    limit = GRACE_S + SLACK_S
    note(
        f"streaming, never finishing, grace {GRACE_S:g} s: outcome {cut['outcome']}, exit code {cut['code']}"
    )
    figure(
        B,
        "streaming: SIGTERM -> server sees disconnect",
        cut["closed"],
        "s",
        f"within grace {GRACE_S:g} s + {SLACK_S:g}",
        GRACE_S - 0.05 <= float(cut["closed"]) < limit,
    )
    figure(B, "streaming: SIGTERM -> 'stopped' log line", cut["stopped"], "s")
    figure(B, "streaming: SIGTERM -> exit", cut["exit"], "s", f"< {limit:g} s", float(cut["exit"]) < limit)

    done = while_streaming("--complete-after", f"{SIGNAL_AFTER_S + COMPLETE_AFTER_S - 0.3:g}")
    note(f"streaming, complete sent {COMPLETE_AFTER_S - 0.3:g} s after SIGTERM: outcome {done['outcome']}")
    figure(
        B,
        "streaming, finishing in grace: SIGTERM -> exit",
        done["exit"],
        "s",
        "run ends in success, exit < grace",
        str(done["outcome"]).startswith("success") and float(done["exit"]) < GRACE_S,
    )

    twice = while_streaming(second_signal=True)
    note(f"second SIGTERM 0.05 s after the first: outcome {twice['outcome']}")
    figure(
        B,
        "streaming, second SIGTERM: first SIGTERM -> exit",
        twice["exit"],
        "s",
        f"< {TARGET_WAITING_S:g} s + 0.05",
        float(twice["exit"]) < TARGET_WAITING_S + 0.05,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
