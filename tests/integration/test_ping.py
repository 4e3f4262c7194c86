"""Dead-man's-switch pings from real processes to a local receiver: order, run ids, and resilience."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.http import PingServer
from tests.support.processes import CLI, base_env, event, finished_runs, free_port, log_docs, run_cli, running

KEY = "ping-test-key-c0ffee1234"
PATH = "/ping/abc"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.005)).start()
    yield emu
    emu.stop()


def env_for(emu: Emulator, ping_url: str, **variables: str) -> dict[str, str]:
    env = base_env(
        PROXBOX_MODE="interval=1",
        PROXBOX_API_URL=emu.url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
        PROXBOX_SCHEDULER_PING_URL=ping_url,
    )
    env.update(variables)
    return env


def rid(query: str) -> str:
    values = parse_qs(query)["rid"]
    assert len(values) == 1
    uuid.UUID(values[0])  # a UUID, or ValueError
    return values[0]


def test_once_pings_start_then_success_with_the_run_id(emulator: Emulator) -> None:
    with PingServer() as pings:
        done = run_cli(["once"], env_for(emulator, pings.url))
        assert done.returncode == 0, done.stderr
        hits = pings.wait_hits(2, timeout=5)
    assert [path for path, _ in hits] == [f"{PATH}/start", PATH]
    assert rid(hits[0][1]) == rid(hits[1][1])
    [finished] = finished_runs(done.stdout)
    assert finished["outcome"] == "success" and finished["run_id"] == rid(hits[0][1])


def test_run_pings_each_run_in_order_with_its_own_id(emulator: Emulator) -> None:
    with PingServer() as pings:
        env = env_for(emulator, pings.url, PROXBOX_SCHEDULER_RUN_ON_START="true")
        with running([CLI, "run"], env) as proc:
            first = proc.wait_for(event("run finished", outcome="success"), timeout=10)
            second = proc.wait_for(
                lambda d: d.get("event") == "run finished" and d.get("run_id") != first["run_id"], timeout=10
            )
            assert second["outcome"] == "success"
            proc.signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        hits = pings.wait_hits(4, timeout=5)
    paths = [path for path, _ in hits]
    ids = [rid(query) for _, query in hits]
    assert paths[:4] == [f"{PATH}/start", PATH, f"{PATH}/start", PATH]
    assert ids[0] == ids[1] == first["run_id"]
    assert ids[2] == ids[3] == second["run_id"]
    assert ids[0] != ids[2]


def test_a_failing_run_pings_start_then_fail() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, fail_every=1)).start()
    try:
        with PingServer() as pings:
            done = run_cli(["once"], env_for(emu, pings.url))
            hits = pings.wait_hits(2, timeout=5)
    finally:
        emu.stop()
    assert done.returncode == 1
    assert [path for path, _ in hits] == [f"{PATH}/start", f"{PATH}/fail"]
    assert rid(hits[0][1]) == rid(hits[1][1])


def test_a_skipped_run_pings_start_then_log() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=5.0, keepalive_interval=1.0)).start()
    try:
        with (
            PingServer() as pings,
            httpx.Client(base_url=emu.url, headers={"X-Proxbox-API-Key": KEY}, timeout=10) as client,
            client.stream("GET", "/full-update/stream") as other,
        ):
            assert other.status_code == 200
            assert client.get("/sync/active").json()["active"] is True
            done = run_cli(["once"], env_for(emu, pings.url))
            hits = pings.wait_hits(2, timeout=5)
    finally:
        emu.stop()
    assert done.returncode == 0 and "skipped" in done.stderr
    assert [path for path, _ in hits] == [f"{PATH}/start", f"{PATH}/log"]
    assert rid(hits[0][1]) == rid(hits[1][1])


@pytest.mark.parametrize("receiver", ["closed-port", "http-500"])
def test_a_broken_ping_receiver_never_fails_the_run(emulator: Emulator, receiver: str) -> None:
    if receiver == "closed-port":
        done = run_cli(["once"], env_for(emulator, f"http://127.0.0.1:{free_port()}{PATH}"))
    else:
        with PingServer(status=500) as pings:
            done = run_cli(["once"], env_for(emulator, pings.url))
            assert len(pings.wait_hits(2, timeout=5)) == 2
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    warnings = [d for d in log_docs(done.stdout) if d["level"] == "warning" and d["logger"].endswith(".ping")]
    assert warnings, done.stdout
    expected = "failed" if receiver == "closed-port" else "HTTP 500"
    assert all(expected in doc["event"] for doc in warnings), warnings
    assert finished_runs(done.stdout)[0]["outcome"] == "success"


def test_a_stalling_ping_receiver_delays_neither_the_run_nor_the_exit_much(emulator: Emulator) -> None:
    with PingServer(delay=10.0) as pings:
        started = time.monotonic()
        done = run_cli(["once"], env_for(emulator, pings.url), timeout=20)
        took = time.monotonic() - started
        assert pings.hits, "the start ping must have been attempted"
    assert done.returncode == 0, done.stderr
    [finished] = finished_runs(done.stdout)
    assert finished["outcome"] == "success"
    assert finished["duration_s"] < 3.0, "the run itself must not wait on pings"
    # queued pings get a bounded join at exit (ping.py: close(timeout=6.0))
    assert took < 8.5, took
