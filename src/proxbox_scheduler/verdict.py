"""What proxbox-api's answers mean for a run: events and HTTP answers in, Outcome out, no I/O.

All knowledge of proxbox-api's protocol (event names, payload fields, status
codes, the busy check) lives here, so that the transport stays generic and
every rule can be tested on the captured streams alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from proxbox_scheduler.outcome import Outcome
from proxbox_scheduler.redact import redact_url
from proxbox_scheduler.sse import Event

SUCCESS_EVENTS = frozenset({"complete", "completed", "done", "finished"})
FAILURE_EVENTS = frozenset({"error", "failed", "cancelled", "canceled"})
STAGES = (
    "devices",
    "storage",
    "virtual-machines",
    "virtual-disks",
    "task-history",
    "backups",
    "snapshots",
    "node-interfaces",
    "vm-interfaces",
    "vm-ip-addresses",
    "replications",
    "backup-routines",
)
QUOTE_CHARS = 200
"""How much of an HTTP error body's message a reason quotes."""
REASON_CHARS = 600
"""Cap on a reason built from stream text, which can carry long server details."""
KNOWN_KINDS = frozenset(stage.replace("-", "_") for stage in STAGES)
"""Object kinds proxbox-api reports (``devices_count`` ...), always kept."""
MAX_OTHER_KINDS = 16
"""Other ``*_count`` kinds kept per result; the rest are counted as dropped."""
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
HTML_EXCERPT_CHARS = 80
"""How much of a wrong URL's page (a proxy's HTML) a 404 reason quotes."""

# Pre-filters on raw bytes, so that item-level events are never parsed as JSON.
_STAGE_STEP = re.compile(rb'"step"\s*:\s*"(?:stream|' + "|".join(STAGES).encode() + rb')"')
_FULL_UPDATE_PHASE = re.compile(rb'"phase"\s*:\s*"full-update"')
_OPERATION_ID = re.compile(r"operation_id=([\w-]+)")
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Milestone:
    """A point of a run worth an INFO log line and a progress update."""

    kind: str  # "stream_started", "stage_started" or "stage_completed"
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


MilestoneSink = Callable[[Milestone], None]


def _ignore(milestone: Milestone) -> None:
    """Default sink: milestones are optional for callers."""


def parse_json(raw: bytes | str) -> Any:
    """JSON value of ``raw``, or None when it is not JSON (never cached: bodies can be big)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


SUMMARY_KEYS = frozenset({"ok", "message", "result", "errors", "error", "detail", "warnings", "degraded"})


def _summary_object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | None:
    """Keep objects the verdict reads; drop the synced records as soon as they are built."""
    if any(key in SUMMARY_KEYS or key.endswith("_count") for key, _ in pairs):
        return dict(pairs)
    return None


def parse_summary(raw: bytes) -> Any:
    """Like parse_json for a terminal ``complete``, whose ``result`` carries every synced
    NetBox record (tens of MB for a large cluster): those records are never kept, so
    peak memory stays near the size of the event instead of several times it."""
    try:
        return json.loads(raw, object_pairs_hook=_summary_object)
    except ValueError:
        return None


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(value: Any) -> str:
    """A message or detail as one compact line (dicts and lists as JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _join(first: Any, second: Any) -> str:
    """``first: second``, leaving out what is empty or already said."""
    a, b = _render(first).strip(), _render(second).strip()
    if not a or (b and a in b):
        return b
    if not b or b in a:
        return a
    return f"{a}: {b}"


class StreamVerdict:
    """Fed a run's events one by one; returns the Outcome as soon as one is decided.

    Stage starts and ends go to ``on_milestone``. Only ``step`` events that
    name a stage, ``phase_summary``, the full-update ``discovery`` and
    terminal events are parsed as JSON.
    """

    def __init__(self, on_milestone: MilestoneSink = _ignore) -> None:
        self._on_milestone = on_milestone
        self.last_stage: str | None = None
        self._total = len(STAGES)
        self._started: dict[str, int] = {}
        self._failed_objects = 0
        self._degraded = False

    def feed(self, event: Event) -> Outcome | None:
        name = event.event
        if name in SUCCESS_EVENTS:
            return self._terminal_success(event)
        if name in FAILURE_EVENTS:
            return self._terminal_failure(event)
        if name == "step":
            if _STAGE_STEP.search(event.raw, 0, _SNIFF_BYTES):
                self._step(event)
        elif name == "phase_summary":
            self._phase_summary(event)
        elif name == "discovery" and _FULL_UPDATE_PHASE.search(event.raw, 0, _SNIFF_BYTES):
            body = parse_json(event.raw)
            if isinstance(body, dict) and isinstance(body.get("count"), int) and body["count"] > 0:
                self._total = body["count"]
        return None

    def finish(self, cause: str = "") -> Outcome:
        """The stream ended (or broke, ``cause``) before a terminal event: never a success."""
        reason = "the stream ended before proxbox-api reported a result"
        if cause:
            reason += f" ({cause})"
        return Outcome.failure(reason + self.where())

    def where(self) -> str:
        """``; last stage: x`` for reasons, so an operator knows how far the run got."""
        return f"; last stage: {self.last_stage}" if self.last_stage else ""

    # ------------------------------------------------------------ progress

    def _step(self, event: Event) -> None:
        body = parse_json(event.raw)
        if not isinstance(body, dict):
            return
        step, status = body.get("step"), body.get("status")
        if step == "stream" and status == "started":
            found = _OPERATION_ID.search(str(body.get("message", "")))
            op = found.group(1) if found else None
            self._on_milestone(
                Milestone("stream_started", f"sync started (operation_id={op})", {"operation_id": op})
            )
        elif step in STAGES and status == "started":
            index = self._started[step] = len(self._started) + 1
            self.last_stage = step
            fields = {"stage": step, "index": index, "total": self._total}
            self._on_milestone(
                Milestone("stage_started", f"stage {step} started ({index}/{self._total})", fields)
            )
        elif step in STAGES and status == "completed":
            self._on_milestone(self._stage_completed(step, body))

    def _stage_completed(self, step: str, body: dict[str, Any]) -> Milestone:
        index = self._started.get(step) or len(self._started)
        fields: dict[str, Any] = {"stage": step, "index": index, "total": self._total}
        result = body.get("result")
        if isinstance(result, dict):
            for key in ("count", "created", "updated"):
                if isinstance(result.get(key), int):
                    fields[key] = result[key]
        duration = body.get("duration_seconds")
        if isinstance(duration, (int, float)):
            fields["duration_seconds"] = duration
        figures = " ".join(f"{k}={fields[k]}" for k in ("count", "created", "updated") if k in fields)
        took = f" in {duration:.2f} s" if "duration_seconds" in fields else ""
        message = f"stage {step} completed ({index}/{self._total}): {figures or 'no counts'}{took}"
        return Milestone("stage_completed", message, fields)

    def _phase_summary(self, event: Event) -> None:
        body = parse_json(event.raw)
        if not isinstance(body, dict):
            return
        result = body.get("result")
        failed = result.get("failed") if isinstance(result, dict) else None
        if isinstance(failed, int) and failed > 0:
            self._failed_objects += failed
            self._degraded = True
        if body.get("status") == "completed_with_errors":
            self._degraded = True

    # ------------------------------------------------------------ terminal events

    def _terminal_success(self, event: Event) -> Outcome:
        body = parse_summary(event.raw)
        if not isinstance(body, dict):
            body = {}
        if body.get("ok") is False:
            errors = body.get("errors")
            listed = errors if isinstance(errors, list) else []
            said = "; ".join(_render(e.get("detail") if isinstance(e, dict) else e) for e in listed if e)
            text = _join(body.get("message"), said) or f"proxbox-api sent '{event.event}' with ok=false"
            return Outcome.failure(clip(text, REASON_CHARS) + self.where())
        result = body.get("result")
        if not isinstance(result, dict):
            result = {}
        counts, dropped = bounded_counts(result)
        details: dict[str, Any] = {"counts": counts}
        if dropped:
            details["counts_dropped"] = dropped
        degraded = self._degraded or result.get("degraded") is True
        if "warnings" in result:
            warnings = result["warnings"]
            count = warnings if isinstance(warnings, int) else len(warnings or ())
            details["warnings"] = count
            degraded = degraded or count > 0
        if self._failed_objects:
            details["failed_objects"] = self._failed_objects
        message = _render(body.get("message")) or "sync completed"
        return Outcome.success(clip(message, REASON_CHARS), degraded=degraded, details=details)

    def _terminal_failure(self, event: Event) -> Outcome:
        body = parse_json(event.raw)
        if isinstance(body, dict):
            text = _join(body.get("error") or body.get("message"), body.get("detail"))
        else:
            text = event.data
        text = text or f"proxbox-api sent '{event.event}' without a reason"
        return Outcome.failure(clip(text, REASON_CHARS) + self.where())


def bounded_counts(result: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """The ``*_count`` values of a result: every known kind, then at most MAX_OTHER_KINDS others.

    Kinds become metric labels and history entries, so a result with thousands
    of them must not grow either without bound. Returns the counts and how many were dropped.
    """
    counts: dict[str, int] = {}
    others = dropped = 0
    for key, value in result.items():
        if not key.endswith("_count") or not isinstance(value, int) or isinstance(value, bool):
            continue
        kind = key.removesuffix("_count")
        if kind not in KNOWN_KINDS:
            if others >= MAX_OTHER_KINDS or not _KIND_NAME.fullmatch(kind):
                dropped += 1
                continue
            others += 1
        counts[kind] = value
    return counts, dropped


# ---------------------------------------------------------------- HTTP answers


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def quote_body(body: bytes) -> str:
    """The first QUOTE_CHARS characters of an error body's ``message``/``detail`` (or its text)."""
    parsed = parse_json(body)
    if isinstance(parsed, dict) and ("message" in parsed or "detail" in parsed):
        text = _join(parsed.get("message"), parsed.get("detail"))
    elif parsed is not None:
        text = _render(parsed)
    else:
        text = body.decode("utf-8", "replace")
    return clip(text, QUOTE_CHARS)


def _seconds(value: float) -> str:
    """A wait in plain digits: ``100000000000 s``, never ``1e+11 s``."""
    return f"{value:.0f}" if value >= 10 else f"{value:g}"


def _retry_note(wait: float | None, max_wait: float | None) -> str:
    if wait is None:
        return ""
    if max_wait is not None and wait > max_wait:
        return (
            f"; Retry-After asks for {_seconds(wait)} s, waiting {_seconds(max_wait)} s "
            "(capped by PROXBOX_SCHEDULER_BACKOFF_MAX_SECONDS)"
        )
    return f"; retry after {_seconds(wait)} s"


def html_excerpt(body: bytes) -> str:
    """The visible text at the start of an HTML page (its title, a heading), tags dropped."""
    text = re.sub(
        r"<(script|style)\b.*?</\1\s*>|<[^>]*>", " ", body[:_SNIFF_BYTES].decode("utf-8", "replace")
    )
    return clip(text.replace("&nbsp;", " "), HTML_EXCERPT_CHARS)


def _looks_like_html(headers: Mapping[str, str], body: bytes) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "text/html" or body.lstrip()[:1] == b"<"


def status_outcome(
    status: int, headers: Mapping[str, str], body: bytes, now: float, *, max_wait: float | None = None
) -> Outcome:
    """The failure for a non-200 answer; ``headers`` must look up names case-insensitively.

    ``max_wait`` is the longest the loop will wait, so a larger Retry-After is reported as capped.
    """
    quote = quote_body(body)
    said = f": {quote}" if quote else ""
    details: dict[str, Any] = {"http_status": status}
    if status in (401, 403):
        if quote:
            details["server_message"] = quote
        return Outcome.failure(f"API key rejected (HTTP {status})", auth_rejected=True, details=details)
    if status in (429, 503):
        wait = retry_after(headers.get("retry-after"), now)
        what = "is rate limiting" if status == 429 else "is unavailable"
        after = _retry_note(wait, max_wait)
        return Outcome.failure(
            f"proxbox-api {what} (HTTP {status}){said}{after}", min_wait=wait, details=details
        )
    if 300 <= status < 400:
        where = redact_url(headers.get("location", "")) or "an unnamed location"
        return Outcome.failure(
            f"proxbox-api redirected (HTTP {status}) to {where}; set PROXBOX_API_URL to the final address",
            details=details,
        )
    if status == 404:
        excerpt = html_excerpt(body) if _looks_like_html(headers, body) else clip(quote, HTML_EXCERPT_CHARS)
        return Outcome.failure(
            "HTTP 404 from proxbox-api: the URL is probably wrong "
            "(check PROXBOX_API_URL and PROXBOX_SYNC_PATH)"
            + (f"; it answered: {excerpt}" if excerpt else ""),
            details=details,
        )
    return Outcome.failure(f"HTTP {status} from proxbox-api{said}", details=details)


def not_event_stream(content_type: str, url: str) -> Outcome:
    """A 200 that is not SSE: something else answers at this URL."""
    shown = content_type.split(";")[0].strip() or "no content type"
    return Outcome.failure(
        f"{url} answered 200 with {shown} instead of text/event-stream; the URL is probably "
        "wrong (check PROXBOX_API_URL and PROXBOX_SYNC_PATH)"
    )


def is_event_stream(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


@dataclass(frozen=True)
class ProbeVerdict:
    """What ``GET /sync/active`` means: an Outcome that ends the run, or a note and go ahead."""

    outcome: Outcome | None = None
    note: str = ""
    level: int = logging.INFO


def _started_at(answer: dict[str, Any]) -> float | None:
    """Unix time of the reported run's start, if proxbox-api gave a readable one."""
    raw = answer.get("started_at")
    if not isinstance(raw, str):
        return None
    try:
        started = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (started if started.tzinfo else started.replace(tzinfo=UTC)).timestamp()


def probe_verdict(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    *,
    stale_after: float | None = None,
    max_wait: float | None = None,
) -> ProbeVerdict:
    """Interpret the busy check; only a busy answer, a rejected key or a lockout stop the run.

    A run reported as going for longer than ``stale_after`` seconds (the longest a run
    may take) is taken as stale: proxbox-api 0.0.30 keeps reporting a run whose client
    hung up during certain stages as active forever, which would otherwise skip every
    scheduled sync from then on.
    """
    if status in (401, 403, 429):
        return ProbeVerdict(status_outcome(status, headers, body, now, max_wait=max_wait))
    if status == 404:
        return ProbeVerdict(
            note="proxbox-api has no /sync/active (older version); running without the busy check"
        )
    if status != 200:
        return ProbeVerdict(note=f"busy check answered HTTP {status}; running anyway", level=logging.WARNING)
    answer = parse_json(body)
    if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
        return ProbeVerdict(
            note="busy check answered without an 'active' flag; running anyway",
            level=logging.WARNING,
        )
    if answer["active"]:
        op = answer.get("id") or "unknown"
        started = _started_at(answer)
        if stale_after is not None and started is not None and now - started > stale_after:
            return ProbeVerdict(
                note=f"proxbox-api has reported sync {op} as running for {now - started:.0f} s, longer "
                f"than PROXBOX_API_TIMEOUT ({stale_after:g} s); taking it as stale and running",
                level=logging.WARNING,
            )
        return ProbeVerdict(Outcome.skipped("busy", f"proxbox-api is already running a sync (id {op})"))
    return ProbeVerdict()
