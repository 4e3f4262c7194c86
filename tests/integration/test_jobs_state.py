"""Several jobs in one `run` process against the emulator, and the state file across restarts.

Real processes and servers on loopback; the state file lives in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from proxbox_scheduler.state import Counters, RunStart, SqliteStore
from tests.support.http import http_get, metric, metrics_samples
from tests.support.processes import CLI, Proc, base_env, event, free_port, parse_json, poll, run_cli, running

KEY = "jobs-test-key-4f1c"
VM_STAGE = "/virtualization/virtual-machines/create/stream"


def jobs_file(tmp_path: Path, emu: Emulator) -> Path:
    command = f'["{sys.executable}", "-c", "print(\'exec job ok\')"]'
    text = f"""
state_path = "{tmp_path / "state.db"}"
[targets.main]
url = "{emu.url}"
key = "{KEY}"
[[jobs]]
name = "full"
mode = "cron=0 2 * * *"
target = "main"
[[jobs]]
name = "vms"
mode = "interval=1"
target = "main"
path = "{VM_STAGE}"
params = {{ endpoint_ids = "1" }}
[[jobs]]
name = "netbox-cli"
mode = "interval=1"
invoke = "exec"
command = {command}
"""
    path = tmp_path / "jobs.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def scheduler(env: dict[str, str]) -> Iterator[tuple[Proc, str]]:
    port = free_port()
    env = {**env, "PROXBOX_SCHEDULER_HTTP_HOST": "127.0.0.1", "PROXBOX_SCHEDULER_HTTP_PORT": str(port)}
    with running([CLI, "run"], env) as proc:
        proc.wait_for(event("status server listening"), timeout=10)
        yield proc, f"http://127.0.0.1:{port}"


def status(base: str, query: str = "") -> Any:
    return http_get(base + "/status" + query).json()


def job_entry(base: str, name: str) -> dict[str, Any]:
    return next(job for job in status(base)["jobs"] if job["name"] == name)


def test_three_jobs_run_on_their_schedules_with_per_job_status_and_metrics(tmp_path: Path) -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.002)).start()
    try:
        env = base_env(PROXBOX_SCHEDULER_CONFIG=str(jobs_file(tmp_path, emu)))
        with scheduler(env) as (proc, base):

            def both_ran_twice() -> bool:
                jobs = {job["name"]: job for job in status(base)["jobs"]}
                return all(len(jobs[n]["runs"]) >= 2 for n in ("vms", "netbox-cli"))

            poll(both_ran_twice, 20, "two runs of vms and of netbox-cli")
            snap = status(base)
            assert [job["name"] for job in snap["jobs"]] == ["full", "vms", "netbox-cli"]
            full, vms, cli = snap["jobs"]
            assert full["runs"] == [] and full["next_fire"].startswith(
                (datetime.now(UTC) + timedelta(days=1)).date().isoformat()[:4]
            )
            assert all(run["outcome"] == "success" for run in vms["runs"] + cli["runs"])
            assert cli["invoke"] == "exec" and vms["target"].endswith(f"{VM_STAGE}?endpoint_ids=1")
            for run in vms["runs"]:  # one stage of one, with the VM count the stage reported
                assert run["counts"] == {"virtual_machines": 2}, run
                assert [(st["stage"], st["index"], st["count"]) for st in run["stages"]] == [
                    ("virtual-machines", 1, 2)
                ], run
            assert snap["mode"] == full["mode"] == "cron=0 2 * * *"  # top level: the first job
            for key in ("name", "mode", "zone", "invoke", "target", "state", "next_fire", "current",
                        "last_success", "consecutive_failures", "runs"):  # fmt: skip
                assert key in vms, key
            assert status(base, "?job=vms")["name"] == "vms"
            assert http_get(base + "/status?job=nope").status == 404
            samples = metrics_samples(http_get(base + "/metrics").text)
            assert metric(samples, "proxbox_scheduler_runs_total", job="vms", outcome="success") >= 2
            assert metric(samples, "proxbox_scheduler_runs_total", job="netbox-cli", outcome="success") >= 2
            assert metric(samples, "proxbox_scheduler_runs_total", job="full", outcome="success") == 0
            assert http_get(base + "/").text.count('class="card"') == 3
            streams = {(r.path, r.query) for r in emu.request_log if r.path != "/sync/active"}
            assert streams == {(VM_STAGE, "endpoint_ids=1")}
            finished = [run for run in emu.runs if run.outcome is not None]  # one may be in flight
            assert len(finished) >= 2
            assert {(run.kind, run.endpoint_ids, run.outcome) for run in finished} == {
                ("virtual-machines", (1,), "ok")
            }
            assert proc.wait_for(event("run finished", job="netbox-cli"), timeout=5)
            assert KEY not in proc.all_output()
    finally:
        emu.stop()


def single_job_env(tmp_path: Path, emu: Emulator, **variables: str) -> dict[str, str]:
    return base_env(
        **{
            "PROXBOX_MODE": "interval=3600",
            "PROXBOX_API_URL": emu.url,
            "PROXBOX_API_KEY": KEY,
            "PROXBOX_SCHEDULER_STATE_PATH": str(tmp_path / "state.db"),
            **variables,
        }
    )


def test_history_survives_restarts_and_a_kill_mid_run_is_shown_interrupted(tmp_path: Path) -> None:
    fast = Emulator(EmulatorSettings(key=KEY, stage_delay=0.002)).start()
    slow = Emulator(EmulatorSettings(key=KEY, stage_delay=5)).start()
    try:
        with scheduler(single_job_env(tmp_path, fast, PROXBOX_SCHEDULER_RUN_ON_START="true")) as (proc, base):
            proc.wait_for(event("run finished", outcome="success"), timeout=10)
            first = poll(lambda: status(base)["last_success"], 5, "a last success")
        with scheduler(single_job_env(tmp_path, slow, PROXBOX_SCHEDULER_RUN_ON_START="true")) as (proc, base):
            started = proc.wait_for(event("run started"), timeout=10)
            proc.signal(signal.SIGKILL)
            proc.wait(timeout=10)
        with scheduler(single_job_env(tmp_path, fast)) as (proc, base):
            found = proc.wait_for(
                event("a run was interrupted by the end of the previous process"), timeout=5
            )
            assert found["run_id"] == started["run_id"]
            snap = status(base)
            runs = snap["runs"]
            assert [run["outcome"] for run in runs] == ["interrupted", "success"]
            assert runs[0]["id"] == started["run_id"] and runs[0]["duration_s"] is None
            assert snap["last_success"] == first and snap["jobs"][0]["last_success"] == first
            samples = metrics_samples(http_get(base + "/metrics").text)
            assert metric(samples, "proxbox_scheduler_runs_total", job="default", outcome="interrupted") == 1
            last = metric(samples, "proxbox_scheduler_last_success_timestamp_seconds", job="default")
            assert abs(last - datetime.fromisoformat(first).timestamp()) < 0.001  # /status shows ms
            assert "interrupted" in http_get(base + "/").text
    finally:
        fast.stop()
        slow.stop()


def remember_a_slot(path: Path, slot: datetime) -> None:
    """A state file whose job `default` last ran ``slot`` (as a previous process would leave it)."""

    async def write() -> None:
        store = SqliteStore(path)
        await store.open()
        start = RunStart("earlier-run", "default", slot, "scheduled", slot)
        await store.run_started(start)
        await store.run_finished(start.finish(slot, 1.0, "success"), Counters())
        await store.close()

    asyncio.run(write())


def test_catchup_latest_runs_the_missed_fire_once_and_skip_does_not(tmp_path: Path) -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.002)).start()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    remember_a_slot(tmp_path / "state.db", hour - timedelta(hours=2))  # missed: hour-1h and hour
    hourly = {"PROXBOX_MODE": "cron=0 * * * *", "PROXBOX_SCHEDULER_STARTING_DEADLINE_SECONDS": "7200"}
    try:
        skip = single_job_env(tmp_path, emu, **hourly, PROXBOX_SCHEDULER_CATCHUP="skip")
        with scheduler(skip) as (proc, base):
            skipped = proc.wait_for(event("skipped scheduled fires", skip_reason="missed"), timeout=10)
            assert skipped["count"] == 2 and len(status(base)["runs"]) == 1  # only the remembered run
        latest = single_job_env(tmp_path, emu, **hourly, PROXBOX_SCHEDULER_CATCHUP="latest")
        remember_a_slot(tmp_path / "state.db", hour - timedelta(hours=2))
        with scheduler(latest) as (proc, base):
            proc.wait_for(event("run finished", outcome="success"), timeout=10)
            skipped = proc.wait_for(event("skipped scheduled fires", skip_reason="missed"), timeout=5)
            assert skipped["count"] == 1
            poll(lambda: len(status(base)["runs"]) == 2, 5, "the catch-up run in /status")
        with scheduler(latest) as (proc, base):  # that slot ran: a restart does not run it again
            proc.wait_for(event("waiting for the next run"), timeout=10)
            assert len(status(base)["runs"]) == 2
            assert not [line for line in proc.out.lines if '"run started"' in line]
    finally:
        emu.stop()


def test_once_while_a_scheduler_holds_the_state_file_runs_without_recording(tmp_path: Path) -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.002)).start()
    try:
        env = single_job_env(tmp_path, emu)
        with scheduler(env) as (_, base):
            done = run_cli(["once"], {**env, "PROXBOX_SCHEDULER_HTTP_PORT": "0"})
            assert done.returncode == 0, done.stderr
            assert "in use by another process" in done.stdout and "not recorded" in done.stdout
            assert status(base)["runs"] == []
        other = run_cli(["once", "nope"], env)
        assert other.returncode == 2 and "configured jobs: default" in other.stderr
    finally:
        emu.stop()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator(EmulatorSettings(key=KEY)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def write_jobs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_jobs_failure_names_the_file_keys_to_fix_not_the_variables(
    tmp_path: Path, emu: Emulator
) -> None:
    path = write_jobs(
        tmp_path,
        f'[targets.main]\nurl = "{emu.url}"\nkey = "{KEY}"\n'
        '[[jobs]]\nname = "vms"\nmode = "interval=300"\ntarget = "main"\npath = "/no/such/stream"\n',
    )
    done = run_cli(["once", "vms"], base_env(PROXBOX_SCHEDULER_CONFIG=str(path), PROXBOX_LOG_JSON="true"))
    assert done.returncode == 1, done.stdout
    finished = [
        doc for doc in map(parse_json, done.stdout.splitlines()) if doc and event("run finished")(doc)
    ]
    reason = finished[0]["reason"]
    assert "HTTP 404" in reason and f"{path}: [targets.main]: url and {path}: job vms: path" in reason
    assert "PROXBOX_" not in reason


def test_check_probe_asks_each_proxbox_api_of_the_file_once(tmp_path: Path, emu: Emulator) -> None:
    path = write_jobs(
        tmp_path,
        f'[targets.a]\nurl = "{emu.url}"\nkey = "{KEY}"\n'
        f'[targets.b]\nurl = "http://127.0.0.1:{free_port()}"\nkey = "{KEY}"\n'
        '[[jobs]]\nname = "full"\nmode = "cron=0 2 * * *"\ntarget = "a"\n'
        '[[jobs]]\nname = "vms"\nmode = "interval=300"\ntarget = "a"\n'
        '[[jobs]]\nname = "other"\nmode = "interval=300"\ntarget = "b"\n'
        '[[jobs]]\nname = "loose"\nmode = "interval=300"\n',  # the variables' target: same URL, other key
    )
    env = base_env(PROXBOX_SCHEDULER_CONFIG=str(path), PROXBOX_API_URL=emu.url, PROXBOX_API_KEY="wrong-key-1")
    done = run_cli(["check", "--count", "1", "--probe"], env)
    assert done.returncode == 1
    assert "probe: proxbox-api (jobs full, vms): answered at " in done.stdout
    assert "probe failed: proxbox-api (jobs other): cannot ask http://127.0.0.1:" in done.stderr
    assert f"({path}: [targets.b]: url?)" in done.stderr
    assert "probe failed: proxbox-api (jobs loose): " in done.stderr and "401" in done.stderr
    assert emu.requests_per_path.get("/sync/active") == 2
    assert KEY not in done.stdout + done.stderr and "wrong-key-1" not in done.stdout + done.stderr


def test_a_job_that_is_off_needs_no_target_and_the_others_run(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path,
        f'[[jobs]]\nname = "cli"\nmode = "interval=60"\ninvoke = "exec"\ncommand = ["{sys.executable}", "-V"]'
        '\n[[jobs]]\nname = "parked"\nmode = "off"\n',  # http, no URL anywhere: it never runs
    )
    with scheduler(base_env(PROXBOX_SCHEDULER_CONFIG=str(path))) as (proc, base):
        assert proc.wait_for(event("waiting for the next run", job="cli"), timeout=10)
        assert [(job["name"], job["state"]) for job in status(base)["jobs"]] == [
            ("cli", "waiting"),
            ("parked", "off"),
        ]
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "Traceback" not in proc.all_output()
