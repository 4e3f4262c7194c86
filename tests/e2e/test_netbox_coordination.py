"""NetBox awareness on the real stack (NetBox 4.7 + netbox-proxbox + RQ worker + proxbox-api).

Written against the session fixture of tests/e2e/conftest.py on the e2e-stack branch
(``stack`` with ``values`` NETBOX_URL/NETBOX_TOKEN/NETBOX_CMD, ``fault``, ``netbox``,
``run_once``, ``spawn``). It shows: a recurring NetBox-side schedule created through the
plugin's Schedule Sync REST endpoint survives scheduler runs of either invoke and is deleted
by an explicit ``proxbox_sync --wait --enqueue-once`` (why the exec default changed); a
NetBox-side job pending or running makes both invokes skip as busy naming it, and the next
fire after it finishes succeeds; with NetBox stopped the unreachable policy holds, bounded.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SchedulerProcess, Stack, run_once

pytestmark = pytest.mark.e2e

SCHEDULE = "/api/plugins/proxbox/sync/schedule/"
JOBS = "/api/core/jobs/"
ENQUEUED = ("pending", "scheduled", "running")


# ---------------------------------------------------------------- NetBox, as an operator drives it


def nb(stack: Stack, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        stack.netbox_url + path,
        json=body,
        headers={"Authorization": f"Token {stack.values['NETBOX_TOKEN']}", "Accept": "application/json"},
        timeout=60.0,
    )


def proxbox_jobs(stack: Stack) -> list[dict[str, Any]]:
    """Every enqueued "Proxbox Sync…" job, oldest first."""
    params = [("name__isw", "Proxbox Sync"), *(("status", s) for s in ENQUEUED), ("ordering", "id")]
    response = httpx.get(
        stack.netbox_url + JOBS,
        params=params,
        headers={"Authorization": f"Token {stack.values['NETBOX_TOKEN']}"},
        timeout=60.0,
    )
    response.raise_for_status()
    return response.json()["results"]


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.5)
    return found


def schedule_sync(stack: Stack, at: datetime, interval_minutes: int | None) -> dict[str, Any]:
    """The plugin's Schedule Sync, as its form or REST API does it; returns the job it created."""
    endpoints = nb(stack, "GET", "/api/plugins/proxbox/endpoints/proxmox/").json()["results"]
    before = {j["id"] for j in proxbox_jobs(stack)}
    body: dict[str, Any] = {
        "sync_types": ["all"],
        "proxmox_endpoint_ids": [endpoints[0]["id"]],
        "schedule_at": at.isoformat(),
    }
    if interval_minutes is not None:
        body.update(interval_value=interval_minutes, interval_unit="minutes")
    response = nb(stack, "POST", SCHEDULE, body)
    assert response.status_code == 201, response.text
    return wait_until(
        lambda: next((j for j in proxbox_jobs(stack) if j["id"] not in before), None), 30, "scheduled job"
    )


def schedule_now(stack: Stack) -> dict[str, Any]:
    """A one-shot sync a few seconds ahead (the endpoint refuses a time not in the future), once due."""
    at = datetime.now(UTC) + timedelta(seconds=5)
    job = schedule_sync(stack, at, None)
    wait_until(lambda: datetime.now(UTC) > at, 30, "the job's scheduled time")
    return job


def job_row(stack: Stack, ident: int) -> dict[str, Any] | None:
    response = nb(stack, "GET", f"{JOBS}{ident}/")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def delete_jobs(stack: Stack, ids: list[int]) -> None:
    """The Jobs API is read-only: remove leftovers with NetBox's own shell."""
    if ids:
        code = f"from core.models import Job; Job.objects.filter(pk__in={ids!r}).delete()"
        subprocess.run(
            [*stack.netbox_cmd, "shell", "-c", code], capture_output=True, timeout=120, check=False
        )


def wait_settled(stack: Stack, keep: frozenset[int] = frozenset(), timeout: float = 240.0) -> None:
    """No proxbox job left pending or running (recurring ones in ``keep`` may stay scheduled)."""
    wait_until(
        lambda: not [j for j in proxbox_jobs(stack) if j["id"] not in keep], timeout, "settled NetBox jobs"
    )


# ---------------------------------------------------------------- the scheduler with awareness on


def aware(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        "PROXBOX_SCHEDULER_NETBOX_URL": stack.netbox_url,
        "PROXBOX_SCHEDULER_NETBOX_TOKEN": stack.values["NETBOX_TOKEN"],
        "PROXBOX_SCHEDULER_NETBOX_TIMEOUT": "5",
        **extra,
    }


def exec_env(stack: Stack, *flags: str) -> dict[str, str]:
    command = shlex.join([*stack.netbox_cmd, "proxbox_sync", "--wait", *flags])
    return {"PROXBOX_SCHEDULER_INVOKE": "exec", "PROXBOX_SCHEDULER_EXEC_CMD": command}


def stream_requests(stack: Stack, since: int) -> int:
    return sum('"GET /full-update/stream' in line for line in stack.access_lines(since))


# ---------------------------------------------------------------- a recurring NetBox schedule


def test_recurring_schedule_survives_scheduler_runs_and_enqueue_once_deletes_it(stack: Stack) -> None:
    recurring = schedule_sync(stack, datetime.now(UTC) + timedelta(days=1), 60)
    assert (recurring["name"], recurring["interval"]) == ("Proxbox Sync", 60)
    try:
        for env in ({}, aware(stack), exec_env(stack), {**exec_env(stack), **aware(stack)}):
            result = run_once(stack, timeout=300, **env)
            assert result.returncode == 0, result.explain()
            assert [r["outcome"] for r in result.events("run finished")] == ["success"], result.explain()
            row = job_row(stack, recurring["id"])
            assert row is not None and row["interval"] == 60, f"schedule gone after {env}"
        refused = run_once(stack, timeout=120, **exec_env(stack, "--enqueue-once"), **aware(stack))
        assert refused.returncode == 1, refused.explain()
        assert f"NetBox job {recurring['id']} 'Proxbox Sync' every 60 min" in refused.stderr
        assert job_row(stack, recurring["id"]) is not None
        wait_settled(stack, keep=frozenset({recurring["id"]}))
        subprocess.run(
            [*stack.netbox_cmd, "proxbox_sync", "--wait", "--enqueue-once"], capture_output=True, timeout=300
        )
        assert job_row(stack, recurring["id"]) is None, "enqueue_once left the recurring schedule alone"
    finally:
        delete_jobs(stack, [j["id"] for j in proxbox_jobs(stack) if j.get("interval")])
        wait_settled(stack)


# ---------------------------------------------------------------- a NetBox-side job in progress


def test_pending_netbox_job_skips_both_invokes_and_the_next_fire_succeeds(stack: Stack, spawn: Any) -> None:
    stack.fault("worker-stop")
    try:
        pending = schedule_now(stack)
        named = f"NetBox job {pending['id']} {pending['name']!r} "
        for env in ({}, exec_env(stack)):
            since = stack.log_offset()
            result = run_once(stack, timeout=120, **env, **aware(stack))
            assert result.returncode == 0, result.explain()
            assert f"run skipped: {named}" in result.stderr, result.explain()
            assert stream_requests(stack, since) == 0
        proc: SchedulerProcess = spawn(
            **aware(stack, PROXBOX_MODE="interval=20", PROXBOX_SCHEDULER_RUN_ON_START="true")
        )
        skipped = proc.wait_for(lambda r: r.get("event") == "run finished", 60, "the first fire")
        assert skipped["outcome"] == "skipped" and skipped["reason"].startswith(named), proc.explain()
    finally:
        stack.clear_faults()
    wait_settled(stack)
    done = proc.wait_for(
        lambda r: r.get("event") == "run finished" and r.get("outcome") == "success", 120, "a successful fire"
    )
    assert done["outcome"] == "success"
    proc.terminate()


@pytest.mark.parametrize("invoke", ["http", "exec"])
def test_running_netbox_job_skips_as_busy_naming_it(stack: Stack, invoke: str) -> None:
    with stack.faulted("netbox-latency", "400"):
        job = schedule_now(stack)
        wait_until(
            lambda: any(
                j["id"] == job["id"] and j["status"]["value"] == "running" for j in proxbox_jobs(stack)
            ),
            120,
            "the NetBox job running",
        )
        since = stack.log_offset()
        env = exec_env(stack) if invoke == "exec" else {}
        result = run_once(stack, timeout=120, **env, **aware(stack))
        assert result.returncode == 0, result.explain()
        assert f"run skipped: NetBox job {job['id']} {job['name']!r} running since " in result.stderr
        assert stream_requests(stack, since) == 0
    wait_settled(stack)


# ---------------------------------------------------------------- NetBox down


def test_netbox_stopped_skips_by_default_and_runs_with_policy_run_bounded(stack: Stack, spawn: Any) -> None:
    with stack.faulted("netbox-stop"):
        since = stack.log_offset()
        result = run_once(stack, timeout=60, **aware(stack, PROXBOX_SCHEDULER_NETBOX_TIMEOUT="3"))
        assert result.returncode == 1, result.explain()
        assert "run skipped: NetBox cannot be asked (connection refused" in result.stderr, result.explain()
        assert stream_requests(stack, since) == 0
        # bounded: the check ended with the refusal, well inside PROXBOX_SCHEDULER_NETBOX_TIMEOUT
        assert [r["duration_s"] < 3 for r in result.events("run finished")] == [True], result.explain()
        proc: SchedulerProcess = spawn(**aware(stack, PROXBOX_MODE="interval=2"))
        for _ in range(2):
            proc.wait_for(
                lambda r: (
                    r.get("event") == "run finished"
                    and r.get("outcome") == "skipped"
                    and "NetBox cannot be asked" in str(r.get("reason"))
                ),
                30,
                "a skipped fire",
            )
        proc.terminate()
        warnings = [r for r in proc.records if str(r.get("event", "")).startswith("NetBox cannot be asked")]
        assert len(warnings) == 1, proc.explain()
        since = stack.log_offset()
        anyway = run_once(stack, timeout=300, **aware(stack, PROXBOX_SCHEDULER_NETBOX_UNREACHABLE="run"))
        assert "runs go ahead unchecked" in anyway.stdout, anyway.explain()
        assert stream_requests(stack, since) == 1, anyway.explain()
