"""The exec invoke running the real plugin command: `NETBOX_CMD proxbox_sync --wait`.

The command enqueues a NetBox Job on the RQ `default` queue and waits for the
worker to finish it; the scheduler only sees the command's exit and output.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import OnceResult, Stack, run_once

pytestmark = pytest.mark.e2e

JOB_NAME = "Proxbox Sync: Full update (CLI)"


def exec_once(stack: Stack, timeout: float = 300.0, **env: str) -> OnceResult:
    command = shlex.join([*stack.netbox_cmd, "proxbox_sync", "--wait"])
    return run_once(
        stack, timeout=timeout, PROXBOX_SCHEDULER_INVOKE="exec", PROXBOX_SCHEDULER_EXEC_CMD=command, **env
    )


def cli_jobs(stack: Stack) -> list[dict[str, Any]]:
    """The plugin's CLI-enqueued Jobs, newest first."""
    return stack.netbox("/api/core/jobs/", name=JOB_NAME, ordering="-id", limit="50")["results"]


def wait_jobs_settled(stack: Stack, timeout: float = 180.0) -> None:
    """No CLI Job left pending or running (so the next case has the stack to itself)."""
    deadline = time.monotonic() + timeout
    while any(j["status"]["value"] in ("pending", "scheduled", "running") for j in cli_jobs(stack)):
        assert time.monotonic() < deadline, f"CLI jobs did not settle: {cli_jobs(stack)[:3]}"
        time.sleep(1.0)


def command_processes(stack: Stack) -> list[str]:
    """Command lines of running `proxbox_sync` processes of this stack."""
    root = str(Path(stack.values["STACK_DIR"]))
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "proxbox_sync" in line and root in line and "proxbox_scheduler" not in line:
                found.append(f"{proc.name}: {line}")
    return found


def test_exec_succeeds_when_the_job_completes(stack: Stack) -> None:
    before = {j["id"] for j in cli_jobs(stack)}
    result = exec_once(stack)
    assert result.returncode == 0, result.explain()
    assert [r.get("outcome") for r in result.events("run finished")] == ["success"], result.explain()
    new = [j for j in cli_jobs(stack) if j["id"] not in before]
    assert [j["status"]["value"] for j in new] == ["completed"], new
    said = [str(r.get("event", "")) for r in result.records if r.get("stream")]
    assert any("completed" in line for line in said), said


def test_exec_fails_with_the_commands_reason_when_the_job_errors(stack: Stack) -> None:
    with stack.faulted("proxmox-404", "/nodes/pve01/network"):
        result = exec_once(stack)
    wait_jobs_settled(stack)
    assert result.returncode == 1, result.explain()
    finished = result.events("run finished")
    assert [r.get("outcome") for r in finished] == ["failure"], result.explain()
    reason = finished[0].get("reason", "")
    assert "exited with code 1" in reason, reason
    assert "errored" in reason, reason


def test_exec_without_a_worker_is_ended_by_the_run_timeout(stack: Stack) -> None:
    limit = 40
    try:
        stack.fault("worker-stop")
        started = time.monotonic()
        result = exec_once(stack, timeout=limit + 60, PROXBOX_API_TIMEOUT=str(limit))
        took = time.monotonic() - started
        leftovers = command_processes(stack)
    finally:
        stack.clear_faults()  # the worker again: it runs the Job the command left enqueued
    wait_jobs_settled(stack)
    assert result.returncode == 1, result.explain()
    finished = result.events("run finished")
    assert [r.get("outcome") for r in finished] == ["failure"], result.explain()
    reason = finished[0].get("reason", "")
    assert "PROXBOX_API_TIMEOUT" in reason and "the command did not finish" in reason, reason
    assert limit <= took <= limit + 30, f"{took:.1f} s\n{result.explain()}"
    assert leftovers == [], leftovers  # the whole process group was killed
