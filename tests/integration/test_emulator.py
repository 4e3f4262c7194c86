"""The proxbox-api emulator against the wire contract (shared/spec/proxbox-api.md).

The expectations here are written from the contract and the captured samples,
not from the emulator's own constants, so a drift in either direction fails.
"""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.captures import STREAMS, captured_stages, stream_events
from tests.support.processes import BIN_DIR, CLI

KEY = "emulator-test-key"
AUTH = {"X-Proxbox-API-Key": KEY}

# The stage order of the real capture, not the emulator's (nor the scheduler's) own list.
CONTRACT_STAGES = captured_stages()
COUNT_KEYS = [
    "devices_count",
    "storage_count",
    "virtual_machines_count",
    "virtual_disks_count",
    "task_history_count",
    "backups_count",
    "snapshots_count",
    "node_interfaces_count",
    "vm_interfaces_count",
    "vm_ip_addresses_count",
    "replications_count",
    "backup_routines_count",
]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

Item = tuple[str, Any]  # ("event name", data) or (":", comment text)


def sse(lines: Iterator[str]) -> Iterator[Item]:
    """Parse SSE lines into events and comments; data must be exactly one JSON line."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        if line.startswith(":"):
            yield ":", line[1:].strip()
        elif line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "":
            if name is not None:
                assert len(data) == 1, f"{name}: expected one data line, got {len(data)}"
                yield name, json.loads(data[0])
            name, data = None, []
        else:
            raise AssertionError(f"unexpected SSE line {line[:80]!r}")


def read_stream(client: httpx.Client, **params: Any) -> tuple[httpx.Response, list[Item]]:
    with client.stream("GET", "/full-update/stream", params=params) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, list(sse(response.iter_lines()))


def events(items: list[Item]) -> list[Item]:
    return [item for item in items if item[0] != ":"]


def stage_steps(items: list[Item]) -> list[tuple[str, str]]:
    return [
        (data["step"], data["status"])
        for name, data in items
        if name == "step" and data["step"] in CONTRACT_STAGES
    ]


@pytest.fixture
def client_for():
    clients: list[httpx.Client] = []

    def make(emulator: Emulator, headers: dict[str, str] | None = None) -> httpx.Client:
        client = httpx.Client(base_url=emulator.url, headers=headers, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_ok_stream_follows_the_contract(client_for) -> None:
    with Emulator(EmulatorSettings(key=KEY, devices=2, virtual_machines=5)) as emu:
        response, items = read_stream(client_for(emu, AUTH))

    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["transfer-encoding"] == "chunked"

    evs = events(items)
    assert evs[0][0] == "bootstrap_done"
    assert evs[1][0] == "step"
    assert evs[1][1]["step"] == "stream" and evs[1][1]["status"] == "started"
    operation_id = re.search(rf"\(operation_id=({UUID})\)", evs[1][1]["message"]).group(1)
    assert evs[2][0] == "discovery"
    assert evs[2][1]["phase"] == "full-update" and evs[2][1]["count"] == 12
    assert sorted(item["name"] for item in evs[2][1]["items"]) == sorted(CONTRACT_STAGES)
    assert evs[2][1]["metadata"]["operation_id"] == operation_id

    expected = [(stage, status) for stage in CONTRACT_STAGES for status in ("started", "completed")]
    assert stage_steps(evs) == expected
    for name, data in evs:
        if name == "step" and data["step"] in CONTRACT_STAGES and data["status"] == "completed":
            assert isinstance(data["duration_seconds"], float)
            assert set(data["result"]) in ({"count"}, {"created", "updated"})
    assert {name for name, _ in evs} >= {"discovery", "item_progress", "phase_summary"}

    name, complete = evs[-1]
    assert name == "complete"
    assert complete["ok"] is True
    assert complete["message"] == "Full update sync completed."
    result = complete["result"]
    assert all(type(result[key]) is int for key in COUNT_KEYS)
    assert result["devices_count"] == 2 and result["virtual_machines_count"] == 5
    assert len(result["devices"]) == 2 and len(result["virtual_machines"]) == 5
    assert not any(name in ("error", "error_detail") for name, _ in evs)
    assert [run.outcome for run in emu.runs] == ["ok"]
    assert emu.runs[0].id == operation_id
    assert emu.runs_completed == 1


def test_second_run_updates_what_the_first_created(client_for) -> None:
    with Emulator() as emu:
        client = client_for(emu)
        first = dict(events(read_stream(client)[1]))
        second = dict(events(read_stream(client)[1]))
    assert first["bootstrap_done"]["created"] and not first["bootstrap_done"]["unchanged"]
    assert second["bootstrap_done"]["unchanged"] and not second["bootstrap_done"]["created"]
    assert second["complete"]["result"]["virtual_disks"]["updated"] == 2
    assert emu.runs_started == 2


def test_keepalive_comments_fill_a_slow_stage(client_for) -> None:
    settings = EmulatorSettings(slow_stages={"task-history": 0.6}, keepalive_interval=0.1)
    with Emulator(settings) as emu:
        _, items = read_stream(client_for(emu))
    start = items.index(
        (
            "step",
            {
                "step": "task-history",
                "status": "started",
                "message": "Starting task history synchronization.",
            },
        )
    )
    end = next(
        i
        for i, (name, data) in enumerate(items)
        if name == "step" and data["step"] == "task-history" and data["status"] == "completed"
    )
    keepalives = [i for i, item in enumerate(items) if item == (":", "keepalive")]
    assert len(keepalives) >= 3
    assert all(start < i < end for i in keepalives)
    assert items[end][1]["duration_seconds"] >= 0.6


def test_missing_and_wrong_key_count_down_then_lock_out(client_for) -> None:
    with Emulator(EmulatorSettings(key=KEY)) as emu:
        client = client_for(emu)
        for _ in range(3):  # a missing key never counts toward the lockout
            response = client.get("/full-update/stream")
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"detail": "API key required. 5 attempts remaining."}

        wrong = {"X-Proxbox-API-Key": "wrong-key"}
        details = [client.get("/full-update/stream", headers=wrong) for _ in range(5)]
        assert [r.status_code for r in details] == [401] * 5
        assert [r.json()["detail"] for r in details] == [
            "Invalid API key. 4 attempts remaining.",
            "Invalid API key. 3 attempts remaining.",
            "Invalid API key. 2 attempts remaining.",
            "Invalid API key. 1 attempts remaining.",
            "Invalid API key.",
        ]
        locked = client.get("/full-update/stream", headers=wrong)
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "300"
        assert locked.headers["content-type"] == "application/json"
        assert locked.json() == {"detail": "Too many failed authentication attempts. Please try again later."}
        assert client.get("/sync/active", headers=wrong).status_code == 429

        # The lockout is per (client, key): another wrong key starts afresh, the valid key works.
        other = client.get("/sync/active", headers={"X-Proxbox-API-Key": "another-wrong"})
        assert other.json() == {"detail": "Invalid API key. 4 attempts remaining."}
        assert client.get("/sync/active", headers=AUTH).status_code == 200
        response, items = read_stream(client_for(emu, AUTH))
        assert response.status_code == 200 and events(items)[-1][1]["ok"] is True

    assert emu.runs_started == 1
    assert emu.status_counts[429] == 2


def test_lockout_expires(client_for) -> None:
    with Emulator(EmulatorSettings(key=KEY, lockout_after=2, lockout_seconds=0)) as emu:
        client = client_for(emu, {"X-Proxbox-API-Key": "wrong"})
        details = [client.get("/sync/active").json()["detail"] for _ in range(3)]
    assert details == [
        "Invalid API key. 1 attempts remaining.",
        "Invalid API key.",
        "Invalid API key. 1 attempts remaining.",
    ]


def test_failing_run_has_the_real_failure_shape(client_for) -> None:
    with Emulator(EmulatorSettings(fail_every=1, fail_stage="snapshots")) as emu:
        response, items = read_stream(client_for(emu))
    evs = events(items)
    assert response.status_code == 200
    assert stage_steps(evs)[-1] == ("snapshots", "started")
    assert ("backups", "completed") in stage_steps(evs)
    names = [name for name, _ in evs]
    assert names[-4:] == ["error_detail", "error_detail", "error", "complete"]
    error, complete = evs[-2][1], evs[-1][1]
    assert set(error) == {"step", "status", "error", "detail"}
    assert error["step"] == "full-update" and error["status"] == "failed"
    assert complete["ok"] is False
    assert complete["message"] == error["error"]
    assert complete["errors"] == [{"detail": error["detail"]}]
    assert emu.wait_until(lambda: [run.outcome for run in emu.runs] == ["failed"])
    assert emu.runs_completed == 1


def test_fail_every_second_run(client_for) -> None:
    with Emulator(EmulatorSettings(fail_every=2)) as emu:
        client = client_for(emu)
        oks = [events(read_stream(client)[1])[-1][1]["ok"] for _ in range(4)]
    assert oks == [True, False, True, False]


def test_cut_stream_ends_without_a_terminal_event(client_for) -> None:
    with Emulator(EmulatorSettings(cut_every=1, fail_stage="backups")) as emu:
        seen: list[Item] = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client_for(emu).stream("GET", "/full-update/stream") as response,
        ):
            for item in sse(response.iter_lines()):
                seen.append(item)
        assert emu.wait_until(lambda: [run.outcome for run in emu.runs] == ["cut"])
        assert emu.runs_completed == 0
    assert stage_steps(seen)[-1] == ("backups", "started")
    assert not {"complete", "error"} & {name for name, _ in seen}


def test_clean_cut_ends_the_body_without_a_terminal_event(client_for) -> None:
    with Emulator(EmulatorSettings(cut_every=1, cut_mode="clean")) as emu:
        response, items = read_stream(client_for(emu))
    assert response.status_code == 200
    assert items and not {"complete", "error"} & {name for name, _ in items}


def test_sync_active_reports_concurrent_runs(client_for) -> None:
    settings = EmulatorSettings(key=KEY, slow_stages={"storage": 30})
    with Emulator(settings) as emu:
        client = client_for(emu, AUTH)
        assert client.get("/sync/active").json() == {
            "active": False,
            "started_at": None,
            "id": None,
            "kind": None,
            "runs": [],
        }
        with (
            client.stream("GET", "/full-update/stream") as first,
            client.stream("GET", "/full-update/stream") as second,
        ):
            # Keep the iterators referenced: httpx closes a stream whose iterator is dropped.
            readers = [sse(first.iter_lines()), sse(second.iter_lines())]
            ids = []
            for reader in readers:
                step = next(data for name, data in reader if name == "step")
                ids.append(re.search(UUID, step["message"]).group(0))
            body = client.get("/sync/active").json()
            assert body["active"] is True
            assert body["kind"] == "full-update"
            assert body["id"] == ids[0]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["started_at"])
            assert [run["id"] for run in body["runs"]] == ids
            assert emu.active_runs == 2
        assert emu.wait_until(lambda: emu.active_runs == 0)
        assert client.get("/sync/active").json()["active"] is False


def test_client_disconnect_ends_the_run(client_for) -> None:
    with Emulator(EmulatorSettings(slow_stages={"devices": 30})) as emu:
        with client_for(emu).stream("GET", "/full-update/stream") as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("event: "))
            assert emu.active_runs == 1
        assert emu.wait_until(lambda: emu.active_runs == 0)
        assert [run.outcome for run in emu.runs] == ["disconnected"]


def test_stop_cuts_running_streams(client_for) -> None:
    emu = Emulator(EmulatorSettings(slow_stages={"devices": 30})).start()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            read_stream(client_for(emu))
        except httpx.HTTPError as exc:
            failure.append(exc)

    reader = threading.Thread(target=consume)
    reader.start()
    assert emu.wait_until(lambda: emu.active_runs == 1)
    emu.stop()
    reader.join(timeout=10)
    assert [run.outcome for run in emu.runs] == ["stopped"]
    assert len(failure) == 1 and isinstance(failure[0], httpx.RemoteProtocolError)


def test_stop_with_grace_lets_running_streams_finish(client_for) -> None:
    emu = Emulator(EmulatorSettings(stage_delay=0.02)).start()
    results: list[list[Item]] = []
    reader = threading.Thread(target=lambda: results.append(read_stream(client_for(emu))[1]))
    reader.start()
    assert emu.wait_until(lambda: emu.active_runs == 1)
    emu.stop(grace=10)
    reader.join(timeout=10)
    assert [run.outcome for run in emu.runs] == ["ok"]
    assert events(results[0])[-1][1]["ok"] is True


def test_http_1_0_client_gets_an_unchunked_stream() -> None:
    with Emulator() as emu, socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(b"GET /full-update/stream HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # the server closes: the body ends at EOF
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")  # the server's version, as uvicorn answers too
    assert b"transfer-encoding" not in head.lower()
    assert events(list(sse(iter(body.decode().split("\n")))))[-1][1]["ok"] is True


def test_first_byte_delay_holds_back_the_headers(client_for) -> None:
    with Emulator(EmulatorSettings(first_byte_delay=0.3)) as emu:
        started = time.monotonic()
        with client_for(emu).stream("GET", "/full-update/stream") as response:
            waited = time.monotonic() - started
            assert response.status_code == 200
            response.read()
    assert waited >= 0.3


def test_result_bytes_make_one_big_valid_json_line(client_for) -> None:
    target = 4 * 1024 * 1024
    with (
        Emulator(EmulatorSettings(result_bytes=target)) as emu,
        client_for(emu).stream("GET", "/full-update/stream") as response,
    ):
        lines = list(response.iter_lines())
    data_line = lines[lines.index("event: complete") + 1]
    assert lines[lines.index("event: complete") + 2] == ""
    assert abs(len(data_line) - len("data: ") - target) <= target // 100
    complete = json.loads(data_line[len("data: ") :])
    assert complete["ok"] is True
    assert all(type(complete["result"][key]) is int for key in COUNT_KEYS)


def test_item_event_flood_streams_fast(client_for) -> None:
    count = 1_000_000
    with Emulator(EmulatorSettings(item_events=count)) as emu:
        marker = b"\nevent: item_progress\n"
        seen, tail = 0, b""
        started = time.monotonic()
        with client_for(emu).stream("GET", "/full-update/stream") as response:
            for chunk in response.iter_raw():
                block = tail + chunk
                seen += block.count(marker)
                tail = block[-len(marker) + 1 :]
        elapsed = time.monotonic() - started
        assert emu.runs[0].outcome == "ok"
    baseline = 2 * 1 + 2  # default cluster: 2 per device (1 node), 1 per VM snapshot scan (2 VMs)
    assert seen - baseline == count
    assert elapsed < 30, f"1,000,000 item_progress events took {elapsed:.1f} s"


def test_degraded_run_still_succeeds(client_for) -> None:
    with Emulator(EmulatorSettings(degraded=True)) as emu:
        evs = events(read_stream(client_for(emu))[1])
    summaries = [data for name, data in evs if name == "phase_summary"]
    flagged = [data for data in summaries if data["status"] == "completed_with_errors"]
    assert len(flagged) == 1 and flagged[0]["result"]["failed"] >= 1
    complete = evs[-1][1]
    assert complete["ok"] is True
    assert complete["result"]["degraded"] is True and complete["result"]["warnings"]


def test_pre_stream_rejection_is_plain_json(client_for) -> None:
    with Emulator(EmulatorSettings(reject_every=2, reject_status=502)) as emu:
        client = client_for(emu)
        assert read_stream(client)[0].status_code == 200
        rejected = client.get("/full-update/stream")
    assert rejected.status_code == 502
    assert rejected.headers["content-type"] == "application/json"
    assert rejected.json()["message"] == "NetBox endpoint is not reachable"
    assert emu.runs_started == 1


def test_open_endpoints_and_request_log(client_for) -> None:
    with Emulator(EmulatorSettings(key=KEY)) as emu:
        client = client_for(emu)
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200
        missing = client.get("/no/such/path", headers={**AUTH, "User-Agent": "probe/1"})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Not Found"}
        bad = client.get("/full-update/stream", params={"fetch_max_concurrency": 0}, headers=AUTH)
        assert bad.status_code == 422
    log = emu.request_log
    assert [(r.path, r.key_present) for r in log] == [
        ("/health", False),
        ("/", False),
        ("/no/such/path", True),
        ("/full-update/stream", True),
    ]
    assert log[2].user_agent == "probe/1" and log[3].query == "fetch_max_concurrency=0"
    assert emu.requests_per_path == {"/health": 1, "/": 1, "/no/such/path": 1, "/full-update/stream": 1}
    assert emu.runs_started == 0


def test_settings_reject_unknown_stage() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        EmulatorSettings(fail_stage="vms")


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout), "emulator printed nothing"
    return proc.stdout.readline()


ENTRY_POINTS = {
    "module": [sys.executable, "-m", "proxbox_emulator"],
    "console script": [str(BIN_DIR / "proxbox-emulator")],
    "scheduler subcommand": [CLI, "emulate-api"],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_url_and_exits_0_on_signal(entry: str, signum: int) -> None:
    proc = subprocess.Popen(
        [*ENTRY_POINTS[entry], "--port", "0", "--key", KEY, "--quiet", "--devices", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(proc, timeout=20)
        match = re.fullmatch(
            r"proxbox-api emulator listening on (http://127\.0\.0\.1:\d+) \(key required: yes\)\n",
            line,
        )
        assert match, line
        with httpx.Client(base_url=match.group(1), headers=AUTH, timeout=10) as client:
            complete = events(read_stream(client)[1])[-1][1]
            assert complete["result"]["devices_count"] == 3
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--stage-delay", "-1"], "--stage-delay=-1.0: must be >= 0"),
        (["--devices", "0"], "--devices=0: must be >= 1"),
        (["--keepalive", "0"], "--keepalive=0.0: must be > 0"),
    ],
)
@pytest.mark.parametrize("entry", ["console script", "scheduler subcommand"])
def test_cli_bad_value_exits_2_with_one_line_naming_the_flag(entry: str, flags: list[str], line: str) -> None:
    done = subprocess.run(
        [*ENTRY_POINTS[entry], "--port", "0", *flags], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    prog = {"console script": "proxbox-emulator", "scheduler subcommand": "proxbox-scheduler emulate-api"}
    assert done.stderr.splitlines() == [f"{prog[entry]}: {line}"]
    assert "Traceback" not in done.stderr


def test_runs_use_exactly_the_event_names_of_the_captures(client_for) -> None:
    captured = {name for stream in STREAMS for name, _ in stream_events(stream)}
    with Emulator(EmulatorSettings(fail_every=2, degraded=True)) as emu:
        client = client_for(emu)
        emitted = {name for _ in range(2) for name, _ in events(read_stream(client)[1])}
        assert [run.outcome for run in emu.runs] == ["ok", "failed"]
    assert emitted == captured
