"""ExecTrigger against real processes: verdicts, logging, and that nothing outlives a run."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxbox_scheduler.config import load
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.trigger import RunContext, RunLogAdapter
from proxbox_scheduler.triggers.exec import LINE_LIMIT, ExecTrigger

GUARD_SECONDS = 60.0
"""Upper bound on any run here, so that a broken trigger fails a test instead of hanging it."""

LOGGER = logging.getLogger("test")


def make_trigger(argv: list[str], *, cwd: Path | None = None, kill_after: float = 10.0) -> ExecTrigger:
    env = {
        "PROXBOX_MODE": "continuous",
        "PROXBOX_SCHEDULER_INVOKE": "exec",
        "PROXBOX_SCHEDULER_EXEC_CMD": shlex.join(argv),
    }
    if cwd is not None:
        env["PROXBOX_SCHEDULER_EXEC_CWD"] = str(cwd)
    return ExecTrigger(load(env), kill_after=kill_after)


def make_ctx() -> RunContext:
    return RunContext("r1", RunLogAdapter(LOGGER, {"run_id": "r1"}))


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def run(trigger: ExecTrigger) -> Outcome:
    return asyncio.run(asyncio.wait_for(trigger.run(make_ctx()), GUARD_SECONDS))


class LineWaiter(logging.Handler):
    """Lets a test wait, without sleeping, until the child has printed a given line."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.seen is not None and record.getMessage() == self.text:
            self.seen.set()


@pytest.fixture
def ready_waiter(caplog: pytest.LogCaptureFixture) -> Iterator[LineWaiter]:
    caplog.set_level(logging.INFO, logger="test")
    waiter = LineWaiter("ready")
    LOGGER.addHandler(waiter)
    try:
        yield waiter
    finally:
        LOGGER.removeHandler(waiter)


async def cancel_when_ready(trigger: ExecTrigger, waiter: LineWaiter) -> None:
    """Start a run, cancel it once the child says ``ready``, expect the CancelledError back."""
    waiter.seen = asyncio.Event()
    task = asyncio.create_task(trigger.run(make_ctx()))
    await asyncio.wait_for(waiter.seen.wait(), GUARD_SECONDS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD_SECONDS)


def read_pids(path: Path) -> list[int]:
    pids = [int(p) for p in path.read_text().split()]
    assert pids, "the process tree recorded no pids"
    return pids


def assert_gone(pid: int) -> None:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        assert not (state == "Z" and int(ppid) == os.getpid()), f"pid {pid} is a zombie of ours"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---------------------------------------------------------------- verdicts


def test_exit_zero_is_success() -> None:
    trigger = make_trigger(sh("echo hello"))
    outcome = run(trigger)
    assert outcome.status is Status.SUCCESS
    assert outcome.details == {"exit_code": 0, "stdout_lines": 1, "stderr_lines": 0}


def test_nonzero_exit_names_code_and_stderr_tail() -> None:
    code = "import sys\nfor i in range(1, 9): print(f'err{i}', file=sys.stderr)\nsys.exit(3)"
    outcome = run(make_trigger(python(code)))
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith("exited with code 3; last stderr: ")
    assert "err4 | err5 | err6 | err7 | err8" in outcome.reason
    assert "err3" not in outcome.reason


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_death_by_signal_names_the_signal(sig: signal.Signals) -> None:
    outcome = run(make_trigger(python(f"import os; os.kill(os.getpid(), {int(sig)})")))
    assert outcome.status is Status.FAILURE
    assert outcome.reason == f"killed by {sig.name}"


def test_command_gone_after_validation_is_a_failure(tmp_path: Path) -> None:
    program = tmp_path / "sync.sh"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    trigger = make_trigger([str(program)])
    program.unlink()
    outcome = run(trigger)
    assert outcome.status is Status.FAILURE
    assert outcome.reason == f"cannot start {str(program)!r}: command not found"


def test_runs_in_exec_cwd(tmp_path: Path) -> None:
    outcome = run(make_trigger(sh("pwd > where.txt"), cwd=tmp_path))
    assert outcome.ok
    assert (tmp_path / "where.txt").read_text().strip() == str(tmp_path.resolve())


# ---------------------------------------------------------------- output


def test_output_lines_are_logged_with_stream_and_run_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test")
    assert run(make_trigger(sh("echo out-line; echo err-line >&2"))).ok
    lines = {r.getMessage(): r for r in caplog.records if hasattr(r, "stream")}
    assert lines["out-line"].stream == "stdout"  # type: ignore[attr-defined]
    assert lines["err-line"].stream == "stderr"  # type: ignore[attr-defined]
    assert lines["out-line"].run_id == lines["err-line"].run_id == "r1"  # type: ignore[attr-defined]


def test_endless_line_is_cut_without_holding_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test")
    size = 8_000_000
    code = f"import sys; sys.stdout.write('x' * {size}); sys.stdout.write('\\nafter\\ntail')"
    tracemalloc.start()
    try:
        outcome = run(make_trigger(python(code)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.ok
    said = [r.getMessage() for r in caplog.records if getattr(r, "stream", None) == "stdout"]
    assert said == ["x" * LINE_LIMIT + f" [cut: {size} bytes in all]", "after", "tail"]
    assert peak < size / 4, f"peak {peak} bytes: the long line was held in memory"


def test_output_flood_on_both_pipes_completes() -> None:
    n = 200_000
    code = (
        "import sys\n"
        f"for i in range({n}):\n"
        "    sys.stdout.write(f'out {i}\\n'); sys.stderr.write(f'err {i}\\n')\n"
    )
    outcome = run(make_trigger(python(code)))
    assert outcome.ok
    assert outcome.details["stdout_lines"] == outcome.details["stderr_lines"] == n


# ---------------------------------------------------------------- stopping


def test_cancel_kills_a_tree_that_ignores_sigterm(
    tmp_path: Path, ready_waiter: LineWaiter, caplog: pytest.LogCaptureFixture
) -> None:
    script = "trap '' TERM; sleep 1000 & echo $$ $! > pids; echo ready; wait"
    trigger = make_trigger(sh(script), cwd=tmp_path, kill_after=0.5)
    asyncio.run(cancel_when_ready(trigger, ready_waiter))
    for pid in read_pids(tmp_path / "pids"):
        assert_gone(pid)
    assert any("sending SIGKILL" in r.getMessage() for r in caplog.records)


def test_second_cancel_does_not_abort_the_cleanup(tmp_path: Path, ready_waiter: LineWaiter) -> None:
    script = "trap '' TERM; sleep 1000 & echo $$ $! > pids; echo ready; wait"
    trigger = make_trigger(sh(script), cwd=tmp_path, kill_after=0.5)
    stopping = LineWaiter("run cancelled; stopping the command")
    LOGGER.addHandler(stopping)

    async def cancel_twice() -> None:
        ready_waiter.seen, stopping.seen = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(trigger.run(make_ctx()))
        await asyncio.wait_for(ready_waiter.seen.wait(), GUARD_SECONDS)
        task.cancel()
        await asyncio.wait_for(stopping.seen.wait(), GUARD_SECONDS)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD_SECONDS)

    try:
        asyncio.run(cancel_twice())
    finally:
        LOGGER.removeHandler(stopping)
    for pid in read_pids(tmp_path / "pids"):
        assert_gone(pid)


def test_cancel_stops_a_cooperative_tree_with_sigterm_alone(
    tmp_path: Path, ready_waiter: LineWaiter, caplog: pytest.LogCaptureFixture
) -> None:
    # The grandchild says "ready" itself, once it runs with the default SIGTERM
    # action: a signal landing between fork and exec would otherwise be lost.
    script = """
        trap 'echo got TERM > term.txt; exit 0' TERM
        echo $$ > pids
        sh -c 'echo $$ >> pids; echo ready; exec sleep 1000' &
        wait
    """
    trigger = make_trigger(sh(script), cwd=tmp_path, kill_after=GUARD_SECONDS)
    asyncio.run(cancel_when_ready(trigger, ready_waiter))
    assert (tmp_path / "term.txt").read_text() == "got TERM\n"
    for pid in read_pids(tmp_path / "pids"):
        assert_gone(pid)
    assert not any("SIGKILL" in r.getMessage() for r in caplog.records)


def test_processes_left_behind_after_exit_are_stopped(tmp_path: Path) -> None:
    outcome = run(make_trigger(sh("sleep 1000 & echo $! > pids"), cwd=tmp_path))
    assert outcome.ok
    for pid in read_pids(tmp_path / "pids"):
        assert_gone(pid)
