"""The loop's control API in virtual time: run now, pause and resume, without moving the schedule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxbox_scheduler.core.loop import Scheduler
from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.state import MemoryStore
from tests.support.clock import FakeClock, run_virtual
from tests.unit.test_loop import FAIL, Recorder, Script, Step, loop_settings, play


class Triggers(Recorder):
    """Also records what started each run and each pause change."""

    def __init__(self) -> None:
        super().__init__()
        self.triggers: list[str] = []
        self.paused: list[bool] = []

    def on_run_trigger(self, run_id: str, trigger: str) -> None:
        self.triggers.append(trigger)

    def on_paused(self, paused: bool) -> None:
        self.paused.append(paused)


def at(*actions: tuple[float, str]) -> Any:
    """A ``before`` hook calling scheduler methods (``a+b``: one after the other) at virtual times;
    their answers land in ``answers``."""
    answers: list[Any] = []

    def before(loop: asyncio.AbstractEventLoop, clock: FakeClock, scheduler: Scheduler) -> None:
        def call(methods: str) -> None:
            answers.extend(getattr(scheduler, method)() for method in methods.split("+"))

        for when, methods in actions:
            loop.call_at(when, call, methods)

    before.answers = answers  # type: ignore[attr-defined]
    return before


def played(mode: str, steps: list[Step], *actions: tuple[float, str], **settings: Any) -> Any:
    recorder = Triggers()
    before = at(*actions)

    def wire(loop: asyncio.AbstractEventLoop, clock: FakeClock, scheduler: Scheduler) -> None:
        scheduler.observer = recorder
        before(loop, clock, scheduler)

    script, _ = play(mode, steps, before=wire, **settings)
    return script, recorder, before.answers


def test_run_now_starts_at_once_and_leaves_the_interval_grid_alone() -> None:
    script, recorder, answers = played("interval=10", [Step(2)] * 3, (3, "request_run"))
    assert answers == [None]
    assert script.starts == [3, 10, 20]
    assert recorder.triggers == ["manual", "scheduled", "scheduled"]


def test_run_now_is_refused_while_a_run_is_going() -> None:
    script, recorder, answers = played("interval=10", [Step(5)] * 2, (12, "request_run"))
    assert answers == ["a run is in progress"]
    assert script.starts == [10, 20]
    assert recorder.triggers == ["scheduled", "scheduled"]


def test_a_failed_manual_run_owes_the_backoff_like_any_other() -> None:
    script, _, _ = played("interval=10", [Step(1, FAIL), Step(1)], (8, "request_run"), backoff=30)
    assert script.starts == [8, 39]


def test_run_now_in_cron_mode_keeps_the_pending_fire() -> None:
    script, recorder, _ = played("cron=*/5 * * * *", [Step(2)] * 2, (60, "request_run"))
    start = FakeClock().start
    assert [(wall - start).total_seconds() for wall in script.walls] == [60, 300]
    assert recorder.skips == []


def test_paused_fires_are_skipped_and_counted_until_resumed() -> None:
    script, recorder, _ = played("interval=10", [Step(1)] * 2, (1, "pause"), (35, "resume"))
    assert script.starts == [40, 50]
    assert recorder.skips == [("paused", 1)] * 3
    assert recorder.paused == [True, False]


def test_pause_twice_reports_once() -> None:
    _, recorder, _ = played("interval=10", [Step(1)], (1, "pause"), (2, "pause"), (15, "resume"))
    assert recorder.paused == [True, False]


def test_a_paused_continuous_job_holds_until_resumed_without_counting_skips() -> None:
    script, recorder, _ = played("continuous", [Step(1)] * 2, (0.5, "pause"), (7200, "resume"))
    assert script.starts == [0, 7200]
    assert recorder.skips == []


def test_run_now_runs_a_paused_job_once_and_it_stays_paused() -> None:
    script, recorder, _ = played(
        "interval=10", [Step(1)] * 2, (1, "pause"), (15, "request_run"), (25, "resume")
    )
    assert script.starts == [15, 30]
    assert recorder.triggers == ["manual", "scheduled"]
    assert recorder.skips == [("paused", 1), ("paused", 1)]


def test_run_now_is_refused_while_stopping() -> None:
    script, _, answers = played("interval=10", [Step(1)] * 3, (15, "request_stop+request_run"))
    assert answers == [None, "the scheduler is stopping"]
    assert script.starts == [10]


def _with_hook(hook: Any, *actions: tuple[float, str]) -> list[float]:
    starts: list[float] = []

    async def main() -> None:
        clock = FakeClock()
        script = Script(clock, [Step(1)] * 2)
        scheduler = Scheduler(loop_settings("interval=10"), script, clock=clock, pause_hook=hook)
        script.scheduler = scheduler
        loop = asyncio.get_running_loop()
        for when, method in actions:
            loop.call_at(when, getattr(scheduler, method))
        await scheduler.run_forever()
        starts.extend(script.starts)

    run_virtual(main())
    return starts


def test_the_pause_hook_is_awaited_with_each_change() -> None:
    seen: list[bool] = []

    async def hook(paused: bool) -> None:
        seen.append(paused)

    assert _with_hook(hook, (1, "pause"), (15, "resume")) == [20, 30]
    assert seen == [True, False]


def test_a_pause_restored_from_the_store_is_not_written_back_but_a_resume_is() -> None:
    from proxbox_scheduler.state import JobState

    seen: list[bool] = []

    async def hook(paused: bool) -> None:
        seen.append(paused)

    async def main() -> None:
        clock = FakeClock()
        script = Script(clock, [Step(1)] * 2)
        memory = JobState("default", paused=True)
        scheduler = Scheduler(
            loop_settings("interval=10"), script, clock=clock, pause_hook=hook, memory=memory
        )
        script.scheduler = scheduler
        asyncio.get_running_loop().call_at(15, scheduler.resume)
        await scheduler.run_forever()

    run_virtual(main())
    assert seen == [False]


def test_a_failing_pause_hook_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def hook(paused: bool) -> None:
        raise OSError("disk full")

    assert _with_hook(hook, (1, "pause"), (15, "resume")) == [20, 30]
    assert "could not persist the pause state" in caplog.text


def test_outcome_of_a_manual_run_is_reported_like_a_scheduled_one() -> None:
    _, recorder, _ = played("interval=10", [Step(1, Outcome.success())] * 2, (3, "request_run"))
    assert [outcome.label.value for outcome, _, _ in recorder.ends] == ["success", "success"]


def _with_store(remembered_paused: bool, *actions: tuple[float, str]) -> tuple[list[float], Any, Triggers]:
    """The loop on a memory store (a pause persisted or not beforehand); what the store holds after."""
    store, recorder = MemoryStore(now=FakeClock().now), Triggers()
    out: dict[str, Any] = {}

    async def main() -> None:
        clock = FakeClock()
        await store.open()
        if remembered_paused:
            await store.set_paused("default", True)
        script = Script(clock, [Step(1)] * 2)
        memory = await store.load("default")
        scheduler = Scheduler(
            loop_settings("interval=10"), script, clock=clock, observer=recorder, store=store, memory=memory
        )
        script.scheduler = scheduler
        loop = asyncio.get_running_loop()
        for when, method in actions:
            loop.call_at(when, getattr(scheduler, method))
        await scheduler.run_forever()
        out["state"] = await store.load("default")
        out["starts"] = script.starts

    run_virtual(main())
    return out["starts"], out["state"], recorder


def test_a_pause_is_persisted_in_the_store_and_a_resume_clears_it() -> None:
    starts, state, recorder = _with_store(False, (1, "pause"), (15, "request_run"), (25, "request_run"))
    assert recorder.paused == [True] and state.paused and starts == [15, 25]
    starts, state, _ = _with_store(False, (1, "pause"), (15, "resume"))
    assert starts == [20, 30] and not state.paused


def test_a_persisted_pause_holds_after_a_restart_until_resumed() -> None:
    starts, state, recorder = _with_store(True, (25, "resume"))
    assert recorder.paused == [True, False] and recorder.skips == [("paused", 1), ("paused", 1)]
    assert starts == [30, 40] and not state.paused


def test_a_manual_run_is_in_the_store_history_as_manual() -> None:
    _, state, _ = _with_store(False, (3, "request_run"))
    assert [run.trigger for run in reversed(state.runs)] == ["manual", "scheduled"]
    assert state.runs[-1].slot is None and state.runs[0].slot is not None
