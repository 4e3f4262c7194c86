"""What one run produced: the single value every trigger returns to the loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"


class Label(StrEnum):
    """A finished run as operators see it in logs, metrics, status and pings."""

    SUCCESS = "success"
    DEGRADED = "degraded"
    FAILURE = "failure"
    SKIPPED = "skipped"


class ProgressKind(StrEnum):
    STREAM_STARTED = "stream_started"
    STAGE_STARTED = "stage_started"
    STAGE_COMPLETED = "stage_completed"


@dataclass(frozen=True)
class Progress:
    """One step of a run worth reporting: the sync started, a stage started or completed.

    ``index``/``total`` place a stage among the run's stages; the counts and the
    duration are what proxbox-api reported when the stage completed.
    """

    kind: ProgressKind
    stage: str | None = None
    index: int | None = None
    total: int | None = None
    count: int | None = None
    created: int | None = None
    updated: int | None = None
    duration_s: float | None = None
    operation_id: str | None = None

    def fields(self) -> dict[str, Any]:
        """The figures that are set, for structured log lines."""
        return {k: v for k, v in vars(self).items() if k != "kind" and v is not None}


@dataclass(frozen=True)
class Outcome:
    """The verdict of one run.

    ``min_wait`` is a floor on the pause before the next attempt that the
    trigger learnt from the far side (``Retry-After``); the loop honours the
    larger of it and its own backoff. ``auth_rejected`` marks failures whose
    retries count toward proxbox-api's lockout, so the loop doubles its wait.
    ``details`` carries counts (``devices``, ``virtual_machines``, ...) and
    degradation figures for telemetry.
    """

    status: Status
    reason: str = ""
    min_wait: float | None = None
    degraded: bool = False
    auth_rejected: bool = False
    skip_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS

    @property
    def label(self) -> Label:
        """Outcome as operators see it in logs and metrics."""
        if self.status is Status.SUCCESS and self.degraded:
            return Label.DEGRADED
        return Label(self.status.value)

    @classmethod
    def success(cls, reason: str = "", **kw: Any) -> Outcome:
        return cls(Status.SUCCESS, reason, **kw)

    @classmethod
    def failure(cls, reason: str, **kw: Any) -> Outcome:
        return cls(Status.FAILURE, reason, **kw)

    @classmethod
    def skipped(cls, skip_reason: str, reason: str, **kw: Any) -> Outcome:
        return cls(Status.SKIPPED, reason, skip_reason=skip_reason, **kw)
