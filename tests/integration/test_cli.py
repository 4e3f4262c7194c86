"""The command line as a container runs it: real processes, real signals, the emulator on loopback."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from proxbox_scheduler.config import VARIABLES
from tests.support.processes import (
    CLI,
    PYTHON,
    base_env,
    event,
    finished_runs,
    free_port,
    parse_json,
    run_cli,
    running,
)

KEY = "cli-test-key-5f1d0c9e7a"
USER, PASSWORD = "opsuser7", "pa55w0rd-q9z"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.01)).start()
    yield emu
    emu.stop()


def target_env(url: str, **variables: str) -> dict[str, str]:
    """An interval schedule against ``url`` with the status server off, plus overrides."""
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_API_URL=url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
    )
    env.update(variables)
    return env


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# ---------------------------------------------------------------- off and bad configuration


@pytest.mark.parametrize("argv", [[], ["run"]], ids=["no-command", "run"])
def test_mode_off_with_an_empty_environment_exits_0_and_says_so(argv: list[str]) -> None:
    done = run_cli(argv, base_env())
    assert done.returncode == 0, done.stderr
    docs = [parse_json(line) for line in done.stdout.splitlines()]
    assert docs and all(docs), done.stdout
    assert any("scheduling is disabled" in doc["event"] for doc in docs if doc), done.stdout
    assert done.stderr == ""


INVALID = [
    ("mode", {"PROXBOX_MODE": "sometimes"}, "PROXBOX_MODE", "sometimes"),
    ("cron", {"PROXBOX_MODE": "cron=61 * * * *"}, "PROXBOX_MODE", "cron=61 * * * *"),
    ("tz", {"PROXBOX_SCHEDULER_TZ": "Mars/Base"}, "PROXBOX_SCHEDULER_TZ", "Mars/Base"),
    ("url", {"PROXBOX_API_URL": "ftp://x"}, "PROXBOX_API_URL", "ftp://x"),
    (
        "backoff",
        {"PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS": "-1"},
        "PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS",
        "-1",
    ),
    ("port", {"PROXBOX_SCHEDULER_HTTP_PORT": "99999"}, "PROXBOX_SCHEDULER_HTTP_PORT", "99999"),
    ("timeout", {"PROXBOX_API_TIMEOUT": "0"}, "PROXBOX_API_TIMEOUT", "0"),
    ("log-json", {"PROXBOX_SCHEDULER_LOG_JSON": "maybe"}, "PROXBOX_SCHEDULER_LOG_JSON", "maybe"),
    (
        "exec-missing",
        {"PROXBOX_SCHEDULER_INVOKE": "exec", "PROXBOX_SCHEDULER_EXEC_CMD": "no-such-exe-4711 --wait"},
        "PROXBOX_SCHEDULER_EXEC_CMD",
        "no-such-exe-4711",
    ),
    ("both-keys", {"PROXBOX_API_KEY_FILE": "{keyfile}"}, "PROXBOX_API_KEY_FILE", "{keyfile}"),
]


@pytest.mark.parametrize("command", ["run", "once", "check"])
@pytest.mark.parametrize(
    ("variables", "name", "shown"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_an_invalid_variable_exits_2_with_one_line_naming_it(
    command: str, variables: dict[str, str], name: str, shown: str, tmp_path: Path
) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text("file-key-0000\n")
    env = target_env("http://127.0.0.1:9", **{k: v.format(keyfile=keyfile) for k, v in variables.items()})
    done = run_cli([command], env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert name in lines[0]
    assert shown.format(keyfile=keyfile) in lines[0]
    assert done.stdout == "", "nothing may start before the configuration is valid"
    no_traceback(done.stdout, done.stderr)
    assert KEY not in done.stderr and "file-key-0000" not in done.stderr


@pytest.mark.parametrize("command", ["run", "once"])
def test_an_invalid_cron_is_rejected_before_any_request(command: str) -> None:
    emu = Emulator(EmulatorSettings(key=KEY)).start()
    try:
        env = target_env(emu.url, PROXBOX_MODE="cron=61 * * * *", PROXBOX_SCHEDULER_RUN_ON_START="true")
        done = run_cli([command], env)
        assert done.returncode == 2, done.stderr
        assert "PROXBOX_MODE" in done.stderr
        assert emu.request_log == []
        # control: the same target with a valid cron is reached, so the silence above means something
        assert run_cli(["once"], {**env, "PROXBOX_MODE": "cron=30 1 * * *"}).returncode == 0
        assert emu.requests_per_path.get("/full-update/stream") == 1
    finally:
        emu.stop()


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_waiting_exits_0_within_a_second(emulator: Emulator, signum: int) -> None:
    env = target_env(emulator.url, PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1")
    env["PROXBOX_SCHEDULER_HTTP_PORT"] = str(free_port())  # the status server must close promptly too
    before = emulator.requests_per_path.get("/full-update/stream", 0)
    with running([CLI, "run"], env) as proc:
        proc.wait_for(event("waiting for the next run"), timeout=10)
        sent = time.monotonic()
        proc.signal(signum)
        code = proc.popen.wait(timeout=1)
        took = time.monotonic() - sent
        assert code == 0, proc.err.text
        assert took < 1.0
        proc.wait(5)
        name = signal.Signals(signum).name
        proc.wait_for(event(f"{name} received"), timeout=0)
        proc.wait_for(event("stopped"), timeout=0)
        no_traceback(proc.all_output())
    assert emulator.requests_per_path.get("/full-update/stream", 0) == before


def test_sigterm_during_a_run_cancels_it_after_the_grace_and_disconnects() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=30.0, keepalive_interval=1.0)).start()
    try:
        env = target_env(
            emu.url,
            PROXBOX_SCHEDULER_RUN_ON_START="true",
            PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS="1",
        )
        with running([CLI, "run"], env) as proc:
            assert emu.wait_until(lambda: emu.active_runs == 1, timeout=10), proc.all_output()
            sent = time.monotonic()
            proc.signal(signal.SIGTERM)
            code = proc.wait(timeout=8)
            took = time.monotonic() - sent
            assert code == 0, proc.err.text
            assert 0.9 <= took < 5.0, took
            finished = proc.wait_for(event("run finished"), timeout=0)
            assert finished["outcome"] == "failure"
            assert "shutdown" in finished["reason"]
            no_traceback(proc.all_output())
        assert emu.wait_until(lambda: emu.active_runs == 0, timeout=5)
        assert emu.runs[-1].outcome == "disconnected"
    finally:
        emu.stop()


# ---------------------------------------------------------------- check


def test_check_shows_cron_fires_across_the_dst_change() -> None:
    argv = ["check", "--mode", "cron=30 1 * * *", "--tz", "America/New_York"]
    done = run_cli([*argv, "--from", "2026-10-31T12:00", "--count", "3"], target_env("http://x:1"))
    assert done.returncode == 0, done.stderr
    firsts = [line.split()[0] for line in done.stdout.splitlines()]
    assert firsts == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
        "2026-11-03T01:30:00-05:00",
    ]
    assert "configuration valid" in done.stderr


def test_check_shows_interval_fires() -> None:
    argv = ["check", "--mode", "interval=90", "--from", "2026-01-01T00:00:00Z", "--count", "2"]
    done = run_cli(argv, target_env("http://x:1"))
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "2026-01-01T00:01:30+00:00",
        "2026-01-01T00:03:00+00:00",
    ]


def test_check_rejects_a_bad_from() -> None:
    done = run_cli(["check", "--mode", "interval=90", "--from", "yesterday"], target_env("http://x:1"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--from" in lines[0] and "yesterday" in lines[0]
    assert done.stdout == ""
    no_traceback(done.stderr)


def test_check_warns_once_about_an_unknown_variable() -> None:
    env = target_env("http://x:1", PROXBOX_SCHEDULER_HTTP_PROT="9750")
    done = run_cli(["check", "--count", "1"], env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "PROXBOX_SCHEDULER_HTTP_PROT" in line]
    assert len(warnings) == 1 and "did you mean PROXBOX_SCHEDULER_HTTP_PORT?" in warnings[0]


# ---------------------------------------------------------------- version and help


def test_version() -> None:
    done = run_cli(["--version"], base_env())
    assert done.returncode == 0
    assert done.stdout.strip() == f"proxbox-scheduler {version('proxbox-scheduler')}"


def test_python_dash_m_version() -> None:
    done = subprocess.run(
        [PYTHON, "-m", "proxbox_scheduler", "--version"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"proxbox-scheduler {version('proxbox-scheduler')}"


@pytest.mark.parametrize("command", [None, "run", "once", "check", "healthcheck", "emulate-api", "demo"])
def test_help(command: str | None) -> None:
    done = run_cli([*([command] if command else []), "--help"], base_env())
    assert done.returncode == 0, done.stderr
    usage = "usage: proxbox-scheduler" + (f" {command}" if command else "")
    assert done.stdout.startswith(usage), done.stdout[:200]
    assert done.stderr == ""


# ---------------------------------------------------------------- once against the emulator


def test_unknown_variable_warns_once_naming_the_closest_and_still_runs(emulator: Emulator) -> None:
    done = run_cli(["once"], target_env(emulator.url, PROXBOX_SCHEDULER_BACKOF_ON_ERROR_SECONDS="5"))
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in map(parse_json, done.stdout.splitlines()) if doc]
    warnings = [doc for doc in docs if doc["level"] == "warning"]
    assert len(warnings) == 1, warnings
    assert "PROXBOX_SCHEDULER_BACKOF_ON_ERROR_SECONDS" in warnings[0]["event"]
    assert "did you mean PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS" in warnings[0]["event"]
    assert any(doc["event"] == "run finished" and doc["outcome"] == "success" for doc in docs)


@pytest.mark.parametrize("reachable", [True, False], ids=["reachable", "unreachable"])
def test_startup_line_redacts_the_key_and_url_credentials(emulator: Emulator, reachable: bool) -> None:
    port = emulator.port if reachable else free_port()
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"
    ping = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/ping"
    env = target_env(url, PROXBOX_SCHEDULER_PING_URL=ping, PROXBOX_API_CONNECT_TIMEOUT="2")
    done = run_cli(["once"], env)
    assert done.returncode == (0 if reachable else 1), done.stderr
    docs = [doc for doc in map(parse_json, done.stdout.splitlines()) if doc]
    start = next(doc for doc in docs if doc["event"] == "proxbox-scheduler starting")
    config = start["config"]
    assert set(config) == {var.name for var in VARIABLES}, "every variable, effective value"
    assert config["PROXBOX_API_KEY"] == "<set>"
    assert config["PROXBOX_API_URL"] == f"http://***@127.0.0.1:{port}"
    assert config["PROXBOX_SCHEDULER_PING_URL"].startswith("http://***@127.0.0.1:")
    assert config["PROXBOX_MODE"] == "interval=3600"
    assert start["target"] == f"http://***@127.0.0.1:{port}/full-update/stream"
    for secret in (KEY, PASSWORD, USER):
        assert secret not in done.stdout, secret
        assert secret not in done.stderr, secret


def test_once_success_exits_0(emulator: Emulator) -> None:
    done = run_cli(["once"], target_env(emulator.url))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    docs = [doc for doc in map(parse_json, done.stdout.splitlines()) if doc]
    finished = [doc for doc in docs if doc["event"] == "run finished"]
    assert len(finished) == 1 and finished[0]["outcome"] == "success"
    assert finished[0]["run_id"]


def test_once_failure_exits_1_with_the_reason() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, fail_every=1)).start()
    try:
        done = run_cli(["once"], target_env(emu.url))
    finally:
        emu.stop()
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxbox-scheduler: run failed: "), done.stderr
    reason = lines[0].removeprefix("proxbox-scheduler: run failed: ")
    assert reason
    finished = finished_runs(done.stdout)
    assert finished[0]["outcome"] == "failure" and finished[0]["reason"] == reason
    no_traceback(done.stdout, done.stderr)


def test_once_skips_with_exit_0_while_proxbox_api_is_busy() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=5.0, keepalive_interval=1.0)).start()
    try:
        headers = {"X-Proxbox-API-Key": KEY}
        with (
            httpx.Client(base_url=emu.url, headers=headers, timeout=10) as client,
            client.stream("GET", "/full-update/stream") as other,
        ):
            assert other.status_code == 200
            assert client.get("/sync/active").json()["active"] is True
            done = run_cli(["once"], target_env(emu.url))
            assert emu.runs_started == 1, "the skipped run must not start a sync"
        assert done.returncode == 0, done.stderr
        assert "skipped" in done.stderr
        finished = finished_runs(done.stdout)
        assert finished[0]["outcome"] == "skipped"
    finally:
        emu.stop()


def test_once_with_a_wrong_key_exits_1_saying_the_key_was_rejected(emulator: Emulator) -> None:
    done = run_cli(["once"], target_env(emulator.url, PROXBOX_API_KEY="wrong-key-77aa"))
    assert done.returncode == 1
    assert "run failed: " in done.stderr and "API key rejected" in done.stderr, done.stderr
    assert "wrong-key-77aa" not in done.stdout + done.stderr
