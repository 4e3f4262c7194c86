"""``check --probe``: ask NetBox's Jobs API and proxbox-api's busy check once, say what answered.

Each line names what was asked and, on failure, the setting to fix, so a wrong
URL or token shows up before the first scheduled run rather than at it.
"""

from __future__ import annotations

import asyncio

import httpx

from proxbox_scheduler.config import Config, name_of
from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.outcome import Status
from proxbox_scheduler.netbox.client import NetBoxClient
from proxbox_scheduler.netbox.jobs import first_busy, first_recurring
from proxbox_scheduler.proxbox.answers import probe_verdict
from proxbox_scheduler.proxbox.protocol import ACTIVE_PATH, KEY_HEADER
from proxbox_scheduler.redact import redact_url
from proxbox_scheduler.transport import tls_verify
from proxbox_scheduler.triggers.http import NAMES

Line = tuple[bool, str]
"""(answered as hoped, what to print)."""


async def probe_netbox(config: Config) -> Line:
    settings = config.netbox
    if settings is None:
        return True, f"NetBox: awareness off ({name_of('netbox_url')} not set); not asked"
    client = NetBoxClient(settings)
    try:
        answer = await client.active_jobs()
    finally:
        await client.aclose()
    if answer.jobs is None:
        return False, f"NetBox: {answer.problem}"
    clock = Clock()
    busy, recurring = first_busy(answer.jobs, clock.now()), first_recurring(answer.jobs)
    said = f"busy ({busy.describe()})" if busy else "no proxbox sync pending or running"
    if recurring is not None:
        said += f"; recurring schedule: {recurring.describe_schedule()}"
    return True, f"NetBox: answered at {redact_url(settings.url)}: {said}"


async def probe_api(config: Config) -> Line:
    if not config.api_url:
        return True, f"proxbox-api: {name_of('api_url')} not set; not asked"
    names = NAMES
    url = config.api_url + ACTIVE_PATH
    verify = tls_verify(config.verify_ssl, config.ca_bundle)
    headers = {KEY_HEADER: config.api_key} if config.api_key else {}
    try:
        async with httpx.AsyncClient(
            verify=verify, timeout=config.connect_timeout, trust_env=False
        ) as client:
            response = await client.get(url, headers={"Accept": "application/json", **headers})
    except httpx.HTTPError as exc:
        return False, f"proxbox-api: cannot ask {redact_url(url)}: {type(exc).__name__} ({names.url}?)"
    verdict = probe_verdict(
        response.status_code, response.headers, response.content, Clock().now().timestamp(), names
    )
    if verdict.outcome is not None and verdict.outcome.status is not Status.SKIPPED:
        return False, f"proxbox-api: {verdict.outcome.reason}"
    if response.status_code not in (200, 404):
        return False, f"proxbox-api: {redact_url(url)} answered HTTP {response.status_code}"
    said = verdict.outcome.reason if verdict.outcome is not None else verdict.note or "no sync running"
    return True, f"proxbox-api: answered at {redact_url(config.api_url)}: {said}"


def probe(config: Config) -> list[Line]:
    """Both probes, each bounded by its own timeout."""

    async def both() -> list[Line]:
        return list(await asyncio.gather(probe_netbox(config), probe_api(config)))

    return asyncio.run(both())
