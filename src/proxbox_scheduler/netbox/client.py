"""The HTTP edge to NetBox: one bounded ``GET /api/core/jobs/`` per question.

Every way the question can fail (refused, timeout, 401/403, 5xx, not JSON)
becomes a ``JobsAnswer`` with a plain-words problem, never an exception, so the
guard can apply the operator's policy. The token never appears in a problem.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from proxbox_scheduler import __version__
from proxbox_scheduler.netbox.jobs import JOBS_PATH, JobsAnswerError, NetBoxJob, jobs_query, parse_jobs
from proxbox_scheduler.netbox.settings import NetBoxSettings
from proxbox_scheduler.redact import redact_url
from proxbox_scheduler.transport import causes, tls_verify

BODY_LIMIT = 1024 * 1024
"""A page of 100 jobs is tens of kilobytes; more than this is not the Jobs API."""
V2_TOKEN_PREFIX = "nbt_"


@dataclass(frozen=True)
class JobsAnswer:
    """NetBox's enqueued sync jobs, or why NetBox could not be asked (``jobs`` is None then)."""

    jobs: tuple[NetBoxJob, ...] | None
    problem: str = ""

    @property
    def reachable(self) -> bool:
        return self.jobs is not None


def authorization(token: str) -> str:
    """v2 tokens (``nbt_<key>.<secret>``) go as Bearer, v1 tokens (40 hex) as ``Token``."""
    return f"Bearer {token}" if token.startswith(V2_TOKEN_PREFIX) else f"Token {token}"


def status_problem(status: int, settings: NetBoxSettings) -> str:
    """Why a non-200 answer means NetBox could not be asked, naming the setting to fix."""
    if status in (401, 403):
        return f"NetBox rejected the token (HTTP {status}): check {settings.token_name}"
    if status == 404:
        return f"no Jobs API at {redact_url(settings.url)}{JOBS_PATH} (HTTP 404): check {settings.url_name}"
    return f"NetBox answered HTTP {status} to {JOBS_PATH}"


class NetBoxClient:
    """Asks NetBox's Jobs API; one httpx client per event loop, closed by ``aclose``."""

    def __init__(self, settings: NetBoxSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.url)
        self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                base_url=self.settings.url,
                headers={
                    "Accept": "application/json",
                    "Authorization": authorization(self.settings.token),
                    "User-Agent": f"proxbox-scheduler/{__version__}",
                },
                timeout=httpx.Timeout(self.settings.timeout),
                verify=tls_verify(self.settings.verify_ssl, self.settings.ca_bundle),
                follow_redirects=False,
                trust_env=False,
            )
            self._loop = loop
        return self._client

    async def active_jobs(self) -> JobsAnswer:
        """The enqueued proxbox sync jobs, within ``timeout`` seconds whatever the server does."""
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._ask()
        except TimeoutError:
            return JobsAnswer(None, f"NetBox did not answer within {self.settings.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ssl.SSLError) as exc:
            return JobsAnswer(None, self._explain(exc))

    async def _ask(self) -> JobsAnswer:
        async with self._http().stream("GET", JOBS_PATH, params=jobs_query()) as response:
            if response.status_code != 200:
                return JobsAnswer(None, status_problem(response.status_code, self.settings))
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > BODY_LIMIT:
                    return JobsAnswer(
                        None, f"NetBox's answer to {JOBS_PATH} is larger than {BODY_LIMIT} bytes"
                    )
        try:
            return JobsAnswer(parse_jobs(json.loads(body)))
        except (ValueError, JobsAnswerError):
            return JobsAnswer(
                None,
                f"the answer to {JOBS_PATH} is not NetBox's Jobs API JSON: check {self.settings.url_name}",
            )

    def _explain(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"NetBox did not answer within {self.settings.timeout:g} s"
        for cause in causes(exc):
            if isinstance(cause, ConnectionRefusedError):
                return f"connection refused to {self._origin}"
            if isinstance(cause, socket.gaierror):
                return f"cannot resolve the host of {self._origin}"
            if isinstance(cause, ssl.SSLCertVerificationError):
                return f"TLS certificate verification failed for {self._origin}: {cause.verify_message}"
        return f"cannot ask NetBox at {self._origin}: {type(exc).__name__}"
