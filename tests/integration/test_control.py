"""Run now, pause and resume over the ops port and with `ctl`, against a real scheduler process
(one job from the variables, and several from a job file with a state file across a restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.console import KEY, TOKEN, Console, console, token_file
from tests.support.processes import base_env, event, poll, run_cli


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.002)).start()
    yield emu
    emu.stop()


@pytest.fixture
def controlled(emulator: Emulator, tmp_path: Path) -> Iterator[Console]:
    with console(emulator, token_file(tmp_path)) as running:
        yield running


def test_run_now_starts_a_manual_run_that_lands_in_the_history(controlled: Console) -> None:
    answer = controlled.post("/jobs/default/run")
    assert answer.status == 202 and answer.json()["result"] == "run requested"
    [run] = poll(controlled.runs, 15, "the manual run to finish")
    assert run["trigger"] == "manual" and run["outcome"] == "success"
    started = controlled.proc.wait_for(event("run started", run_id=run["id"]), timeout=5)
    assert started["trigger"] == "manual"
    assert len(run["stages"]) == 12 and run["end"] >= run["start"]
    assert controlled.get("/status").json()["jobs"][0]["next_fire"]  # the hourly slot is still ahead


@pytest.mark.parametrize("header", [None, "wrong-token-0123456789", TOKEN + "x", ""])
def test_a_missing_or_wrong_token_gets_the_same_401(controlled: Console, header: str | None) -> None:
    answer = controlled.post("/jobs/default/run", token=header)
    assert answer.status == 401 and answer.json() == {"error": "unauthorized"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "Set-Cookie" not in answer.headers
    assert controlled.runs() == []


def test_pause_and_resume_show_in_the_status(controlled: Console) -> None:
    assert controlled.post("/jobs/default/pause").json()["paused"] is True
    job = controlled.get("/status?job=default").json()
    assert job["state"] == "paused" and job["paused"] is True
    assert controlled.post("/jobs/default/resume").json()["paused"] is False
    assert controlled.get("/status?job=default").json()["state"] == "waiting"
    controlled.proc.wait_for(event("job paused"), timeout=5)
    controlled.proc.wait_for(event("job resumed"), timeout=5)


def test_unknown_job_and_action_are_404_after_the_token(controlled: Console) -> None:
    assert controlled.post("/jobs/nope/run").status == 404
    assert controlled.post("/jobs/default/explode").status == 404
    assert controlled.post("/jobs/nope/run", token="bad-token-0123456789").status == 401


def test_the_token_never_appears_in_logs_status_or_page(controlled: Console) -> None:
    controlled.post("/jobs/default/run")
    poll(controlled.runs, 15, "the run")
    seen = controlled.get("/status").text + controlled.get("/").text + controlled.get("/openapi.json").text
    controlled.proc.stop()
    assert TOKEN not in seen
    assert TOKEN not in controlled.proc.all_output()


def test_ctl_runs_pauses_and_resumes(controlled: Console, tmp_path: Path) -> None:
    env = base_env()
    path = str(tmp_path / "control-token")
    done = run_cli(["ctl", "pause", "default", "--url", controlled.url, "--token-file", path], env)
    assert done.returncode == 0 and done.stdout.strip() == "default: paused", done.stderr
    done = run_cli(["ctl", "run", "default", "--url", controlled.url, "--token-file", path], env)
    assert done.returncode == 0 and "run requested" in done.stdout
    [run] = poll(controlled.runs, 15, "the manual run of a paused job")
    assert run["trigger"] == "manual"
    done = run_cli(["ctl", "resume", "default", "--url", controlled.url, "--token-file", path], env)
    assert done.returncode == 0 and done.stdout.strip() == "default: resumed"


def test_ctl_with_a_wrong_token_exits_1_and_without_one_exits_2(controlled: Console, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-0123456789\n", encoding="utf-8")
    done = run_cli(["ctl", "run", "default", "--url", controlled.url, "--token-file", str(wrong)], base_env())
    assert done.returncode == 1 and "HTTP 401" in done.stderr
    done = run_cli(["ctl", "run", "default", "--url", controlled.url], base_env())
    assert done.returncode == 2 and "PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_a_token_file_control_is_off(emulator: Emulator) -> None:
    with console(emulator, None) as off:
        answer = off.post("/jobs/default/run")
        assert answer.status == 404 and "control is off" in answer.json()["error"]
        assert 'data-action="run"' not in off.get("/").text
        assert off.runs() == []


@pytest.mark.parametrize(
    ("content", "why"),
    [("short\n", "at least 16"), ("two words here 0123456789\n", "printable ASCII"), ("", "at least 16")],
)
def test_a_bad_token_file_exits_2_with_one_line(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    env = base_env(
        PROXBOX_MODE="interval=60",
        PROXBOX_API_URL="http://127.0.0.1:9",
        PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE=str(path),
    )
    done = run_cli(["run"], env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE" in line and why in line and str(path) in line
    assert content.strip() not in line or not content.strip()


JOBS = """
[[jobs]]
name = "full"
mode = "interval=3600"
[[jobs]]
name = "vms"
mode = "interval=3600"
"""


def _env(tmp_path: Path) -> dict[str, str]:
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS, encoding="utf-8")
    return {"PROXBOX_SCHEDULER_CONFIG": str(jobs), "PROXBOX_SCHEDULER_STATE_PATH": str(tmp_path / "state.db")}


def _job(ops: Console, name: str) -> dict:
    return ops.get(f"/status?job={name}").json()


def test_each_job_is_controlled_on_its_own_and_a_pause_survives_a_restart(
    emulator: Emulator, tmp_path: Path
) -> None:
    env, token = _env(tmp_path), token_file(tmp_path)
    with console(emulator, token, **env) as ops:
        page = ops.get("/").body.decode()
        assert 'id="job-full"' in page and 'id="job-vms"' in page
        assert ops.post("/jobs/vms/pause").json() == {
            "job": "vms", "action": "pause", "result": "paused", "paused": True,
        }  # fmt: skip
        assert _job(ops, "vms")["state"] == "paused" and _job(ops, "full")["state"] == "waiting"
        assert ops.post("/jobs/full/run").status == 202
        [run] = poll(lambda: _job(ops, "full")["runs"], 15, "the manual run of job full")
        assert run["trigger"] == "manual" and run["outcome"] == "success"
        assert _job(ops, "vms")["runs"] == []
        status = ops.get("/status").json()
        assert [job["name"] for job in status["jobs"]] == ["full", "vms"] and status["runs"] == [run]
    with console(emulator, token, **env) as again:
        vms, full = _job(again, "vms"), _job(again, "full")
        assert vms["paused"] is True and vms["state"] == "paused"
        assert [(r["id"], r["trigger"]) for r in full["runs"]] == [(run["id"], "manual")]
        assert again.post("/jobs/vms/resume").json()["paused"] is False
        assert 'id="job-vms"' in again.get("/").body.decode()
