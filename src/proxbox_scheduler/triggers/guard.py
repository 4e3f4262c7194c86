"""NetBoxGuard: asks NetBox's Jobs API before every run of either invoke, then runs or skips.

proxbox-api's ``/sync/active`` cannot see a NetBox-side sync (the plugin's Job
uses per-stage streams it does not register), so only NetBox can tell whether
its form, its REST API, a person's ``proxbox_sync`` or another scheduler has a
sync going. This decorator makes "never beside another sync" hold for all of them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.core.trigger import RunContext, Trigger
from proxbox_scheduler.netbox.client import JobsAnswer
from proxbox_scheduler.netbox.decision import (
    Action,
    NetBoxState,
    Policy,
    Situation,
    decide,
    has_enqueue_once,
)
from proxbox_scheduler.netbox.jobs import first_busy, first_recurring

if TYPE_CHECKING:
    from proxbox_scheduler.config import Config
    from proxbox_scheduler.jobs import JobConfig

log = logging.getLogger("proxbox_scheduler.netbox")
UNREACHABLE_SKIP = "netbox_unreachable"
"""The skip reason (and metric label) of a run skipped because NetBox could not be asked."""
REACHABLE_DETAIL = "netbox_reachable"
"""Outcome detail the metrics turn into the proxbox_scheduler_netbox_reachable gauge."""


class JobsSource(Protocol):
    async def active_jobs(self) -> JobsAnswer: ...

    async def aclose(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class GuardSettings:
    policy: Policy
    enqueue_once: bool
    command: str
    policy_name: str
    command_name: str


class NetBoxGuard:
    """A Trigger that runs ``inner`` only when NetBox has no proxbox sync pending or running."""

    def __init__(
        self,
        inner: Trigger,
        source: JobsSource,
        settings: GuardSettings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.inner, self.source, self.settings, self._now = inner, source, settings, now
        self._reachable: bool | None = None

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            await self.source.aclose()

    async def run(self, ctx: RunContext) -> Outcome:
        answer = await self.source.active_jobs()
        self._note(answer)
        jobs = answer.jobs or ()
        busy = first_busy(jobs, self._now())
        recurring = first_recurring(jobs)
        state = NetBoxState.UNREACHABLE if not answer.reachable else NetBoxState.IDLE
        if busy is not None:
            state = NetBoxState.BUSY
        s = self.settings
        action = decide(Situation(state, s.policy, s.enqueue_once, recurring is not None))
        if action is Action.SKIP_BUSY:
            assert busy is not None
            outcome = Outcome.skipped("busy", f"{busy.describe()}; not running beside it")
        elif action is Action.SKIP_UNREACHABLE:
            outcome = Outcome.skipped(
                UNREACHABLE_SKIP, f"NetBox cannot be asked ({answer.problem}); {s.policy_name}=skip"
            )
        elif action is Action.REFUSE:
            assert recurring is not None
            outcome = Outcome.failure(
                f"refusing to run {s.command!r}: --enqueue-once deletes NetBox's recurring schedule "
                f"({recurring.describe_schedule()}); remove --enqueue-once from {s.command_name}"
            )
        else:
            if not answer.reachable:
                ctx.log.warning(
                    "NetBox cannot be asked (%s); running anyway (%s=run)", answer.problem, s.policy_name
                )
            outcome = await self.inner.run(ctx)
        details = {**outcome.details, REACHABLE_DETAIL: answer.reachable}
        return dataclasses.replace(outcome, details=details)

    def _note(self, answer: JobsAnswer) -> None:
        """One log line per change of reachability (the first answer counts as a change)."""
        if answer.reachable is self._reachable:
            return
        self._reachable = answer.reachable
        if answer.reachable:
            log.info("NetBox answered: its Jobs API is checked before every run")
        else:
            effect = "runs are skipped" if self.settings.policy is Policy.SKIP else "runs go ahead unchecked"
            policy = self.settings.policy_name
            log.warning(f"NetBox cannot be asked: {answer.problem}; {effect} until it answers ({policy})")


def netbox_source(config: Config) -> JobsSource | None:
    """The one Jobs API client every job's guard asks (None while NetBox awareness is off);
    closing it more than once is harmless, so each guard may close it at shutdown."""
    if config.netbox is None:
        return None
    from proxbox_scheduler.netbox.client import NetBoxClient

    return NetBoxClient(config.netbox)


def guarded(trigger: Trigger, job: JobConfig, config: Config, source: JobsSource | None) -> Trigger:
    """``job``'s trigger behind a NetBoxGuard asking ``source``, or unchanged without one."""
    if source is None:
        return trigger
    from proxbox_scheduler.config import name_of

    settings = GuardSettings(
        policy=Policy(config.netbox_unreachable),
        enqueue_once=job.invoke == "exec" and has_enqueue_once(job.exec_cmd),
        command=job.target,
        policy_name=name_of("netbox_unreachable"),
        command_name=config.names(job.name)("exec_cmd"),
    )
    return NetBoxGuard(trigger, source, settings)
