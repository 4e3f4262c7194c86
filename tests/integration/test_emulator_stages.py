"""The emulator's per-stage streams against the real captures (tests/data/samples/sample-stage-*).

Expectations come from the captures and their requests (tests/support/captures.py),
not from the emulator's constants; the emulator runs on 127.0.0.1 and is read over HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.captures import (
    STAGE_STREAMS,
    captured_stage_paths,
    json_bodies,
    parse_stream,
    stream_events,
)

KEY = "stage-stream-key"
VM_STAGE = "/virtualization/virtual-machines/create/stream"
CAPTURED_PATHS = captured_stage_paths()
Event = tuple[str, Any]


def decode(text: str) -> tuple[list[Event], int]:
    """(event name, data) pairs of a stream and how many comments (keep-alives) it had."""
    return parse_stream(text), sum(line.startswith(":") for line in text.splitlines())


def shape(events: list[Event]) -> list[tuple[str, ...]]:
    """What must match the capture: each event's name, what it is about and its status."""
    return [
        (name, str(data.get("step") or data.get("phase")), str(data.get("substep")), str(data.get("status")))
        for name, data in events
    ]


@pytest.fixture
def emulator() -> Iterator[Any]:
    started: list[tuple[Emulator, httpx.Client]] = []

    def start(**settings: Any) -> tuple[Emulator, httpx.Client]:
        emu = Emulator(EmulatorSettings(key=KEY, **settings)).start()
        started.append((emu, httpx.Client(base_url=emu.url, headers={"X-Proxbox-API-Key": KEY}, timeout=30)))
        return started[-1]

    yield start
    for emu, client in started:
        client.close()
        emu.stop()


def get(client: httpx.Client, request: str) -> tuple[httpx.Response, list[Event], int]:
    response = client.get(request)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return response, *decode(response.text)
    return response, [], 0


FIRST_RUN_CAPTURES = [  # each taken as the first run of its stage (the other ten: sample-stage-*-ok.txt)
    "sample-stage-vms-ok-first.txt",
    "sample-stage-vms-unknown-endpoint.txt",
    "sample-stage-devices-ok.txt",
    "sample-stage-devices-unknown-endpoint.txt",
    *(
        name
        for name in STAGE_STREAMS
        if name.endswith("-ok.txt") and "-vms-" not in name and "-devices-" not in name
    ),
]


@pytest.mark.parametrize("capture", FIRST_RUN_CAPTURES)
def test_a_stage_stream_has_the_captured_shape(emulator: Any, capture: str) -> None:
    """Event names, steps, statuses, keys, wording and the result's figures and count."""
    _, client = emulator()
    response, events, _ = get(client, STAGE_STREAMS[capture])
    real = stream_events(capture)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert shape(events) == shape(real)
    assert [sorted(data) for _, data in events] == [sorted(data) for _, data in real]
    assert [events[0][1]["message"], events[-2][1]["message"]] == [
        real[0][1]["message"],
        real[-2][1]["message"],
    ]
    (_, ours), (_, theirs) = events[-1], real[-1]
    assert ours["message"] == theirs["message"]
    assert list(ours["result"]) == list(theirs["result"])
    assert ours["result"].get("count") == theirs["result"].get("count")


def test_a_failing_vm_stage_has_the_captured_failure_shape(emulator: Any) -> None:
    emu, client = emulator(fail_every=1, fail_error="NetBox REST request failed", fail_detail="boom")
    _, events, _ = get(client, STAGE_STREAMS["sample-stage-vms-fail-netbox-500.txt"])
    real = stream_events("sample-stage-vms-fail-netbox-500.txt")
    assert shape(events) == shape(real)
    assert [sorted(data) for _, data in events] == [sorted(data) for _, data in real]
    error = events[-2][1]
    assert error["error"] == error["detail"] == "NetBox REST request failed | boom"
    assert events[-1][1] == {
        "ok": False,
        "message": "Virtual machines sync failed.",
        "errors": [{"detail": "NetBox REST request failed | boom"}],
    }
    assert [run.outcome for run in emu.runs] == ["failed"]


@pytest.mark.parametrize(("path", "stage"), sorted(CAPTURED_PATHS.items()))
def test_every_stage_path_runs_its_stage_alone(emulator: Any, path: str, stage: str) -> None:
    emu, client = emulator()
    response, events, _ = get(client, path)
    assert response.status_code == 200
    steps = [
        (d["step"], d["status"]) for n, d in events if n == "step" and d["step"] in CAPTURED_PATHS.values()
    ]
    assert steps == [(stage, "started"), (stage, "completed")]
    (name, complete), completed = events[-1], events[-2][1]
    assert name == "complete" and complete["ok"] is True and complete["result"] == completed["result"]
    assert not [n for n, _ in events if n == "bootstrap_done"]
    assert [(run.kind, run.outcome) for run in emu.runs] == [(stage, "ok")]


@pytest.mark.parametrize(
    ("query", "selected", "count"),
    [
        ("", None, 2),
        ("endpoint_ids=1", (1,), 2),
        ("endpoint_ids=%201,%202", (1, 2), 2),
        ("endpoint_ids=99", (99,), 0),
        ("proxmox_endpoint_ids=99&endpoint_ids=1", (99,), 0),  # the plugin's alias wins
        ("proxmox_endpoint_ids=&endpoint_ids=1", (1,), 2),
    ],
)
def test_endpoint_ids_narrow_the_run_and_are_recorded(
    emulator: Any, query: str, selected: tuple[int, ...] | None, count: int
) -> None:
    emu, client = emulator()
    response, events, _ = get(client, f"{VM_STAGE}?{query}")
    assert response.status_code == 200
    assert events[-1][1]["result"] == {"count": count}
    assert [(run.kind, run.endpoint_ids) for run in emu.runs] == [("virtual-machines", selected)]
    assert [(r.path, r.query) for r in emu.request_log] == [(VM_STAGE, query)]


def test_a_bad_endpoint_ids_is_the_captured_400_and_no_run(emulator: Any) -> None:
    emu, client = emulator()
    response, _, _ = get(client, f"{VM_STAGE}?endpoint_ids=abc")
    assert response.status_code == 400
    assert response.json() == json_bodies("stage-http-and-active.txt")[0]
    assert emu.runs == []


def test_a_stage_run_never_shows_in_sync_active(emulator: Any) -> None:
    emu, client = emulator(slow_stages={"virtual-machines": 0.5, "devices": 0.5})
    done: list[int] = []
    reader = threading.Thread(target=lambda: done.append(get(client, VM_STAGE)[0].status_code))
    reader.start()
    try:
        assert emu.wait_until(lambda: emu.active_runs == 1, timeout=10)
        captured = json_bodies("stage-http-and-active.txt")[1]
        assert client.get("/sync/active").json() == captured
        full = threading.Thread(target=lambda: done.append(get(client, "/full-update/stream")[0].status_code))
        full.start()
        assert emu.wait_until(lambda: emu.active_runs == 2, timeout=10)
        active = client.get("/sync/active").json()
        assert active["active"] is True and [run["kind"] for run in active["runs"]] == ["full-update"]
        full.join(timeout=30)
    finally:
        reader.join(timeout=30)
    assert done == [200, 200]


def test_fail_cut_and_reject_knobs_apply_to_stage_runs(emulator: Any) -> None:
    emu, client = emulator(fail_every=2, cut_every=3, cut_mode="clean")
    endings = []
    for _ in range(3):
        _, events, _ = get(client, VM_STAGE)
        name, data = events[-1]
        endings.append(("complete", data["ok"]) if name == "complete" else (name, data["status"]))
    assert endings == [("complete", True), ("complete", False), ("step", "started")]
    assert [run.outcome for run in emu.runs] == ["ok", "failed", "cut"]
    _, rejecting = emulator(reject_every=1, reject_status=502)
    response, _, _ = get(rejecting, VM_STAGE)
    assert response.status_code == 502 and response.json()["message"] == "NetBox endpoint is not reachable"


def test_a_slow_stage_stream_sends_keepalives(emulator: Any) -> None:
    _, client = emulator(slow_stages={"virtual-machines": 0.6}, keepalive_interval=0.1)
    _, events, comments = get(client, VM_STAGE)
    assert comments >= 3 and events[-1][1]["ok"] is True
