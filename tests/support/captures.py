"""Read the real proxbox-api captures kept in tests/data/samples (never the shared folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
STREAMS = (
    "sample-stream-ok.txt",
    "sample-stream-fail.txt",
    "sample-stream-fail-netbox-500.txt",
    "sample-stream-fail-netbox-down.txt",
)
STAGE_STREAMS = {
    "sample-stage-vms-ok.txt": "/virtualization/virtual-machines/create/stream?endpoint_ids=1",
    "sample-stage-vms-ok-first.txt": "/virtualization/virtual-machines/create/stream",
    "sample-stage-vms-unknown-endpoint.txt": "/virtualization/virtual-machines/create/stream?endpoint_ids=99",
    "sample-stage-vms-fail-netbox-500.txt": "/virtualization/virtual-machines/create/stream?endpoint_ids=1",
    "sample-stage-devices-ok.txt": "/dcim/devices/create/stream",
    "sample-stage-devices-unknown-endpoint.txt": "/dcim/devices/create/stream?endpoint_ids=99",
    "sample-stage-devices-fail-netbox-500.txt": "/dcim/devices/create/stream?endpoint_ids=1",
    **{
        f"sample-stage-{stage}-ok.txt": f"{path}?endpoint_ids=1"
        for stage, path in (
            ("storage", "/virtualization/virtual-machines/storage/create/stream"),
            ("virtual-disks", "/virtualization/virtual-machines/virtual-disks/create/stream"),
            ("task-history", "/virtualization/virtual-machines/task-history/create/stream"),
            ("backups", "/virtualization/virtual-machines/backups/all/create/stream"),
            ("snapshots", "/virtualization/virtual-machines/snapshots/all/create/stream"),
            ("node-interfaces", "/dcim/devices/interfaces/create/stream"),
            ("vm-interfaces", "/virtualization/virtual-machines/interfaces/create/stream"),
            ("vm-ip-addresses", "/virtualization/virtual-machines/interfaces/ip-address/create/stream"),
            ("replications", "/proxmox/replication/stream"),
            ("backup-routines", "/proxmox/cluster/backup/stream"),
        )
    },
}
"""The per-stage stream captures and the request each answered. Each file opens with an SSE
comment naming its origin (the real proxbox-api 0.0.30.post2 on tests/e2e/stack, the date,
the request and any fault); decoders skip it, as they skip keep-alives. The ten
``sample-stage-<stage>-ok.txt`` were taken once each, in run order, after one devices and
one VM stage run on a fresh stack."""


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def origin(name: str) -> str:
    """The opening comment of a per-stage capture: where and how it was taken."""
    first = sample(name).splitlines()[0]
    assert first.startswith(": captured "), name
    return first


def stream_events(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a captured stream, in order; comments skipped."""
    found: list[tuple[str, dict[str, Any]]] = []
    event: str | None = None
    for line in sample(name).splitlines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event is not None:
            found.append((event, json.loads(line[len("data: ") :])))
            event = None
    return found


def announced_stages() -> list[str]:
    """The stage names of the first ``discovery`` frame of the ok capture, in announced order."""
    discovery = next(data for name, data in stream_events("sample-stream-ok.txt") if name == "discovery")
    assert discovery["phase"] == "full-update"
    return [item["name"] for item in discovery["items"]]


def captured_stages() -> list[str]:
    """The stages in the order the ok capture runs them (their ``started`` steps)."""
    announced = set(announced_stages())
    return [
        data["step"]
        for name, data in stream_events("sample-stream-ok.txt")
        if name == "step" and data["step"] in announced and data["status"] == "started"
    ]


def json_bodies(name: str) -> list[Any]:
    """Every line of a capture that is a JSON object: the HTTP answers' bodies."""
    return [json.loads(line) for line in sample(name).splitlines() if line.startswith("{")]
