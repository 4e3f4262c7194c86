"""``check --probe``: ask NetBox's Jobs API and proxbox-api's busy check once, say what answered.

Each line names what was asked and, on failure, the setting to fix, so a wrong
URL or token shows up before the first scheduled run rather than at it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import httpx

from proxbox_scheduler.config import Config, name_of
from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.outcome import Status
from proxbox_scheduler.jobs import JobConfig
from proxbox_scheduler.netbox.client import NetBoxClient
from proxbox_scheduler.netbox.jobs import first_busy, first_recurring
from proxbox_scheduler.proxbox.answers import SettingNames, probe_verdict
from proxbox_scheduler.proxbox.protocol import ACTIVE_PATH, KEY_HEADER
from proxbox_scheduler.redact import redact_url
from proxbox_scheduler.transport import tls_verify

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


async def probe_api(job: JobConfig, names: SettingNames, label: str) -> Line:
    """One proxbox-api's busy check with ``job``'s URL, key and TLS settings; ``label`` heads the line."""
    url = job.api_url + ACTIVE_PATH
    verify = tls_verify(job.verify_ssl, job.ca_bundle)
    headers = {KEY_HEADER: job.api_key} if job.api_key else {}
    try:
        async with httpx.AsyncClient(verify=verify, timeout=job.connect_timeout, trust_env=False) as client:
            response = await client.get(url, headers={"Accept": "application/json", **headers})
    except httpx.HTTPError as exc:
        return False, f"{label}: cannot ask {redact_url(url)}: {type(exc).__name__} ({names.url}?)"
    verdict = probe_verdict(
        response.status_code, response.headers, response.content, Clock().now().timestamp(), names
    )
    if verdict.outcome is not None and verdict.outcome.status is not Status.SKIPPED:
        return False, f"{label}: {verdict.outcome.reason}"
    if response.status_code not in (200, 404):
        return False, f"{label}: {redact_url(url)} answered HTTP {response.status_code}"
    said = verdict.outcome.reason if verdict.outcome is not None else verdict.note or "no sync running"
    return True, f"{label}: answered at {redact_url(job.api_url)}: {said}"


def api_probes(config: Config) -> list[Coroutine[Any, Any, Line]]:
    """One probe per proxbox-api the http jobs call: per target, as a target's jobs share its URL,
    key and TLS settings (the first job of each asks, its settings named)."""
    by_target: dict[tuple[str, str], list[JobConfig]] = {}
    for job in config.jobs:
        if job.invoke == "http" and job.api_url:
            by_target.setdefault((job.target_name, job.api_url), []).append(job)
    if not by_target:
        return []
    several = len(config.jobs) > 1
    return [
        probe_api(
            jobs[0],
            SettingNames.of(config.names(jobs[0].name)),
            f"proxbox-api (jobs {', '.join(j.name for j in jobs)})" if several else "proxbox-api",
        )
        for jobs in by_target.values()
    ]


def probe(config: Config) -> list[Line]:
    """NetBox's probe and one per proxbox-api, each bounded by its own timeout."""

    async def every() -> list[Line]:
        apis = api_probes(config)
        lines = list(await asyncio.gather(probe_netbox(config), *apis))
        if not apis:
            lines.append((True, "proxbox-api: no http job with a URL; not asked"))
        return lines

    return asyncio.run(every())
