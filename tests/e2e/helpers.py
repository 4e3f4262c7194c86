"""Helpers shared by the e2e cases: log-record predicates, proxbox-api's stages, raw SSE capture."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support.captures import captured_stages

STAGES = tuple(captured_stages())
"""The order in which proxbox-api runs the stages of a full update, read from the real capture
(its opening `discovery` event lists them in another order)."""
WRONG_KEY_PATHS = ("/sync/active", "/full-update/stream")


def is_event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r.get("event") == name and all(r.get(k) == v for k, v in fields.items())


def stage_order(records: list[dict[str, Any]]) -> list[str]:
    """Known stages in the order they first appear in the log."""
    seen: list[str] = []
    for record in records:
        stage = record.get("stage")
        if stage in STAGES and stage not in seen:
            seen.append(stage)
    return seen


def _count_maps(value: Any) -> list[dict[str, Any]]:
    """Every dict in a record (the record itself and nested ones) that holds a device count."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if any(isinstance(value.get(k), int) for k in ("devices_count", "devices")):
            found.append(value)
        for inner in value.values():
            found += _count_maps(inner)
    return found


def summary_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """The *_count figures of the last summary line, keyed without the suffix."""
    maps = [m for record in records for m in _count_maps(record)]
    assert maps, "no summary line with the *_count figures in the scheduler's log"
    return {k.removesuffix("_count"): v for k, v in maps[-1].items() if isinstance(v, int)}


def wrong_key() -> str:
    return f"wrong-key-{uuid.uuid4().hex}{uuid.uuid4().hex}"[:56]


def wait_for_access_lines(stack: Stack, since: int, want: int, timeout: float = 5.0) -> list[str]:
    """proxbox-api's access lines for the wrong-key paths since ``since`` (waits for ``want`` of them)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            line
            for line in stack.access_lines(since)
            if any(f'"GET {path}' in line for path in WRONG_KEY_PATHS)
        ]
        if len(lines) >= want or time.monotonic() >= deadline:
            return lines
        time.sleep(0.1)


@dataclass
class Stream:
    """One stream (the full update or a stage's) as (event name, decoded data) pairs."""

    events: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.events}

    @property
    def started_stages(self) -> list[str]:
        """Stages in the order their `step ... started` events came."""
        out: list[str] = []
        for name, data in self.events:
            step = data.get("step") if isinstance(data, dict) else None
            if name == "step" and step in STAGES and data.get("status") == "started" and step not in out:
                out.append(step)
        return out

    @property
    def terminal(self) -> tuple[str, list[str]]:
        """The last event's name and the sorted top-level keys of its data."""
        name, data = self.events[-1]
        return name, sorted(data) if isinstance(data, dict) else []

    def keys_of(self, event: str) -> list[str]:
        """Sorted top-level keys of the first ``event``'s data."""
        data = next(d for n, d in self.events if n == event)
        return sorted(data) if isinstance(data, dict) else []


def capture_stream(
    url: str,
    key: str,
    timeout: float = 180.0,
    path: str = "/full-update/stream",
    params: dict[str, str] | None = None,
) -> Stream:
    """Read GET {url}{path} to its end (lines decoded the simple way: one data line)."""
    stream, name = Stream(), "message"
    headers = {"X-Proxbox-API-Key": key, "Accept": "text/event-stream"}
    with httpx.stream(
        "GET", f"{url}{path}", params=params, headers=headers, timeout=httpx.Timeout(10.0, read=timeout)
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                raw = line.partition(":")[2].strip()
                try:
                    data: Any = json.loads(raw)
                except ValueError:
                    data = raw
                stream.events.append((name, data))
                name = "message"
    return stream
