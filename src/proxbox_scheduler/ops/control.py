"""Run now, pause and resume from the ops server's thread, applied on the scheduler's event loop.

The token is compared in constant time and a wrong or missing one gets the same
401; the request carries it in ``Authorization: Bearer``, never in a cookie, so a
page on another site cannot make the browser send it (no CSRF).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

ANSWER_SECONDS = 5.0
"""How long a control request waits for the event loop to apply it."""


class Action(StrEnum):
    RUN = "run"
    PAUSE = "pause"
    RESUME = "resume"


class Controllable(Protocol):
    """What the scheduler offers (core.loop.Scheduler)."""

    def request_run(self) -> str | None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> bool: ...


@dataclass(frozen=True)
class Answer:
    code: int
    body: dict[str, Any] = field(default_factory=dict)


UNAUTHORIZED = Answer(401, {"error": "unauthorized"})


def bearer(header: str | None) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header (empty when there is none)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


class Control:
    """The control endpoints' logic; the server only parses the path and writes the answer."""

    def __init__(
        self,
        token: str,
        loop: asyncio.AbstractEventLoop,
        jobs: Mapping[str, Controllable],
        names: Collection[str] | None = None,
    ) -> None:
        """``jobs`` is read live (the service fills it as each job's loop is built); ``names`` are
        the configured jobs, so one whose loop is not built yet is 503, not 404."""
        self._token = token.encode()
        self._loop = loop
        self._jobs = jobs
        self._names = frozenset(jobs if names is None else names)

    def authorized(self, header: str | None) -> bool:
        return hmac.compare_digest(bearer(header), self._token)

    def act(self, job: str, action: Action) -> Answer:
        """Apply ``action`` to ``job`` on the event loop and say what happened."""
        target = self._jobs.get(job)
        if target is None and job in self._names:
            return Answer(503, {"job": job, "action": action.value, "error": "the job is starting"})
        if target is None:
            return Answer(404, {"error": f"no job named {job!r}"})
        answer: concurrent.futures.Future[Answer] = concurrent.futures.Future()

        def apply() -> None:
            try:
                answer.set_result(_apply(job, target, action))
            except Exception as exc:  # reported to the caller, never into the loop
                answer.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(apply)
            return answer.result(timeout=ANSWER_SECONDS)
        except RuntimeError:  # the loop is closed: the process is stopping
            return Answer(503, {"job": job, "action": action.value, "error": "the scheduler is stopping"})
        except concurrent.futures.TimeoutError:
            return Answer(503, {"job": job, "action": action.value, "error": "the scheduler did not answer"})


def _apply(job: str, target: Controllable, action: Action) -> Answer:
    if action is Action.RUN:
        refused = target.request_run()
        if refused:
            return Answer(409, {"job": job, "action": action.value, "error": refused})
        return Answer(202, {"job": job, "action": action.value, "result": "run requested"})
    if action is Action.PAUSE:
        target.pause()
    else:
        target.resume()
    result = "paused" if target.paused else "resumed"
    return Answer(200, {"job": job, "action": action.value, "result": result, "paused": target.paused})
