"""Run now, pause and resume over the ops port and with `ctl`, against a real scheduler process."""

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
