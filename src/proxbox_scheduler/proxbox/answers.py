"""What proxbox-api's plain HTTP answers mean: error statuses, Retry-After, the busy probe.

Every failure before a stream starts is a JSON HTTP error, never SSE; these
functions turn such an answer into an Outcome without any I/O.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.proxbox.payload import clip, join, parse_json, render
from proxbox_scheduler.proxbox.protocol import ACTIVE_PATH, EVENT_STREAM
from proxbox_scheduler.redact import redact_url

QUOTE_CHARS = 200
"""How much of an HTTP error body's message a reason quotes."""
HTML_EXCERPT_CHARS = 80
"""How much of a wrong URL's page (a proxy's HTML) a 404 reason quotes."""
HTML_SNIFF_BYTES = 4096
"""How much of an HTML page is searched for its visible text."""


@dataclass(frozen=True)
class SettingNames:
    """The operator's names for the settings a reason tells them to check."""

    url: str
    path: str
    timeout: str
    backoff_max: str

    @classmethod
    def of(cls, names: Callable[[str], str]) -> SettingNames:
        """The names ``names`` gives the settings by attribute (the variables, or a job file's keys)."""
        return cls(
            url=names("api_url"),
            path=names("sync_path"),
            timeout=names("run_timeout"),
            backoff_max=names("backoff_max"),
        )

    @property
    def target(self) -> str:
        return f"{self.url} and {self.path}"


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
        text = join(parsed.get("message"), parsed.get("detail"))
    elif parsed is not None:
        text = render(parsed)
    else:
        text = body.decode("utf-8", "replace")
    return clip(text, QUOTE_CHARS)


def _seconds(value: float) -> str:
    """A wait in plain digits: ``100000000000 s``, never ``1e+11 s``."""
    return f"{value:.0f}" if value >= 10 else f"{value:g}"


def _retry_note(wait: float | None, max_wait: float | None, names: SettingNames) -> str:
    if wait is None:
        return ""
    if max_wait is not None and wait > max_wait:
        return (
            f"; Retry-After asks for {_seconds(wait)} s, waiting {_seconds(max_wait)} s "
            f"(capped by {names.backoff_max})"
        )
    return f"; retry after {_seconds(wait)} s"


def html_excerpt(body: bytes) -> str:
    """The visible text at the start of an HTML page (its title, a heading), tags dropped."""
    head = body[:HTML_SNIFF_BYTES].decode("utf-8", "replace")
    text = re.sub(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", " ", head)
    return clip(text.replace("&nbsp;", " "), HTML_EXCERPT_CHARS)


def _looks_like_html(headers: Mapping[str, str], body: bytes) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "text/html" or body.lstrip()[:1] == b"<"


def status_outcome(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    names: SettingNames,
    *,
    max_wait: float | None = None,
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
        after = _retry_note(wait, max_wait, names)
        return Outcome.failure(
            f"proxbox-api {what} (HTTP {status}){said}{after}", min_wait=wait, details=details
        )
    if 300 <= status < 400:
        location = redact_url(headers.get("location", "")) or "an unnamed location"
        return Outcome.failure(
            f"proxbox-api redirected (HTTP {status}) to {location}; set {names.url} to the final address",
            details=details,
        )
    if status == 404:
        excerpt = html_excerpt(body) if _looks_like_html(headers, body) else clip(quote, HTML_EXCERPT_CHARS)
        return Outcome.failure(
            f"HTTP 404 from proxbox-api: the URL is probably wrong (check {names.target})"
            + (f"; it answered: {excerpt}" if excerpt else ""),
            details=details,
        )
    return Outcome.failure(f"HTTP {status} from proxbox-api{said}", details=details)


def not_event_stream(content_type: str, url: str, names: SettingNames) -> Outcome:
    """A 200 that is not SSE: something else answers at this URL."""
    shown = content_type.split(";")[0].strip() or "no content type"
    return Outcome.failure(
        f"{url} answered 200 with {shown} instead of {EVENT_STREAM}; the URL is probably "
        f"wrong (check {names.target})"
    )


def is_event_stream(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == EVENT_STREAM


@dataclass(frozen=True)
class ProbeVerdict:
    """What the busy probe means: an Outcome that ends the run, or a note and go ahead."""

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
    names: SettingNames,
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
        return ProbeVerdict(status_outcome(status, headers, body, now, names, max_wait=max_wait))
    if status == 404:
        return ProbeVerdict(
            note=f"proxbox-api has no {ACTIVE_PATH} (older version); running without the busy check"
        )
    if status != 200:
        return ProbeVerdict(note=f"busy check answered HTTP {status}; running anyway", level=logging.WARNING)
    answer = parse_json(body)
    if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
        return ProbeVerdict(
            note="busy check answered without an 'active' flag; running anyway",
            level=logging.WARNING,
        )
    if not answer["active"]:
        return ProbeVerdict()
    op = answer.get("id") or "unknown"
    started = _started_at(answer)
    if stale_after is not None and started is not None and now - started > stale_after:
        return ProbeVerdict(
            note=f"proxbox-api has reported sync {op} as running for {now - started:.0f} s, longer "
            f"than {names.timeout} ({stale_after:g} s); taking it as stale and running",
            level=logging.WARNING,
        )
    return ProbeVerdict(Outcome.skipped("busy", f"proxbox-api is already running a sync (id {op})"))
