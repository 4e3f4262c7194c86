"""The console page without a server: words for times, the card, the timeline, stages and counts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind
from proxbox_scheduler.ops.control import Action, Control, bearer
from proxbox_scheduler.ops.page import View, render
from proxbox_scheduler.ops.page_format import (
    WINDOW_MAX,
    WINDOW_MIN,
    duration,
    parse_window,
    relative,
    ticks,
    when,
)
from proxbox_scheduler.telemetry.status import StatusStore

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.052, "52 ms"),
        (0.9994, "999 ms"),
        (4.25, "4.2 s"),
        (192, "3 min 12 s"),
        (11520, "3 h 12 min"),
        (190000, "2 d 4 h"),
        (None, "—"),
    ],
)
def test_durations_read_like_people_say_them(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_every_duration_has_a_unit(seconds: float) -> None:
    assert duration(seconds).split()[-1] in {"ms", "s", "min", "h"}


def test_times_in_the_jobs_zone_with_its_abbreviation_and_relative() -> None:
    assert when(T0, BERLIN) == "2026-11-29 11:00:00 CET"
    assert when(None, BERLIN) == "—"
    assert relative(T0 + timedelta(hours=3, minutes=12), T0) == "in 3 h 12 min"
    assert relative(T0 - timedelta(seconds=5), T0) == "5.0 s ago"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("24h", 86400),
        ("90m", 5400),
        ("7d", 604800),
        ("3600", 3600),
        ("1", WINDOW_MIN),
        ("99d", WINDOW_MAX),
        (None, 86400),
    ],
)
def test_windows_parse_and_stay_within_bounds(raw: str | None, seconds: float) -> None:
    assert parse_window(raw, 86400) == seconds


@pytest.mark.parametrize("raw", ["x", "-1h", "1 h", "1e9", "24H", "½d"])
def test_bad_windows_say_what_is_accepted(raw: str) -> None:
    with pytest.raises(ValueError, match="such as 3600"):
        parse_window(raw, 86400)


@given(st.integers(min_value=60, max_value=31 * 86400))
def test_ticks_are_few_ordered_and_inside_the_window(span: int) -> None:
    marks = ticks(T0 - timedelta(seconds=span), T0, BERLIN)
    assert 1 <= len(marks) <= 9
    assert marks == sorted(marks)
    assert all(T0 - timedelta(seconds=span) <= m <= T0 for m in marks)


def _store() -> StatusStore:
    job = {
        "name": "default",
        "mode": "interval=600",
        "zone": "Europe/Berlin",
        "invoke": "http",
        "target": "t",
    }
    return StatusStore({"version": "9"}, hard_limit=100.0, monotonic=lambda: 0.0, wall=lambda: T0, jobs=[job])


def _run(store: StatusStore, run_id: str, start: datetime, outcome: Outcome, stages: int = 0) -> None:
    store.job("default").on_run_start(run_id, start)
    for index in range(1, stages + 1):
        store.job("default").on_progress(
            run_id, Progress(ProgressKind.STAGE_STARTED, f"stage-{index}", index, stages)
        )
        store.job("default").on_progress(
            run_id,
            Progress(
                ProgressKind.STAGE_COMPLETED,
                f"stage-{index}",
                index,
                stages,
                count=index,
                duration_s=0.1 * index if index != 4 else 9.0,
            ),
        )
    store.job("default").on_run_end(run_id, outcome, 12.5, 0)


def test_the_card_says_state_next_fire_outcome_failures_and_stale_success() -> None:
    store = _store()
    _run(store, "aaaaaaaa-1", T0 - timedelta(hours=30), Outcome.success(details={"counts": {"devices": 3}}))
    _run(store, "bbbbbbbb-2", T0 - timedelta(hours=1), Outcome.failure("boom <b>"), stages=6)
    store.job("default").on_waiting(T0 + timedelta(hours=3, minutes=12), 0)
    page = render(store.snapshot(), View(now=T0, stale_after=86400))
    assert "2026-11-29 14:12:00 CET (in 3 h 12 min)" in page
    assert "✕ failure</span> — boom &lt;b&gt;" in page
    assert 'class="stale"' in page and "older than 1 d 0 h" in page
    assert '<dd class="warn">1</dd>' in page
    assert "stage-4 <strong>slowest</strong>" in page and page.count("<tr class=slowest>") == 1
    assert "<td>count 2</td>" in page
    fresh = render(store.snapshot(), View(now=T0, stale_after=31 * 86400))
    assert 'class="stale"' not in fresh


def test_the_timeline_shows_only_the_window_and_marks_skips_in_words() -> None:
    store = _store()
    _run(store, "old00000", T0 - timedelta(hours=30), Outcome.success())
    _run(store, "new00000", T0 - timedelta(hours=2), Outcome.success(degraded=True))
    store.job("default").on_skip("paused", 3, "the job is paused")
    page = render(store.snapshot(), View(now=T0))
    assert page.count('<g class="run') == 1 and "o-degraded" in page and "◆" in page
    assert "skipped 3 fires (paused) at 2026-11-29 11:00:00 CET" in page
    assert "1 runs and 3 skipped fires in the window" in page
    wide = render(store.snapshot(), View(now=T0, window=2 * 86400, window_raw="2d"))
    assert wide.count('<g class="run') == 2 and '<option value="2d" selected>' in wide


def test_running_state_names_the_stage_and_controls_only_when_on() -> None:
    store = _store()
    store.job("default").on_run_trigger("cccccccc", "manual")
    store.job("default").on_run_start("cccccccc", T0)
    store.job("default").on_progress(
        "cccccccc", Progress(ProgressKind.STAGE_STARTED, "virtual-machines", 3, 12)
    )
    page = render(store.snapshot(), View(now=T0))
    assert "running stage 3 of 12 (virtual-machines)" in page
    assert 'data-action="run"' not in page and "token-form" not in page
    store.job("default").on_paused(True)
    controlled = render(store.snapshot(), View(now=T0, control=True))
    assert 'data-action="run"' in controlled and 'data-action="resume"' in controlled


def test_a_per_stage_run_is_shown_by_its_stage_alone() -> None:
    store = _store()
    store.job("default").on_run_start("dddddddd", T0)
    store.job("default").on_progress(
        "dddddddd", Progress(ProgressKind.STAGE_STARTED, "virtual-machines", 1, 1)
    )
    page = render(store.snapshot(), View(now=T0))
    assert "running virtual-machines" in page and "stage 1 of 1" not in page


def test_a_drop_to_zero_is_called_out() -> None:
    store = _store()
    _run(store, "one00000", T0 - timedelta(hours=2), Outcome.success(details={"counts": {"devices": 5}}))
    _run(store, "two00000", T0 - timedelta(hours=1), Outcome.success(details={"counts": {"devices": 0}}))
    page = render(store.snapshot(), View(now=T0))
    assert "dropped to 0" in page and "<tr class=dropped>" in page


# ---------------------------------------------------------------- control, with a real loop in a thread


class Target:
    def __init__(self) -> None:
        self.paused = False
        self.running = False

    def request_run(self) -> str | None:
        return "a run is in progress" if self.running else None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer token-0123456789abcd", True),
        ("bearer  token-0123456789abcd ", True),
        (None, False),
        ("Bearer token-0123456789abc", False),
        ("Basic token-0123456789abcd", False),
        ("token-0123456789abcd", False),
    ],
)
def test_only_the_exact_bearer_token_is_authorized(
    loop: asyncio.AbstractEventLoop, header: str | None, ok: bool
) -> None:
    assert Control("token-0123456789abcd", loop, {}).authorized(header) is ok


def test_actions_are_applied_on_the_loop_and_answered(loop: asyncio.AbstractEventLoop) -> None:
    target = Target()
    control = Control("t" * 20, loop, {"default": target})
    assert control.act("default", Action.RUN).code == 202
    assert control.act("default", Action.PAUSE).body["paused"] is True and target.paused
    assert control.act("default", Action.RESUME).body["result"] == "resumed"
    target.running = True
    assert control.act("default", Action.RUN).code == 409
    assert control.act("other", Action.RUN).code == 404


def test_a_closed_loop_answers_503(loop: asyncio.AbstractEventLoop) -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    assert Control("t" * 20, closed, {"default": Target()}).act("default", Action.RUN).code == 503
    assert bearer("Bearer  x ") == b"x"


def test_each_job_gets_its_own_target_and_one_not_built_yet_is_503(loop: asyncio.AbstractEventLoop) -> None:
    built: dict[str, Target] = {"full": Target()}
    control = Control("t" * 20, loop, built, ["full", "vms"])
    assert control.act("vms", Action.PAUSE).body == {
        "job": "vms",
        "action": "pause",
        "error": "the job is starting",
    }
    built["vms"] = Target()  # read live: the service adds each job's loop once it is built
    assert control.act("vms", Action.PAUSE).code == 200 and built["vms"].paused and not built["full"].paused
    assert control.act("nope", Action.RUN).code == 404


def test_the_page_has_a_card_per_configured_job() -> None:
    jobs = [
        {"name": name, "mode": "interval=60", "zone": "UTC", "invoke": "http", "target": "t"} for name in "ab"
    ]
    store = StatusStore({"version": "9"}, hard_limit=1.0, monotonic=lambda: 0.0, wall=lambda: T0, jobs=jobs)
    store.job("b").on_paused(True)
    store.job("b").on_waiting(T0, 0)
    page = render(store.snapshot(), View(now=T0, control=True))
    assert 'id="job-a"' in page and 'id="job-b"' in page
    assert page.count('data-action="resume"') == 1 and page.count('data-action="pause"') == 1
