"""Read the real proxbox-api captures kept in tests/data/samples (never the shared folder)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
STREAMS = (
    "sample-stream-ok.txt",
    "sample-stream-fail.txt",
    "sample-stream-fail-netbox-500.txt",
    "sample-stream-fail-netbox-down.txt",
)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def origin(name: str) -> str:
    """The opening comment of a per-stage capture: where and how it was taken."""
    first = sample(name).splitlines()[0]
    assert first.startswith(": captured "), name
    return first


def _request(name: str) -> str:
    """The request a per-stage capture answered, as its origin line names it (``GET <path?query>``)."""
    found = re.search(r"\bGET (\S+)", origin(name))
    assert found, name
    return found.group(1)


STAGE_STREAMS = {
    path.name: _request(path.name)
    for path in sorted(SAMPLES.glob("sample-stage-*.txt"))
    if not path.name.endswith(".headers.txt")
}
"""The per-stage stream captures and the request each answered. Each file opens with an SSE
comment naming its origin (the real proxbox-api 0.0.30.post2 on tests/e2e/stack, the date,
the request and any fault); decoders skip it, as they skip keep-alives. The ten
``sample-stage-<stage>-ok.txt`` other than devices and VMs were taken once each, in run order,
after one devices and one VM stage run on a fresh stack."""


def parse_stream(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of an SSE body, in order; comments skipped."""
    found: list[tuple[str, dict[str, Any]]] = []
    event: str | None = None
    for line in text.splitlines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event is not None:
            found.append((event, json.loads(line[len("data: ") :])))
            event = None
    return found


def stream_events(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a captured stream, in order; comments skipped."""
    return parse_stream(sample(name))


def stage_of(name: str) -> str:
    """The stage a per-stage capture ran: its stream opens with that stage's ``started`` step."""
    first_name, first = stream_events(name)[0]
    assert first_name == "step" and first["status"] == "started", name
    return str(first["step"])


def captured_stage_paths() -> dict[str, str]:
    """Each per-stage path proxbox-api answered in a capture, and the stage it ran."""
    return {request.partition("?")[0]: stage_of(name) for name, request in STAGE_STREAMS.items()}


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
