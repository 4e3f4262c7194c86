"""NetBox awareness through the real CLI: a loopback server answering like NetBox's Jobs API,
the proxbox-api emulator for `http`, a small script for `exec`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.http import http_get, metric, metrics_samples
from tests.support.netbox_jobs import FakeNetBox, job
from tests.support.processes import CLI, base_env, event, free_port, log_docs, poll, run_cli, running

KEY = "nb-coord-api-key-31c7"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
V2_TOKEN = "nbt_AbC123.s3cr3t-plaintext-v2"
CLI_JOB = job(50, "Proxbox Sync: Full update (CLI)", "running", started="2026-12-01T12:01:21.861728Z")
PENDING_JOB = job(51, "Proxbox Sync: Full update (CLI)", "pending")
RECURRING = job(7, "Proxbox Sync", "scheduled", interval=60, scheduled="2099-01-01T00:00:00Z")
OTHER = job(8, "Search cache update", "running", started="2026-12-01T12:00:00Z")
STREAM = "/full-update/stream"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(key=KEY)).start()
    yield emu
    emu.stop()


@pytest.fixture
def netbox() -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        yield nb


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "ran"


def exec_cmd(marker: Path, *extra: str) -> str:
    """A stand-in for `manage.py proxbox_sync`: appends a line to ``marker`` each time it runs."""
    script = marker.parent / "fake_manage.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write('ran\\n')\n")
    return " ".join([sys.executable, str(script), str(marker), "proxbox_sync", "--wait", *extra])


def env_for(invoke: str, emulator: Emulator, netbox_url: str, marker: Path, **extra: str) -> dict[str, str]:
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_SCHEDULER_INVOKE=invoke,
        PROXBOX_API_URL=emulator.url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
        PROXBOX_SCHEDULER_EXEC_CMD=exec_cmd(marker),
        PROXBOX_SCHEDULER_NETBOX_URL=netbox_url,
        PROXBOX_SCHEDULER_NETBOX_TOKEN=TOKEN,
        PROXBOX_SCHEDULER_NETBOX_TIMEOUT="2",
    )
    env.update(extra)
    return env


def runs_done(invoke: str, emulator: Emulator, marker: Path) -> int:
    """How many syncs the invoke actually started (streams served, or command runs)."""
    if invoke == "http":
        return emulator.requests_per_path.get(STREAM, 0)
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and "s3cr3t" not in text and "Traceback" not in text


# ---------------------------------------------------------------- once


@pytest.mark.parametrize("invoke", ["http", "exec"])
@pytest.mark.parametrize("busy_job", [CLI_JOB, PENDING_JOB], ids=["running", "pending"])
def test_once_skips_as_busy_naming_the_netbox_job(
    invoke: str, busy_job: dict, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    netbox.scenario.jobs = [OTHER, RECURRING, busy_job]
    done = run_cli(["once"], env_for(invoke, emulator, netbox.url, marker))
    assert done.returncode == 0, done.stderr
    ident, name, status = busy_job["id"], busy_job["name"], busy_job["status"]["value"]
    assert f"run skipped: NetBox job {ident} {name!r} {status} since " in done.stderr
    assert runs_done(invoke, emulator, marker) == 0
    finished = [d for d in log_docs(done.stdout) if d.get("event") == "run finished"]
    assert [d["outcome"] for d in finished] == ["skipped"]
    assert netbox.requests()[0].authorization == f"Token {TOKEN}"
    no_secret(done.stdout, done.stderr)


@pytest.mark.parametrize("invoke", ["http", "exec"])
def test_once_runs_when_netbox_has_only_other_jobs_and_a_later_schedule(
    invoke: str, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    netbox.scenario.jobs = [OTHER, RECURRING, job(9, "Proxbox Sync: Full update (CLI)", "completed")]
    done = run_cli(
        ["once"], env_for(invoke, emulator, netbox.url, marker, PROXBOX_SCHEDULER_NETBOX_TOKEN=V2_TOKEN)
    )
    assert done.returncode == 0, done.stderr
    assert runs_done(invoke, emulator, marker) == 1
    seen = netbox.requests()
    assert len(seen) == 1 and seen[0].authorization == f"Bearer {V2_TOKEN}"
    assert seen[0].query["name__isw"] == ["Proxbox Sync"]
    assert sorted(seen[0].query["status"]) == ["pending", "running", "scheduled"]
    no_secret(done.stdout, done.stderr)


def unreachable(kind: str, netbox: FakeNetBox) -> tuple[str, str]:
    """A NetBox that cannot be asked: its URL and the words the reason must contain."""
    if kind == "closed-port":
        return f"http://127.0.0.1:{free_port()}", "connection refused"
    if kind == "hanging":
        netbox.scenario.hang = True
        return netbox.url, "did not answer within 1 s"
    if kind == "wrong-path":
        return netbox.url + "/not-netbox", "no Jobs API at"
    netbox.scenario.status = {"401": 401, "403": 403, "500": 500}[kind]
    said = {"401": "rejected the token (HTTP 401)", "403": "rejected the token (HTTP 403)", "500": "HTTP 500"}
    return netbox.url, said[kind]


KINDS = ["closed-port", "hanging", "401", "403", "500", "wrong-path"]


@pytest.mark.parametrize("invoke", ["http", "exec"])
@pytest.mark.parametrize("kind", KINDS)
def test_once_skips_when_netbox_cannot_be_asked_within_the_timeout(
    invoke: str, kind: str, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    url, said = unreachable(kind, netbox)
    env = env_for(invoke, emulator, url, marker, PROXBOX_SCHEDULER_NETBOX_TIMEOUT="1")
    done = run_cli(["once"], env, timeout=20)
    assert done.returncode == 1, done.stderr
    assert "run skipped: NetBox cannot be asked (" in done.stderr and said in done.stderr
    assert "PROXBOX_SCHEDULER_NETBOX_UNREACHABLE=skip" in done.stderr
    assert runs_done(invoke, emulator, marker) == 0
    no_secret(done.stdout, done.stderr)


@pytest.mark.parametrize("invoke", ["http", "exec"])
@pytest.mark.parametrize("kind", ["closed-port", "hanging"])
def test_policy_run_goes_ahead_when_netbox_cannot_be_asked(
    invoke: str, kind: str, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    url, said = unreachable(kind, netbox)
    env = env_for(
        invoke,
        emulator,
        url,
        marker,
        PROXBOX_SCHEDULER_NETBOX_TIMEOUT="1",
        PROXBOX_SCHEDULER_NETBOX_UNREACHABLE="run",
    )
    done = run_cli(["once"], env, timeout=20)
    assert done.returncode == 0, done.stderr
    assert runs_done(invoke, emulator, marker) == 1
    warned = [
        d for d in log_docs(done.stdout) if str(d.get("event", "")).startswith("NetBox cannot be asked")
    ]
    assert warned and said in warned[0]["event"] and "runs go ahead unchecked" in warned[0]["event"]


# ---------------------------------------------------------------- run: skips, recovery, one line per change


@pytest.mark.parametrize("invoke", ["http", "exec"])
def test_run_skips_while_netbox_is_busy_then_the_next_fire_succeeds(
    invoke: str, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    netbox.scenario.jobs = [CLI_JOB]
    port = free_port()
    env = env_for(
        invoke,
        emulator,
        netbox.url,
        marker,
        PROXBOX_MODE="interval=0.5",
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
    )
    with running([CLI, "run"], env) as proc:
        start = proc.wait_for(event("proxbox-scheduler starting"), 10)
        assert start["netbox_awareness"] == "on"
        skipped = proc.wait_for(event("run finished", outcome="skipped"), 15)
        assert skipped["reason"].startswith("NetBox job 50 'Proxbox Sync: Full update (CLI)' running since")
        proc.wait_for(event("run finished", outcome="skipped"), 15, since=proc.out.mark())
        assert runs_done(invoke, emulator, marker) == 0
        netbox.scenario.jobs = [RECURRING]
        proc.wait_for(event("run finished", outcome="success"), 15)
        samples = metrics_samples(http_get(f"http://127.0.0.1:{port}/metrics").text)
        assert metric(samples, "proxbox_scheduler_netbox_reachable") == 1
        assert metric(samples, "proxbox_scheduler_skips_total", job="default", reason="busy") >= 2
    assert runs_done(invoke, emulator, marker) >= 1


def test_run_logs_reachability_once_per_change_and_counts_unreachable_skips(
    emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    port = free_port()
    netbox.scenario.status = 500
    env = env_for(
        "http",
        emulator,
        netbox.url,
        marker,
        PROXBOX_MODE="interval=0.3",
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
    )
    with running([CLI, "run"], env) as proc:
        for _ in range(3):
            proc.wait_for(event("run finished", outcome="skipped"), 15, since=proc.out.mark())
        samples = metrics_samples(http_get(f"http://127.0.0.1:{port}/metrics").text)
        assert metric(samples, "proxbox_scheduler_netbox_reachable") == 0
        assert (
            metric(samples, "proxbox_scheduler_skips_total", job="default", reason="netbox_unreachable") >= 3
        )
        netbox.scenario.status = 200
        proc.wait_for(event("run finished", outcome="success"), 15)
        netbox.scenario.status = 401
        proc.wait_for(event("run finished", outcome="skipped"), 15)
        mark = proc.out.mark()
        proc.wait_for(event("run finished", outcome="skipped"), 15, since=mark)
    said = [
        str(d.get("event")) for d in proc.out.json_lines() if str(d.get("event", "")).startswith("NetBox ")
    ]
    assert [s.split(":")[0] for s in said] == [
        "NetBox cannot be asked",
        "NetBox answered",
        "NetBox cannot be asked",
    ]
    assert "HTTP 500" in said[0] and "rejected the token (HTTP 401)" in said[2]
    assert emulator.requests_per_path.get(STREAM, 0) == 1


def test_run_with_netbox_hanging_keeps_firing_bounded_by_the_timeout(
    emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    netbox.scenario.hang = True
    env = env_for(
        "exec",
        emulator,
        netbox.url,
        marker,
        PROXBOX_MODE="interval=0.2",
        PROXBOX_SCHEDULER_NETBOX_TIMEOUT="0.5",
    )
    with running([CLI, "run"], env) as proc:
        first = proc.wait_for(event("run finished", outcome="skipped"), 15)
        second = proc.wait_for(event("run finished", outcome="skipped"), 15, since=proc.out.mark())
    assert "did not answer within 0.5 s" in first["reason"]
    # each check ended by the bound, not by the server: the run lasted the timeout, not the hang
    assert first["duration_s"] < 5 and second["duration_s"] < 5
    assert runs_done("exec", emulator, marker) == 0


# ---------------------------------------------------------------- --enqueue-once


def test_enqueue_once_is_refused_while_a_recurring_schedule_exists(
    emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    netbox.scenario.jobs = [RECURRING]
    env = env_for(
        "exec", emulator, netbox.url, marker, PROXBOX_SCHEDULER_EXEC_CMD=exec_cmd(marker, "--enqueue-once")
    )
    done = run_cli(["once"], env)
    assert done.returncode == 1, done.stderr
    warnings = [d for d in log_docs(done.stdout) if "passes --enqueue-once" in str(d.get("event", ""))]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert "run failed: refusing to run" in done.stderr
    assert (
        "--enqueue-once deletes NetBox's recurring schedule (NetBox job 7 'Proxbox Sync' every 60 min"
        in done.stderr
    )
    assert runs_done("exec", emulator, marker) == 0
    netbox.scenario.jobs = []
    done = run_cli(["once"], env)
    assert done.returncode == 0, done.stderr
    assert runs_done("exec", emulator, marker) == 1


def test_enqueue_once_without_awareness_warns_once_at_start_and_in_check(
    emulator: Emulator, marker: Path
) -> None:
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_SCHEDULER_INVOKE="exec",
        PROXBOX_SCHEDULER_EXEC_CMD=exec_cmd(marker, "--enqueue-once"),
    )
    done = run_cli(["once"], env)
    assert done.returncode == 0, done.stderr
    warnings = [d for d in log_docs(done.stdout) if "passes --enqueue-once" in str(d.get("event", ""))]
    assert len(warnings) == 1
    assert "set PROXBOX_SCHEDULER_NETBOX_URL so that the scheduler refuses" in warnings[0]["event"]
    checked = run_cli(["check", "--count", "1"], env)
    assert checked.returncode == 0
    assert checked.stderr.count("passes --enqueue-once") == 1
    assert "# NetBox awareness: off" in checked.stderr


# ---------------------------------------------------------------- check --probe


def test_check_probe_asks_both_once(emulator: Emulator, netbox: FakeNetBox, marker: Path) -> None:
    netbox.scenario.jobs = [RECURRING, CLI_JOB]
    done = run_cli(["check", "--count", "1", "--probe"], env_for("http", emulator, netbox.url, marker))
    assert done.returncode == 0, done.stderr
    assert "# NetBox awareness: on (" in done.stderr
    assert "probe: NetBox: answered at " in done.stdout
    assert "busy (NetBox job 50 'Proxbox Sync: Full update (CLI)' running since" in done.stdout
    assert "recurring schedule: NetBox job 7 'Proxbox Sync' every 60 min" in done.stdout
    assert "probe: proxbox-api: answered at " in done.stdout
    assert len(netbox.requests()) == 1 and emulator.requests_per_path.get(STREAM, 0) == 0
    no_secret(done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        (
            "token",
            "probe failed: NetBox: NetBox rejected the token (HTTP 401): "
            "check PROXBOX_SCHEDULER_NETBOX_TOKEN",
        ),
        ("url", "probe failed: NetBox: no Jobs API at "),
        ("down", "probe failed: NetBox: connection refused to http://127.0.0.1:"),
        ("api-key", "probe failed: proxbox-api: "),
    ],
)
def test_check_probe_fails_with_a_clear_error(
    setup: str, said: str, emulator: Emulator, netbox: FakeNetBox, marker: Path
) -> None:
    env = env_for("http", emulator, netbox.url, marker)
    if setup == "token":
        netbox.scenario.status = 401
    elif setup == "url":
        env["PROXBOX_SCHEDULER_NETBOX_URL"] = netbox.url + "/wrong"
    elif setup == "down":
        env["PROXBOX_SCHEDULER_NETBOX_URL"] = f"http://127.0.0.1:{free_port()}"
    else:
        env["PROXBOX_API_KEY"] = "wrong-key-for-the-probe"
    done = run_cli(["check", "--count", "1", "--probe"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert said in done.stderr
    no_secret(done.stdout, done.stderr)


def test_check_probe_with_bad_config_exits_2_before_asking(netbox: FakeNetBox) -> None:
    env = base_env(PROXBOX_SCHEDULER_NETBOX_URL=netbox.url)
    done = run_cli(["check", "--probe"], env)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "proxbox-scheduler: PROXBOX_SCHEDULER_NETBOX_TOKEN='' is invalid: required with"
    )
    assert netbox.requests() == []


# ---------------------------------------------------------------- a sync that synced nothing


def test_a_success_with_zero_objects_after_one_with_objects_is_degraded(
    netbox: FakeNetBox, marker: Path
) -> None:
    emu = Emulator(EmulatorSettings(key=KEY, empty_from=2, devices=3, virtual_machines=5)).start()
    port = free_port()
    env = base_env(
        PROXBOX_MODE="interval=0.3",
        PROXBOX_API_URL=emu.url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
    )
    try:
        with running([CLI, "run"], env) as proc:
            proc.wait_for(event("run finished", outcome="success"), 15)
            degraded = proc.wait_for(event("run finished", outcome="degraded"), 15)
            samples = poll(
                lambda: (
                    (s := metrics_samples(http_get(f"http://127.0.0.1:{port}/metrics").text))
                    and metric(s, "proxbox_scheduler_runs_total", job="default", outcome="degraded") >= 1
                    and s
                ),
                10,
                "the degraded run in /metrics",
            )
            status = http_get(f"http://127.0.0.1:{port}/status").json()
    finally:
        emu.stop()
    assert degraded["reason"] == "synced 0 objects (last success: 3 devices, 5 VMs)"
    assert metric(samples, "proxbox_scheduler_last_sync_objects", job="default", kind="devices") == 0
    assert "synced 0 objects" in str(status)
