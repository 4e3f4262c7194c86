"""The verdict on one run's event stream: events in, Outcome and progress out, no I/O.

Every rule is applied to events alone, so it can be tested on the captured
streams (``tests/data/samples``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind
from proxbox_scheduler.proxbox.payload import clip, join, parse_json, parse_summary, render
from proxbox_scheduler.proxbox.protocol import (
    COUNT_SUFFIX,
    DISCOVERY_EVENT,
    FAILURE_EVENT,
    FULL_UPDATE_PHASE,
    PHASE_SUMMARY_EVENT,
    STAGE_COUNT_KEY,
    STAGE_STEP_EVENT,
    STAGES,
    STREAM_STEP,
    SUCCESS_EVENT,
)
from proxbox_scheduler.proxbox.sse import Event

REASON_CHARS = 600
"""Cap on a reason built from stream text, which can carry long server details."""

# Pre-filters on raw bytes, so that item-level events are never parsed as JSON.
_STAGE_STEP = re.compile(rb'"step"\s*:\s*"(?:' + "|".join((STREAM_STEP, *STAGES)).encode() + rb')"')
_FULL_UPDATE_PHASE = re.compile(rb'"phase"\s*:\s*"' + FULL_UPDATE_PHASE.encode() + rb'"')
_OPERATION_ID = re.compile(r"operation_id=([\w-]+)")
SNIFF_BYTES = 4096
"""How far into an event's data the pre-filters look for the fields that matter."""
KNOWN_KINDS = frozenset(stage.replace("-", "_") for stage in STAGES)
"""Object kinds proxbox-api reports (``devices_count`` ...), always kept."""
MAX_OTHER_KINDS = 16
"""Other ``*_count`` kinds kept per result; the rest are counted as dropped."""
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Milestone:
    """A point of a run worth an INFO log line: the progress and its sentence."""

    progress: Progress
    message: str


MilestoneSink = Callable[[Milestone], None]


def _ignore(milestone: Milestone) -> None:
    """Default sink: milestones are optional for callers."""


class StreamVerdict:
    """Fed a run's events one by one; returns the Outcome as soon as one is decided.

    Stage starts and ends go to ``on_milestone``. Only ``step`` events that
    name a stage, ``phase_summary``, the full-update ``discovery`` and
    terminal events are parsed as JSON. The same rules judge ``/full-update/stream``
    and the per-stage streams (``/dcim/devices/create/stream`` ...): only a full
    update opens with the ``stream`` step, so only then are twelve stages expected;
    otherwise the stages counted are the ones the stream started.
    """

    def __init__(self, on_milestone: MilestoneSink = _ignore) -> None:
        self._on_milestone = on_milestone
        self.last_stage: str | None = None
        self._announced: int | None = None
        self._started: dict[str, int] = {}
        self._failed_objects = 0
        self._degraded = False

    def feed(self, event: Event) -> Outcome | None:
        name = event.event
        if name == SUCCESS_EVENT:
            return self._terminal_success(event)
        if name == FAILURE_EVENT:
            return self._terminal_failure(event)
        if name == STAGE_STEP_EVENT:
            if _STAGE_STEP.search(event.raw, 0, SNIFF_BYTES):
                self._step(event)
        elif name == PHASE_SUMMARY_EVENT:
            self._phase_summary(event)
        elif name == DISCOVERY_EVENT and _FULL_UPDATE_PHASE.search(event.raw, 0, SNIFF_BYTES):
            body = parse_json(event.raw)
            if isinstance(body, dict) and isinstance(body.get("count"), int) and body["count"] > 0:
                self._announced = body["count"]
        return None

    @property
    def _total(self) -> int:
        """Stages this run is expected to have: as announced for a full update, else those started."""
        return self._announced if self._announced is not None else len(self._started)

    def finish(self, cause: str = "") -> Outcome:
        """The stream ended (or broke, ``cause``) before a terminal event: never a success."""
        reason = "the stream ended before proxbox-api reported a result"
        if cause:
            reason += f" ({cause})"
        return Outcome.failure(reason + self.last_stage_note())

    def last_stage_note(self) -> str:
        """``; last stage: x`` for reasons, so an operator knows how far the run got."""
        return f"; last stage: {self.last_stage}" if self.last_stage else ""

    # ------------------------------------------------------------ progress

    def _step(self, event: Event) -> None:
        body = parse_json(event.raw)
        if not isinstance(body, dict):
            return
        step, status = body.get("step"), body.get("status")
        if step == STREAM_STEP and status == "started":
            self._announced = len(STAGES)  # until the full update's discovery says otherwise
            found = _OPERATION_ID.search(str(body.get("message", "")))
            op = found.group(1) if found else None
            progress = Progress(ProgressKind.STREAM_STARTED, operation_id=op)
            self._on_milestone(Milestone(progress, f"sync started (operation_id={op})"))
        elif step in STAGES and status == "started":
            index = self._started[step] = len(self._started) + 1
            self.last_stage = step
            progress = Progress(ProgressKind.STAGE_STARTED, stage=step, index=index, total=self._total)
            self._on_milestone(Milestone(progress, f"stage {step} started ({index}/{self._total})"))
        elif step in STAGES and status == "completed":
            self._on_milestone(self._stage_completed(step, body))

    def _stage_completed(self, step: str, body: dict[str, Any]) -> Milestone:
        result = body.get("result")
        figures = {
            key: result[key]
            for key in ("count", "created", "updated")
            if isinstance(result, dict) and isinstance(result.get(key), int)
        }
        duration = body.get("duration_seconds")
        progress = Progress(
            ProgressKind.STAGE_COMPLETED,
            stage=step,
            index=self._started.get(step) or len(self._started),
            total=self._total,
            duration_s=duration if isinstance(duration, (int, float)) else None,
            **figures,
        )
        shown = " ".join(f"{k}={v}" for k, v in figures.items())
        took = f" in {duration:.2f} s" if progress.duration_s is not None else ""
        message = f"stage {step} completed ({progress.index}/{self._total}): {shown or 'no counts'}{took}"
        return Milestone(progress, message)

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
            said = "; ".join(render(e.get("detail") if isinstance(e, dict) else e) for e in listed if e)
            text = join(body.get("message"), said) or f"proxbox-api sent '{event.event}' with ok=false"
            return Outcome.failure(clip(text, REASON_CHARS) + self.last_stage_note())
        result = body.get("result")
        if not isinstance(result, dict):
            result = {}
        counts, dropped = bounded_counts(result)
        if not counts:
            counts = self._stage_count(result)
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
        message = render(body.get("message")) or "sync completed"
        return Outcome.success(clip(message, REASON_CHARS), degraded=degraded, details=details)

    def _stage_count(self, result: Mapping[str, Any]) -> dict[str, int]:
        """A per-stage stream's ``result: {"count": n}``, keyed by the one stage it ran.

        Without it a VM-stage job would report no counts, and a run that synced
        nothing could not be told from one that synced everything.
        """
        if self._announced is not None or len(self._started) != 1:
            return {}
        count = result.get(STAGE_COUNT_KEY)
        if not isinstance(count, int) or isinstance(count, bool):
            return {}
        return {next(iter(self._started)).replace("-", "_"): count}

    def _terminal_failure(self, event: Event) -> Outcome:
        body = parse_json(event.raw)
        if isinstance(body, dict):
            text = join(body.get("error") or body.get("message"), body.get("detail"))
        else:
            text = event.data
        text = text or f"proxbox-api sent '{event.event}' without a reason"
        return Outcome.failure(clip(text, REASON_CHARS) + self.last_stage_note())


def bounded_counts(result: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """The ``*_count`` values of a result: every known kind, then at most MAX_OTHER_KINDS others.

    Kinds become metric labels and history entries, so a result with thousands
    of them must not grow either without bound. Returns the counts and how many were dropped.
    """
    counts: dict[str, int] = {}
    others = dropped = 0
    for key, value in result.items():
        if not key.endswith(COUNT_SUFFIX) or not isinstance(value, int) or isinstance(value, bool):
            continue
        kind = key.removesuffix(COUNT_SUFFIX)
        if kind not in KNOWN_KINDS:
            if others >= MAX_OTHER_KINDS or not _KIND_NAME.fullmatch(kind):
                dropped += 1
                continue
            others += 1
        counts[kind] = value
    return counts, dropped
