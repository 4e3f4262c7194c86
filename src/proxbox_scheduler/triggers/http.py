"""The http trigger: one run is one GET of proxbox-api's SSE stream, read until the verdict.

Transport only: decoding is ``sse``, meaning is ``verdict``. Every failure
the network can produce becomes a failure Outcome with a plain-words reason;
only cancellation (the loop's total timeout, shutdown) propagates, after the
connection has been closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from proxbox_scheduler import __version__
from proxbox_scheduler.config import name_of
from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.trigger import RunContext
from proxbox_scheduler.crosscheck import read_key_file
from proxbox_scheduler.jobs import JobConfig
from proxbox_scheduler.proxbox.answers import (
    SettingNames,
    is_event_stream,
    not_event_stream,
    probe_verdict,
    status_outcome,
)
from proxbox_scheduler.proxbox.payload import clip
from proxbox_scheduler.proxbox.protocol import ACTIVE_PATH, EVENT_STREAM, KEY_HEADER
from proxbox_scheduler.proxbox.sse import Event, EventTooLarge, SSEDecoder
from proxbox_scheduler.proxbox.verdict import Milestone, StreamVerdict
from proxbox_scheduler.redact import Scrubber, redact_url
from proxbox_scheduler.transport import causes, tls_verify

ERROR_BODY_BYTES = 64 * 1024
"""How much of a non-200 body is read to quote from; the rest is never downloaded."""
DEBUG_PREVIEW_CHARS = 300
_LOG_NAMES = {"created": "objects_created", "updated": "objects_updated"}
"""Progress fields renamed for log records (``created`` is a LogRecord attribute)."""
_OS_CAUSES: tuple[tuple[type[OSError], str], ...] = (
    (ConnectionRefusedError, "connection refused to"),
    (ConnectionResetError, "connection reset by"),
)
"""OS errors under an httpx error, in plain words (first match wins)."""
_HTTPX_ERRORS: tuple[tuple[type[httpx.HTTPError], str], ...] = (
    (httpx.ConnectError, "cannot connect to {origin}"),
    (httpx.RemoteProtocolError, "connection to {origin} broken mid-response"),
    (httpx.ReadError, "connection to {origin} lost"),
)
"""httpx errors without a better-known cause, in plain words (first match wins)."""


class HttpTrigger:
    """Calls ``GET {api_url}{sync_path}`` and turns the stream into an Outcome."""

    def __init__(self, config: JobConfig, clock: Clock, names: Callable[[str], str] = name_of) -> None:
        """``names`` names the job's settings in reasons (the variables, or the job file's keys).

        ``load`` makes sure every job that runs has a URL; a job that is ``off`` may have none,
        and its trigger is never called."""
        self._names = names
        self._answer_names = SettingNames.of(names)
        self._config = config
        self._clock = clock
        api_url = config.api_url or ""
        parts = urlsplit(api_url)
        # Credentials in the URL go out as Basic auth, never inside a URL that httpx would log.
        self._auth = (
            httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
            if parts.username is not None or parts.password is not None
            else None
        )
        self._base = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._url = self._base + config.sync_path
        host = parts.hostname or ""
        self._host = f"[{host}]" if ":" in host else host
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._origin = f"{parts.scheme}://{self._host}:{port}"
        self._tls: ssl.SSLContext | None = None
        self._tls_stamp: tuple[int, int, int] | None = None
        self._key = config.api_key
        self.scrub = Scrubber(config.secrets())
        self._shown_url = (api_url, redact_url(api_url))
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._client_verify: ssl.SSLContext | bool | None = None

    async def aclose(self) -> None:
        """Close the pooled connections (the service calls this at shutdown)."""
        if self._client is not None:
            client, self._client, self._client_loop = self._client, None, None
            await client.aclose()

    async def _client_for_this_loop(self, verify: ssl.SSLContext | bool) -> httpx.AsyncClient:
        """One client per event loop and TLS context, kept across runs (the busy probe's
        connection serves the stream); the key header is set per run."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_verify is not verify and self._client_loop is loop:
            await self.aclose()  # the CA bundle changed: new connections must verify against it
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(
                headers=self._headers(),
                timeout=httpx.Timeout(
                    self._config.connect_timeout,
                    connect=self._config.connect_timeout,
                    read=self._config.idle_timeout,
                ),
                verify=verify,
                auth=self._auth,
                follow_redirects=False,
            )
            self._client_loop, self._client_verify = loop, verify
        if self._key:  # set per run: the key file may have been rotated since the last one
            self._client.headers[KEY_HEADER] = self._key
        return self._client

    async def run(self, ctx: RunContext) -> Outcome:
        try:
            verify = self._verify()
        except (OSError, ssl.SSLError) as exc:
            return Outcome.failure(f"cannot load {self._names('ca_bundle')} {self._config.ca_bundle}: {exc}")
        problem = self._reload_key()
        if problem:
            return Outcome.failure(problem)
        client = await self._client_for_this_loop(verify)
        try:
            outcome = None
            if self._config.skip_if_active:
                outcome = await self._probe(client, ctx)
            if outcome is None:
                outcome = await self._stream(client, ctx)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            outcome = Outcome.failure(self._explain(exc))
        return self._scrubbed(outcome)

    def _reload_key(self) -> str | None:
        """Read the key file again before each run: a rotated Kubernetes Secret works at once."""
        path = self._config.api_key_file
        if path is None:
            return None
        try:
            key = read_key_file(path)
        except ValueError as exc:
            return f"cannot use {self._names('api_key_file')} {path}: {exc}"
        self.scrub.add(key)
        self._key = key
        return None

    # ------------------------------------------------------------ requests

    def _verify(self) -> ssl.SSLContext | bool:
        """TLS verification: on by default, against a private CA when one is given.

        The context is built once and again when the bundle file changes (a rotated
        CA); a failure to build it is retried at the next run.
        """
        if not self._config.verify_ssl:
            return False
        bundle = self._config.ca_bundle
        stamp = None
        if bundle is not None:
            info = bundle.stat()
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self._tls is None or stamp != self._tls_stamp:
            verify = tls_verify(True, bundle)  # the private CA's context, or True: the system store
            self._tls = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context()
            self._tls_stamp = stamp
        return self._tls

    def _headers(self) -> dict[str, str]:
        """The headers of every request; the key is added per run by ``_client_for_this_loop``."""
        return {
            "Accept": EVENT_STREAM,
            "Accept-Encoding": "identity",
            "Cache-Control": "no-cache",
            "User-Agent": f"proxbox-scheduler/{__version__}",
        }

    async def _probe(self, client: httpx.AsyncClient, ctx: RunContext) -> Outcome | None:
        """Ask whether a sync is running; only a definite answer stops the run."""
        try:
            async with client.stream(
                "GET", self._base + ACTIVE_PATH, headers={"Accept": "application/json"}
            ) as response:
                body = await _read_capped(response)
        except httpx.HTTPError as exc:
            ctx.log.warning("busy check failed (%s); running anyway", self._scrub(self._explain(exc)))
            return None
        verdict = probe_verdict(
            response.status_code,
            response.headers,
            body,
            self._clock.now().timestamp(),
            self._answer_names,
            stale_after=self._config.run_timeout,
            max_wait=self._max_wait,
        )
        if verdict.note:
            ctx.log.log(verdict.level, verdict.note)
        return verdict.outcome

    async def _stream(self, client: httpx.AsyncClient, ctx: RunContext) -> Outcome:
        ctx.log.debug("requesting %s", self._config.target)
        async with client.stream("GET", self._url, params=self._config.sync_params) as response:
            if response.status_code != 200:
                body = await _read_capped(response)
                return status_outcome(
                    response.status_code,
                    response.headers,
                    body,
                    self._clock.now().timestamp(),
                    self._answer_names,
                    max_wait=self._max_wait,
                )
            content_type = response.headers.get("content-type", "")
            if not is_event_stream(content_type):
                return not_event_stream(content_type, self._config.target, self._answer_names)
            encoding = _content_encoding(response)
            if encoding:
                return Outcome.failure(
                    f"proxbox-api answered with Content-Encoding {clip(encoding, 60)!r}; only identity "
                    "is accepted (a compressed stream could expand without bound): check any proxy in between"
                )
            return await self._read_events(response, ctx)

    @property
    def _max_wait(self) -> float:
        """The longest the loop waits after a failure (it caps Retry-After there)."""
        return max(self._config.backoff, self._config.backoff_max)

    async def _read_events(self, response: httpx.Response, ctx: RunContext) -> Outcome:
        """Decode and judge events until the verdict; returning closes the connection."""
        decoder = SSEDecoder(self._config.max_event_bytes)
        verdict = StreamVerdict(lambda milestone: self._milestone(ctx, milestone))
        debug = ctx.log.isEnabledFor(logging.DEBUG)
        try:
            async for chunk in response.aiter_raw():
                for event in decoder.feed(chunk):
                    if debug:
                        self._log_event(ctx, event)
                    outcome = verdict.feed(event)
                    if outcome is not None:
                        if outcome.ok:
                            _log_summary(ctx, outcome)
                        return outcome
        except EventTooLarge as exc:
            return Outcome.failure(
                f"an event from proxbox-api is larger than {self._names('max_event_bytes')}={exc.limit}; "
                "raise it if the cluster is that large" + verdict.last_stage_note()
            )
        except httpx.TimeoutException as exc:
            return Outcome.failure(self._explain(exc) + verdict.last_stage_note())
        except httpx.TransportError as exc:
            return verdict.finish(self._explain(exc))
        decoder.close()
        return verdict.finish()

    # ------------------------------------------------------------ reporting

    def _milestone(self, ctx: RunContext, milestone: Milestone) -> None:
        fields = {_LOG_NAMES.get(k, k): v for k, v in milestone.progress.fields().items()}
        ctx.log.info(milestone.message, extra=fields)
        ctx.progress(milestone.progress)

    def _log_event(self, ctx: RunContext, event: Event) -> None:
        preview = self._scrub(event.raw[: DEBUG_PREVIEW_CHARS * 2].decode("utf-8", "replace"))
        ctx.log.debug(
            "event %s: %s",
            event.event,
            clip(preview, DEBUG_PREVIEW_CHARS),
            extra={"sse_event": event.event, "data_bytes": len(event.raw)},
        )

    def _explain(self, exc: Exception) -> str:
        """A transport error in plain words, naming the cause and the redacted target."""
        cfg = self._config
        if isinstance(exc, httpx.ConnectTimeout):
            return f"could not connect to {self._origin} within {cfg.connect_timeout:g} s"
        if isinstance(exc, httpx.ReadTimeout):
            return f"idle timeout: no data from proxbox-api for {cfg.idle_timeout:g} s"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out sending the request to {self._origin}"
        for cause in causes(exc):
            if isinstance(cause, ssl.SSLCertVerificationError):
                why = cause.verify_message or cause.reason or "untrusted certificate"
                return f"TLS certificate verification failed for {self._host}: {why}"
            if isinstance(cause, ssl.SSLError):
                hint = (
                    " (the server does not speak TLS: http:// ?)"
                    if cause.reason == "WRONG_VERSION_NUMBER"
                    else ""
                )
                return f"TLS handshake with {self._origin} failed: {cause.reason or cause}{hint}"
            if isinstance(cause, socket.gaierror):
                return f"cannot resolve host {self._host}"
            for kind, words in _OS_CAUSES:
                if isinstance(cause, kind):
                    return f"{words} {self._origin}"
        for kind, words in _HTTPX_ERRORS:
            if isinstance(exc, kind):
                return f"{words.format(origin=self._origin)}: {exc}"
        return f"request to {self._origin} failed: {type(exc).__name__}: {exc}"

    def _scrub(self, text: str) -> str:
        """Belt and braces: no key, no URL credentials and no secret parameter in anything we show."""
        url, shown = self._shown_url
        return self.scrub(text.replace(url, shown))

    def _scrubbed(self, outcome: Outcome) -> Outcome:
        details = {k: self._scrub(v) if isinstance(v, str) else v for k, v in outcome.details.items()}
        return dataclasses.replace(outcome, reason=self._scrub(outcome.reason), details=details)


def _content_encoding(response: httpx.Response) -> str:
    """The body's content coding unless it is identity (which needs no decoding), else ''."""
    value = response.headers.get("content-encoding", "").strip().lower()
    return "" if value in ("", "identity") else value


async def _read_capped(response: httpx.Response) -> bytes:
    """At most ERROR_BODY_BYTES of the raw body; a broken or encoded body is as good as none here.

    Raw bytes only: decompressing first would apply the cap after a bomb had exploded.
    """
    body = bytearray()
    if _content_encoding(response):
        return b""
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    return bytes(body[:ERROR_BODY_BYTES])


def _log_summary(ctx: RunContext, outcome: Outcome) -> None:
    counts: dict[str, Any] = outcome.details.get("counts", {})
    figures = " ".join(f"{name}={value}" for name, value in counts.items()) or "no counts reported"
    extra: dict[str, Any] = {"counts": counts, "degraded": outcome.degraded}
    problems = ""
    for key in ("warnings", "failed_objects"):
        if key in outcome.details:
            extra[key] = outcome.details[key]
            problems += f" {key}={outcome.details[key]}"
    state = "succeeded with object-level errors (degraded)" if outcome.degraded else "succeeded"
    ctx.log.info(f"sync {state}: {figures}{problems}", extra=extra)
