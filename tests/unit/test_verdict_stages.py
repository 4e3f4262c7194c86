"""The verdict on proxbox-api's real per-stage streams (tests/data/samples/sample-stage-*.txt).

A job may run one stage (``/virtualization/virtual-machines/create/stream``,
``/dcim/devices/create/stream`` ...) instead of the full update. These streams open
with the stage's own ``step ... started`` (no ``stream`` step, no full-update
discovery) and end with ``complete {"ok": true, "result": {"count": n}}``.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxbox_scheduler.core.judge import judge_counts
from proxbox_scheduler.core.outcome import Outcome, ProgressKind, Status
from proxbox_scheduler.proxbox.answers import SettingNames, status_outcome
from proxbox_scheduler.proxbox.sse import Event, SSEDecoder
from proxbox_scheduler.proxbox.verdict import Milestone, StreamVerdict
from tests.support.captures import SAMPLES, STAGE_STREAMS, json_bodies, origin

NOW = 1_800_000_000.0
NAMES = SettingNames(url="url", path="path", timeout="timeout", backoff_max="backoff_max")  # a 400 names none
OK = {  # capture -> (stage, reason, counts, the figures its completed milestone shows)
    "sample-stage-vms-ok.txt": (
        "virtual-machines",
        "Virtual machines sync completed.",
        {"virtual_machines": 2},
        "count=2",
    ),
    "sample-stage-vms-ok-first.txt": (
        "virtual-machines",
        "Virtual machines sync completed.",
        {"virtual_machines": 2},
        "count=2",
    ),
    "sample-stage-vms-unknown-endpoint.txt": (
        "virtual-machines",
        "Virtual machines sync completed.",
        {"virtual_machines": 0},
        "count=0",
    ),
    "sample-stage-devices-ok.txt": ("devices", "devices sync completed.", {"devices": 1}, "count=1"),
    "sample-stage-devices-unknown-endpoint.txt": (
        "devices",
        "devices sync completed.",
        {"devices": 0},
        "count=0",
    ),
    # proxbox-api counts 0 storages although the stage's phase_summary created 2 of them
    "sample-stage-storage-ok.txt": ("storage", "storage sync completed.", {"storage": 0}, "count=0"),
    "sample-stage-virtual-disks-ok.txt": (
        "virtual-disks",
        "virtual-disks sync completed.",
        {"virtual_disks": 2},
        "count=2 created=0 updated=2",
    ),
    "sample-stage-task-history-ok.txt": (
        "task-history",
        "task-history sync completed.",
        {"task_history": 2},
        "count=2 created=1",
    ),
    "sample-stage-backups-ok.txt": ("backups", "backups sync completed.", {"backups": 1}, "count=1"),
    "sample-stage-snapshots-ok.txt": (
        "snapshots",
        "snapshots sync completed.",
        {"snapshots": 2},
        "count=2 created=1 updated=0",
    ),
    "sample-stage-node-interfaces-ok.txt": (
        "node-interfaces",
        "node-interfaces sync completed.",
        {"node_interfaces": 2},
        "count=2",
    ),
    "sample-stage-vm-interfaces-ok.txt": (
        "vm-interfaces",
        "vm-interfaces sync completed.",
        {"vm_interfaces": 2},
        "count=2",
    ),
    "sample-stage-vm-ip-addresses-ok.txt": (
        "vm-ip-addresses",
        "vm-ip-addresses sync completed.",
        {"vm_ip_addresses": 2},
        "count=2",
    ),
    # these two report created/updated/stale/errors and no count: no count is kept, so the
    # judge never calls a later run that created nothing "synced 0 objects"
    "sample-stage-replications-ok.txt": (
        "replications",
        "Replications sync completed.",
        {},
        "created=0 updated=0",
    ),
    "sample-stage-backup-routines-ok.txt": (
        "backup-routines",
        "backup-routines sync completed.",
        {},
        "created=1 updated=0",
    ),
}
FAILED = {
    "sample-stage-vms-fail-netbox-500.txt": (
        "Error creating Virtual Machine dependent objects (cluster, device, tag and role) | "
        "e2e fault: NetBox answers 500; last stage: virtual-machines"
    ),
    "sample-stage-devices-fail-netbox-500.txt": (
        "NetBox REST request failed | e2e fault: NetBox answers 500; last stage: devices"
    ),
}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def replay(stream: bytes, chunk: int = 613) -> tuple[Outcome, list[Milestone]]:
    """Decode and judge like the http trigger: stop at the verdict, else judge the end of the bytes."""
    milestones: list[Milestone] = []
    decoder, judge = SSEDecoder(), StreamVerdict(milestones.append)
    for i in range(0, len(stream), chunk):
        for event in decoder.feed(stream[i : i + chunk]):
            outcome = judge.feed(event)
            if outcome is not None:
                return outcome, milestones
    decoder.close()
    return judge.finish(), milestones


def test_every_capture_names_the_request_it_answered() -> None:
    assert set(STAGE_STREAMS) == set(OK) | set(FAILED)
    for name, request in STAGE_STREAMS.items():
        assert "proxbox-api 0.0.30.post2 on the e2e stack" in origin(name), name
        assert f"GET {request} " in origin(name), name


@pytest.mark.parametrize("name", sorted(OK))
def test_a_stage_stream_succeeds_with_its_stage_count(name: str) -> None:
    outcome, _ = replay(sample(name))
    _, message, counts, _ = OK[name]
    assert outcome.status is Status.SUCCESS and not outcome.degraded
    assert outcome.reason == message
    assert outcome.details == {"counts": counts}


@pytest.mark.parametrize("name", sorted(OK))
def test_a_stage_stream_is_one_stage_of_one(name: str) -> None:
    _, milestones = replay(sample(name))
    stage, _, _, shown = OK[name]
    kinds = [m.progress.kind for m in milestones]
    assert kinds == [ProgressKind.STAGE_STARTED, ProgressKind.STAGE_COMPLETED]
    assert [(m.progress.stage, m.progress.index, m.progress.total) for m in milestones] == [(stage, 1, 1)] * 2
    assert milestones[0].message == f"stage {stage} started (1/1)"
    assert milestones[1].message == f"stage {stage} completed (1/1): {shown}"
    assert not any(re.search(r"/12\b", m.message) for m in milestones)


def test_per_vm_failed_steps_inside_an_ok_stage_do_not_fail_it() -> None:
    """The second VM run reports "Could not set primary IP." per VM; its summary says 0 failed."""
    stream = sample("sample-stage-vms-ok.txt")
    assert stream.count(b'"status": "failed", "message": "Could not set primary IP."') == 2
    outcome, _ = replay(stream)
    assert outcome.ok and not outcome.degraded


@pytest.mark.parametrize("name", sorted(FAILED))
def test_a_failed_stage_stream_fails_with_proxbox_api_words(name: str) -> None:
    outcome, milestones = replay(sample(name))
    assert outcome.status is Status.FAILURE and not outcome.auth_rejected
    assert outcome.reason == FAILED[name]
    assert [m.progress.total for m in milestones] == [1]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(STAGE_STREAMS)), st.data())
def test_a_stage_stream_cut_anywhere_is_never_a_success(name: str, data: st.DataObject) -> None:
    stream = sample(name)
    end = data.draw(st.integers(0, len(stream) - 1), label="cut at")
    outcome, _ = replay(stream[:end], chunk=data.draw(st.integers(1, 4096), label="chunk"))
    assert outcome.status is Status.FAILURE
    if name in OK:
        assert outcome.reason.startswith("the stream ended before proxbox-api reported a result")


def test_an_unknown_endpoint_after_a_run_with_vms_is_degraded() -> None:
    """proxbox-api answers ok with count 0 for an endpoint id it does not know (endpoint_ids=99)."""
    ok, _ = replay(sample("sample-stage-vms-ok.txt"))
    empty, _ = replay(sample("sample-stage-vms-unknown-endpoint.txt"))
    _, last = judge_counts(ok, None)
    judged, kept = judge_counts(empty, last)
    assert judged.ok and judged.degraded
    assert judged.reason == "synced 0 objects (last success: 0 devices, 2 VMs)"
    assert kept == {"virtual_machines": 2}


@pytest.mark.parametrize("name", ["sample-stage-replications-ok.txt", "sample-stage-backup-routines-ok.txt"])
def test_a_stage_without_a_count_is_never_judged_empty(name: str) -> None:
    """Replications created 0 here: with no count kept, that is no "synced 0 objects"."""
    outcome, _ = replay(sample(name))
    judged, kept = judge_counts(outcome, {"virtual_machines": 2})
    assert judged.ok and not judged.degraded and judged.reason == OK[name][1]
    assert kept == {"virtual_machines": 2}


def test_a_bad_endpoint_ids_is_an_http_400_before_the_stream() -> None:
    body = json_bodies("stage-http-and-active.txt")[0]
    raw = json.dumps(body, separators=(",", ":")).encode()
    outcome = status_outcome(400, {"content-type": "application/json"}, raw, NOW, NAMES)
    assert outcome.status is Status.FAILURE and not outcome.auth_rejected
    assert outcome.details == {"http_status": 400}
    assert outcome.reason == (
        "HTTP 400 from proxbox-api: Invalid Proxmox endpoint_ids query parameter: "
        "endpoint_ids must be a comma-separated list of integers."
    )


def ev(name: str, data: dict[str, object]) -> Event:
    return Event(name, json.dumps(data).encode())


def test_a_stream_step_makes_it_a_full_update_of_twelve_stages() -> None:
    milestones: list[Milestone] = []
    judge = StreamVerdict(milestones.append)
    judge.feed(ev("step", {"step": "stream", "status": "started", "message": "operation_id=x"}))
    judge.feed(ev("step", {"step": "devices", "status": "started"}))
    assert milestones[-1].message == "stage devices started (1/12)"
    outcome = judge.feed(ev("complete", {"ok": True, "result": {"count": 3}}))
    assert outcome is not None and outcome.details == {"counts": {}}  # no stage to give it to


def test_a_bare_count_is_kept_only_for_a_stream_of_one_stage() -> None:
    judge = StreamVerdict()
    for stage in ("devices", "storage"):
        judge.feed(ev("step", {"step": stage, "status": "started"}))
    outcome = judge.feed(ev("complete", {"ok": True, "result": {"count": 3}}))
    assert outcome is not None and outcome.details == {"counts": {}}
    single = StreamVerdict()
    single.feed(ev("step", {"step": "backups", "status": "started"}))
    for count in (True, "3", None, 2.5):
        outcome = single.feed(ev("complete", {"ok": True, "result": {"count": count}}))
        assert outcome is not None and outcome.details == {"counts": {}}, count
