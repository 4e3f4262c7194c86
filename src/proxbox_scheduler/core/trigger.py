"""The contract between the loop and a trigger."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from proxbox_scheduler.core.outcome import Outcome, Progress

ProgressSink = Callable[[Progress], None]
"""Called as a run advances, e.g. with Progress(STAGE_STARTED, stage="devices")."""


def new_run_id() -> str:
    """A UUID, as healthchecks.io expects for its rid parameter."""
    return str(uuid.uuid4())


def _ignore_progress(progress: Progress) -> None:
    """Default sink: progress is optional for observers."""


class RunLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Tags every record with the run id and keeps the per-call ``extra`` fields.

    The stock adapter replaces a call's ``extra`` with its own before Python 3.13,
    which would drop structured fields such as stage, count and duration_s.
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


@dataclass
class RunContext:
    """What a trigger gets for one run: its id, a logger that tags the id, a progress sink.

    ``job`` is the job's name; ``slot`` its nominal fire time (None for runs no
    schedule asked for: `once`, run-on-start, continuous), so ``<job>:<slot>``
    names one scheduled run across restarts and replicas.
    """

    run_id: str
    log: logging.LoggerAdapter  # type: ignore[type-arg]
    progress: ProgressSink = field(default=_ignore_progress)
    job: str = "default"
    slot: datetime | None = None


class Trigger(Protocol):
    """One way of running a sync.

    ``run`` must return an Outcome for every failure it can name (never raise
    for an expected failure) and must release its resources promptly when the
    task running it is cancelled: the loop cancels on timeout and shutdown.
    """

    async def run(self, ctx: RunContext) -> Outcome: ...

    async def aclose(self) -> None: ...
