"""Issue 10, processes and signals: daemonizing commands, PID 1, SIGHUP, early SIGTERM, pings, log lines.

Every test drives the real CLI; leftover processes are found by a unique
argument (a sleep duration) and always cleaned up by the test.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import signal
import subprocess
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hostile import kill_all, pids_with_arg
from tests.support.http import PingServer
from tests.support.processes import CLI, PYTHON, base_env, event, log_docs, poll, run_cli, running


@pytest.fixture
def marker() -> Iterator[str]:
    """A sleep duration no other process uses; whatever carries it is killed at the end."""
    value = f"7{uuid.uuid4().int % 10**6}.5"
    yield value
    kill_all(pids_with_arg(value))


def exec_env(command: str, **variables: str) -> dict[str, str]:
    env = base_env(
        PROXBOX_SCHEDULER_INVOKE="exec",
        PROXBOX_SCHEDULER_EXEC_CMD=command,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
    )
    env.update(variables)
    return env


def daemonizing(marker: str) -> str:
    """A command that leaves a SIGTERM-ignoring sleep in its own session and exits at once."""
    inner = f"trap '' TERM; exec sleep {marker}"
    return "sh -c " + shlex.quote(
        f"setsid sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1 & echo started"
    )


def test_a_daemonizing_command_leaves_nothing_behind(marker: str) -> None:
    done = run_cli(["once"], exec_env(daemonizing(marker)))
    assert done.returncode == 0, done.stdout + done.stderr
    poll(lambda: not pids_with_arg(marker), 10, f"no process left with sleep {marker}")


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid:
                found.append((int(entry.name), fields[0]))
    return found


def test_as_pid_1_orphans_are_reaped_not_left_as_zombies(marker: str) -> None:
    short = f"0.{marker.replace('.', '')}"  # under a second: each run's orphan ends, a zombie unless reaped
    inner = f"exec sleep {short}"
    command = "sh -c " + shlex.quote(
        f"setsid sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1 & echo started"
    )
    env = exec_env(command, PROXBOX_MODE="interval=0.5", PROXBOX_SCHEDULER_RUN_ON_START="true")
    args = ["unshare", "--pid", "--mount-proc", "--kill-child=SIGTERM", CLI, "run"]
    with running(args, env) as proc:
        for _ in range(4):
            proc.wait_for(event("run finished"), timeout=20, since=proc.out.mark())
        scheduler = poll(lambda: _children(proc.pid), 5, "the scheduler under unshare")[0][0]
        # every run's orphan would be dead by now (it sleeps well under a second)
        poll(lambda: not pids_with_arg(short), 10, "the short sleeps to end")
        zombies = [pid for pid, state in _children(scheduler) if state == "Z"]
    assert zombies == [], zombies


def test_sighup_stops_like_sigterm_and_stops_the_command(marker: str) -> None:
    env = exec_env(
        f"sleep {marker}",
        PROXBOX_MODE="interval=3600",
        PROXBOX_SCHEDULER_RUN_ON_START="true",
        PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS="0",
    )
    with running([CLI, "run"], env) as proc:
        proc.wait_for(event("started sleep"), timeout=15)
        proc.signal(signal.SIGHUP)
        code = proc.wait(timeout=30)
    assert code == 0, proc.all_output()
    assert any(doc["event"] == "SIGHUP received: stopping" for doc in log_docs(proc.out.text))
    poll(lambda: not pids_with_arg(marker), 10, "the command to be stopped")


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2])
def test_sigusr_is_a_stop_not_a_silent_death(sig: signal.Signals) -> None:
    with running([CLI, "run"], exec_env("true", PROXBOX_MODE="interval=3600")) as proc:
        proc.wait_for(event("waiting for the next run"), timeout=15)
        proc.signal(sig)
        assert proc.wait(timeout=15) == 0, proc.all_output()
    assert f"{sig.name} received: stopping" in proc.out.text


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_closing_the_terminal_of_once_stops_the_run_cleanly(marker: str) -> None:
    master, slave = pty.openpty()
    env = exec_env(f"sleep {marker}", PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS="0", TERM="dumb")
    child = subprocess.Popen(
        [CLI, "once"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=_controlling_tty,
    )
    os.close(slave)
    try:
        poll(lambda: pids_with_arg(marker), 15, "the command to start")
        os.close(master)  # the terminal goes away: the kernel sends SIGHUP to its session
        code = child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 1, code  # the run was stopped (a failure), not a death by SIGHUP (-1)
    poll(lambda: not pids_with_arg(marker), 10, "the command to be stopped")


def _has_loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("entry", [[CLI], [PYTHON, "-m", "proxbox_scheduler"]], ids=["script", "module"])
def test_sigterm_during_startup_exits_0(entry: list[str]) -> None:
    """SIGTERM as soon as the imports are under way (ssl is loaded by the configuration module)."""
    env = base_env(
        PROXBOX_MODE="interval=3600", PROXBOX_API_URL="http://127.0.0.1:9", PROXBOX_SCHEDULER_HTTP_PORT="0"
    )
    with running([*entry, "run"], env) as proc:
        deadline = time.monotonic() + 15
        while not _has_loaded(proc.pid, "_ssl") and time.monotonic() < deadline:
            pass  # a busy poll: the window is tens of milliseconds wide
        proc.signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, (code, proc.all_output())


def test_a_hanging_ping_endpoint_delays_shutdown_at_most_the_documented_wait() -> None:
    with PingServer(delay=60) as pings:
        env = exec_env("true", PROXBOX_SCHEDULER_PING_URL=pings.url)
        started = time.monotonic()
        done = run_cli(["once"], env, timeout=30)
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "pings still pending at shutdown; not waiting longer than 1 s" in done.stdout
    assert took < 15, took


def test_text_logs_escape_a_carriage_return_from_the_command() -> None:
    forged = "2026-01-01T00:00:00.000Z ERROR   forged line"
    command = "printf " + shlex.quote(f"ok\\r{forged}\\n")
    done = run_cli(["once"], exec_env(command, PROXBOX_SCHEDULER_LOG_JSON="false"))
    assert done.returncode == 0, done.stderr
    assert not any(line.startswith(forged) for line in done.stdout.splitlines()), done.stdout
    assert "ok\\r" + forged in done.stdout


def test_once_logs_mode_once_when_the_mode_is_unset() -> None:
    done = run_cli(["once"], exec_env("true"))
    assert done.returncode == 0, done.stderr
    started = [doc for doc in log_docs(done.stdout) if doc["event"] == "run started"]
    assert [doc["mode"] for doc in started] == ["once"]
