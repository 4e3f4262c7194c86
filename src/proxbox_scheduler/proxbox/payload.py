"""Reading proxbox-api's JSON payloads and turning their text into one-line reasons."""

from __future__ import annotations

import json
from typing import Any

from proxbox_scheduler.proxbox.protocol import COUNT_SUFFIX, SUMMARY_KEYS


def parse_json(raw: bytes | str) -> Any:
    """JSON value of ``raw``, or None when it is not JSON (never cached: bodies can be big)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _summary_object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | None:
    """Keep objects the verdict reads; drop the synced records as soon as they are built."""
    if any(key in SUMMARY_KEYS or key.endswith(COUNT_SUFFIX) for key, _ in pairs):
        return dict(pairs)
    return None


def parse_summary(raw: bytes) -> Any:
    """Like parse_json for a terminal ``complete``, whose ``result`` carries every synced
    NetBox record: those records are never kept (see bench/RESULTS.md for the memory figures)."""
    try:
        return json.loads(raw, object_pairs_hook=_summary_object)
    except ValueError:
        return None


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(value: Any) -> str:
    """A message or detail as one compact line (dicts and lists as JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def join(first: Any, second: Any) -> str:
    """``first: second``, leaving out what is empty or already said."""
    a, b = render(first).strip(), render(second).strip()
    if not a or (b and a in b):
        return b
    if not b or b in a:
        return a
    return f"{a}: {b}"
