"""NetBox awareness without servers: Jobs API parsing (against the real capture), the decision
table, the guard's composition with proxbox-api's busy check, the zero-objects judgement, settings."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxbox_scheduler.config import ConfigError, load, name_of
from proxbox_scheduler.core.judge import judge_counts
from proxbox_scheduler.core.outcome import Label, Outcome
from proxbox_scheduler.core.trigger import RunContext
from proxbox_scheduler.netbox.client import JobsAnswer, authorization
from proxbox_scheduler.netbox.decision import (
    RULES,
    Action,
    NetBoxState,
    Policy,
    Situation,
    decide,
    has_enqueue_once,
)
from proxbox_scheduler.netbox.jobs import (
    JobsAnswerError,
    NetBoxJob,
    first_busy,
    first_recurring,
    jobs_query,
    parse_job,
    parse_jobs,
)
from proxbox_scheduler.parsers import DEFAULT_EXEC_CMD
from proxbox_scheduler.triggers.guard import GuardSettings, NetBoxGuard
from tests.support.captures import sample
from tests.support.netbox_jobs import job

NOW = datetime(2026, 12, 1, 12, 1, 30, tzinfo=UTC)
CAPTURE = "netbox-job-running-vs-sync-active.txt"


def capture_polls() -> list[tuple[str, str, Any]]:
    """(time, what was asked, parsed answer) for each line of the real poll capture."""
    polls = []
    for line in sample(CAPTURE).splitlines():
        found = re.fullmatch(r"(\S+) (sync/active|jobs\?status=running)=(.*)", line)
        assert found, line
        polls.append((found[1], found[2], json.loads(found[3])))
    return polls


# ---------------------------------------------------------------- the Jobs API, against the capture


@pytest.mark.parametrize(("stamp", "answer"), [(t, a) for t, w, a in capture_polls() if w.startswith("jobs")])
def test_capture_jobs_polls_are_busy_exactly_when_they_list_the_cli_job(stamp: str, answer: Any) -> None:
    jobs = parse_jobs(answer)
    busy = first_busy(jobs, NOW)
    if answer:
        assert busy is not None, stamp
        assert busy.describe() == (
            "NetBox job 50 'Proxbox Sync: Full update (CLI)' running since 2026-12-01T12:01:21Z"
        )
        assert first_recurring(jobs) is None
    else:
        assert busy is None, stamp


def test_capture_shows_sync_active_blind_to_the_netbox_job() -> None:
    """Why NetBox must be asked: proxbox-api said inactive on every poll while the job ran."""
    polls = capture_polls()
    active = [a["active"] for _, w, a in polls if w == "sync/active"]
    busy_polls = [a for _, w, a in polls if w.startswith("jobs") and a]
    assert active and not any(active)
    assert len(busy_polls) >= 5


def test_real_api_row_shapes_parse_and_other_job_classes_are_dropped() -> None:
    page = {
        "count": 4,
        "results": [
            job(7, "Proxbox Sync", "scheduled", interval=60, scheduled="2026-12-01T13:00:00Z"),
            job(8, "Search cache update", "running", started="2026-12-01T12:00:00Z"),
            job(9, "Proxbox Sync: Full update (CLI)", "pending"),
            job(10, "Proxbox Sync: Full update (CLI)", "completed"),
            {"id": "x", "name": "Proxbox Sync"},
            "garbage",
        ],
    }
    jobs = parse_jobs(page)
    assert [j.id for j in jobs] == [7, 9]
    assert jobs[0] == NetBoxJob(
        7, "Proxbox Sync", "scheduled", 60, datetime(2026, 12, 1, 13, 0, tzinfo=UTC), None, jobs[0].created
    )
    assert first_recurring(jobs) is jobs[0]
    assert first_busy(jobs, NOW) is jobs[1]
    assert (
        jobs[0].describe_schedule()
        == "NetBox job 7 'Proxbox Sync' every 60 min, next at 2026-12-01T13:00:00Z"
    )


@pytest.mark.parametrize(
    ("status", "scheduled", "busy"),
    [
        ("running", None, True),
        ("pending", None, True),
        ("scheduled", NOW + timedelta(minutes=30), False),
        ("scheduled", NOW - timedelta(seconds=1), True),
        ("scheduled", None, False),
    ],
)
def test_busy_means_running_pending_or_due(status: str, scheduled: datetime | None, busy: bool) -> None:
    assert NetBoxJob(1, "Proxbox Sync", status, scheduled=scheduled).busy(NOW) is busy


def test_running_jobs_are_named_before_pending_ones() -> None:
    jobs = (NetBoxJob(3, "Proxbox Sync: a", "pending"), NetBoxJob(5, "Proxbox Sync: b", "running"))
    assert first_busy(jobs, NOW) is jobs[1]


@pytest.mark.parametrize("body", [{"detail": "nope"}, "text", 3, None])
def test_an_answer_that_is_not_a_jobs_list_is_an_error(body: Any) -> None:
    with pytest.raises(JobsAnswerError):
        parse_jobs(body)


@given(
    st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_parse_job_never_raises(value: Any) -> None:
    assert parse_job(value) is None or isinstance(parse_job(value), NetBoxJob)


def test_query_asks_for_enqueued_jobs_of_the_sync_class() -> None:
    query = jobs_query()
    assert ("name__isw", "Proxbox Sync") in query
    assert sorted(v for k, v in query if k == "status") == ["pending", "running", "scheduled"]


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("0123456789abcdef0123456789abcdef01234567", "Token 0123456789abcdef0123456789abcdef01234567"),
        ("nbt_abc123.s3cr3t", "Bearer nbt_abc123.s3cr3t"),
    ],
)
def test_token_versions_get_their_scheme(token: str, header: str) -> None:
    assert authorization(token) == header


# ---------------------------------------------------------------- the decision table

S, B, U, IDLE = Policy.SKIP, NetBoxState.BUSY, NetBoxState.UNREACHABLE, NetBoxState.IDLE


@pytest.mark.parametrize(
    ("netbox", "policy", "enqueue_once", "recurring", "action"),
    [
        (IDLE, S, False, False, Action.PROCEED),
        (IDLE, S, False, True, Action.PROCEED),
        (IDLE, Policy.RUN, False, True, Action.PROCEED),
        (IDLE, S, True, False, Action.PROCEED),
        (IDLE, S, True, True, Action.REFUSE),
        (IDLE, Policy.RUN, True, True, Action.REFUSE),
        (B, S, False, False, Action.SKIP_BUSY),
        (B, Policy.RUN, False, False, Action.SKIP_BUSY),
        (B, S, True, True, Action.SKIP_BUSY),
        (U, S, False, False, Action.SKIP_UNREACHABLE),
        (U, S, True, False, Action.SKIP_UNREACHABLE),
        (U, Policy.RUN, False, False, Action.PROCEED),
        (U, Policy.RUN, True, False, Action.PROCEED),
    ],
)
def test_decision_table(
    netbox: NetBoxState, policy: Policy, enqueue_once: bool, recurring: bool, action: Action
) -> None:
    assert decide(Situation(netbox, policy, enqueue_once, recurring)) is action


@given(st.sampled_from(NetBoxState), st.sampled_from(Policy), st.booleans(), st.booleans())
def test_every_situation_is_decided_and_busy_never_proceeds(
    netbox: NetBoxState, policy: Policy, enqueue_once: bool, recurring: bool
) -> None:
    action = decide(Situation(netbox, policy, enqueue_once, recurring), RULES)
    assert action in Action
    if netbox is NetBoxState.BUSY:
        assert action is Action.SKIP_BUSY


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (DEFAULT_EXEC_CMD.split(), False),
        (["netbox", "proxbox_sync", "--wait", "--enqueue-once"], True),
        (["x", "--enqueue-once=1"], True),
        (["x", "--enqueue-onceX"], False),
    ],
)
def test_enqueue_once_detection(argv: list[str], expected: bool) -> None:
    assert has_enqueue_once(argv) is expected


# ---------------------------------------------------------------- the guard with proxbox-api's check


class FakeSource:
    def __init__(self, answer: JobsAnswer) -> None:
        self.answer, self.asked, self.closed = answer, 0, False

    async def active_jobs(self) -> JobsAnswer:
        self.asked += 1
        return self.answer

    async def aclose(self) -> None:
        self.closed = True


class FakeInner:
    """The http trigger asks /sync/active first (skipping when busy); exec never asks it."""

    def __init__(self, invoke: str, api_busy: bool) -> None:
        self.invoke, self.api_busy, self.ran = invoke, api_busy, 0

    async def run(self, ctx: RunContext) -> Outcome:
        if self.invoke == "http" and self.api_busy:
            return Outcome.skipped("busy", "proxbox-api is already running a sync (id op-1)")
        self.ran += 1
        return Outcome.success("synced")

    async def aclose(self) -> None:
        pass


ANSWERS = {
    "idle": JobsAnswer(()),
    "busy": JobsAnswer((NetBoxJob(50, "Proxbox Sync: Full update (CLI)", "running", started=NOW),)),
    "unreachable": JobsAnswer(None, "connection refused to http://127.0.0.1:1"),
}


def ctx() -> RunContext:
    return RunContext("run-1", logging.LoggerAdapter(logging.getLogger("test"), {}))


def run_guard(inner: FakeInner, answer: JobsAnswer, policy: Policy = Policy.SKIP) -> Outcome:
    settings = GuardSettings(policy, False, "cmd", "POLICY_VAR", "CMD_VAR")
    guard = NetBoxGuard(inner, FakeSource(answer), settings, now=lambda: NOW)
    return asyncio.run(guard.run(ctx()))


@pytest.mark.parametrize("invoke", ["http", "exec"])
@pytest.mark.parametrize("api_busy", [False, True])
@pytest.mark.parametrize(
    ("netbox", "policy"), [("idle", S), ("busy", S), ("unreachable", S), ("unreachable", Policy.RUN)]
)
def test_proxbox_busy_x_netbox_busy_x_unreachable_x_invoke(
    invoke: str, api_busy: bool, netbox: str, policy: Policy
) -> None:
    inner = FakeInner(invoke, api_busy)
    outcome = run_guard(inner, ANSWERS[netbox], policy)
    asks_inner = netbox == "idle" or policy is Policy.RUN
    api_skips = invoke == "http" and api_busy
    assert inner.ran == (1 if asks_inner and not api_skips else 0)
    if netbox == "busy":
        assert (outcome.skip_reason, outcome.reason) == (
            "busy",
            "NetBox job 50 'Proxbox Sync: Full update (CLI)' running since 2026-12-01T12:01:30Z; "
            "not running beside it",
        )
    elif not asks_inner:
        assert outcome.skip_reason == "netbox_unreachable"
        assert "connection refused" in outcome.reason and "POLICY_VAR=skip" in outcome.reason
    elif api_skips:
        assert outcome.skip_reason == "busy" and "proxbox-api" in outcome.reason
    else:
        assert outcome.label is Label.SUCCESS
    assert outcome.details["netbox_reachable"] is (netbox != "unreachable")


def test_enqueue_once_is_refused_while_a_recurring_schedule_exists() -> None:
    recurring = NetBoxJob(7, "Proxbox Sync", "scheduled", 60, scheduled=NOW + timedelta(minutes=20))
    inner = FakeInner("exec", False)
    settings = GuardSettings(Policy.SKIP, True, "netbox proxbox_sync --enqueue-once", "P", "CMD_VAR")
    guard = NetBoxGuard(inner, FakeSource(JobsAnswer((recurring,))), settings, now=lambda: NOW)
    outcome = asyncio.run(guard.run(ctx()))
    assert inner.ran == 0
    assert outcome.label is Label.FAILURE
    assert (
        "--enqueue-once deletes NetBox's recurring schedule (NetBox job 7 'Proxbox Sync' every 60 min"
        in outcome.reason
    )
    assert "remove --enqueue-once from CMD_VAR" in outcome.reason


def test_reachability_is_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource(ANSWERS["unreachable"])
    guard = NetBoxGuard(
        FakeInner("exec", False), source, GuardSettings(S, False, "c", "P", "C"), now=lambda: NOW
    )

    async def runs(answers: list[str]) -> None:
        for name in answers:
            source.answer = ANSWERS[name]
            await guard.run(ctx())

    with caplog.at_level(logging.INFO, logger="proxbox_scheduler.netbox"):
        asyncio.run(runs(["unreachable", "unreachable", "unreachable", "idle", "busy", "unreachable"]))
    said = [r.getMessage() for r in caplog.records if r.name == "proxbox_scheduler.netbox"]
    assert len(said) == 3, said
    assert said[0].startswith("NetBox cannot be asked: connection refused") and "runs are skipped" in said[0]
    assert said[1].startswith("NetBox answered")
    assert said[2].startswith("NetBox cannot be asked")
    assert source.asked == 6


# ---------------------------------------------------------------- a sync that synced nothing

FULL = {"devices": 3, "virtual_machines": 12, "storage": 2}
ZERO = {"devices": 0, "virtual_machines": 0, "storage": 0}
ONE = {"devices": 1, "virtual_machines": 0}


def ok(counts: dict[str, int] | None) -> Outcome:
    return Outcome.success(
        "Full update sync completed.", details={} if counts is None else {"counts": counts}
    )


@pytest.mark.parametrize(
    ("outcome", "last", "label", "reason", "kept"),
    [
        (ok(ZERO), FULL, Label.DEGRADED, "synced 0 objects (last success: 3 devices, 12 VMs)", FULL),
        (ok(ZERO), None, Label.SUCCESS, "Full update sync completed.", None),
        (ok(ZERO), ZERO, Label.SUCCESS, "Full update sync completed.", ZERO),
        (ok(FULL), None, Label.SUCCESS, "Full update sync completed.", FULL),
        (ok(ONE), FULL, Label.SUCCESS, "Full update sync completed.", ONE),
        (ok(None), FULL, Label.SUCCESS, "Full update sync completed.", FULL),
        (Outcome.failure("boom", details={"counts": ZERO}), FULL, Label.FAILURE, "boom", FULL),
        (Outcome.skipped("busy", "b"), FULL, Label.SKIPPED, "b", FULL),
    ],
)
def test_zero_objects_after_a_success_with_objects_is_degraded(
    outcome: Outcome, last: dict[str, int] | None, label: Label, reason: str, kept: dict[str, int] | None
) -> None:
    judged, new_last = judge_counts(outcome, last)
    assert (judged.label, judged.reason) == (label, reason)
    assert new_last == kept


# ---------------------------------------------------------------- settings


def env(**extra: str) -> dict[str, str]:
    return {"PROXBOX_MODE": "off", **extra}


def test_awareness_is_off_by_default_and_the_exec_default_keeps_schedules() -> None:
    config = load(env())
    assert config.netbox is None
    assert "--enqueue-once" not in config.exec_cmd
    assert config.exec_cmd == ("python", "manage.py", "proxbox_sync", "--wait")
    assert not any("enqueue" in w for w in config.warnings)


def test_token_file_is_read_and_never_shown(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("nbt_k3y.s3cr3tvalue\n")
    config = load(
        env(
            PROXBOX_SCHEDULER_NETBOX_URL="https://nb.example",
            PROXBOX_SCHEDULER_NETBOX_TOKEN_FILE=str(token_file),
        )
    )
    assert config.netbox is not None and config.netbox.token == "nbt_k3y.s3cr3tvalue"
    assert "s3cr3tvalue" not in json.dumps(config.public(), default=str) + repr(config)


@pytest.mark.parametrize(
    ("extra", "name", "says"),
    [
        (
            {"PROXBOX_SCHEDULER_NETBOX_URL": "https://nb.example"},
            "PROXBOX_SCHEDULER_NETBOX_TOKEN",
            "required with",
        ),
        ({"PROXBOX_SCHEDULER_NETBOX_TOKEN": "abc"}, "PROXBOX_SCHEDULER_NETBOX_URL", "required with"),
        (
            {"PROXBOX_SCHEDULER_NETBOX_URL": "nb.example"},
            "PROXBOX_SCHEDULER_NETBOX_URL",
            "http:// or https://",
        ),
        (
            {"PROXBOX_SCHEDULER_NETBOX_UNREACHABLE": "maybe"},
            "PROXBOX_SCHEDULER_NETBOX_UNREACHABLE",
            "skip, run",
        ),
        ({"PROXBOX_SCHEDULER_NETBOX_TIMEOUT": "0"}, "PROXBOX_SCHEDULER_NETBOX_TIMEOUT", "greater than 0"),
        ({"PROXBOX_SCHEDULER_NETBOX_TOKEN": "a b"}, "PROXBOX_SCHEDULER_NETBOX_TOKEN", "printable ASCII"),
    ],
)
def test_bad_netbox_settings_name_the_variable(extra: dict[str, str], name: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env(**extra))
    assert caught.value.name == name
    assert says in str(caught.value)
    assert "a b" not in str(caught.value)


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc")
    with pytest.raises(ConfigError, match="not both") as caught:
        load(
            env(
                PROXBOX_SCHEDULER_NETBOX_URL="https://nb.example",
                PROXBOX_SCHEDULER_NETBOX_TOKEN="abc",
                PROXBOX_SCHEDULER_NETBOX_TOKEN_FILE=str(token_file),
            )
        )
    assert caught.value.name == name_of("netbox_token_file")


@pytest.mark.parametrize("aware", [False, True])
def test_explicit_enqueue_once_gets_one_warning(aware: bool) -> None:
    extra = (
        {"PROXBOX_SCHEDULER_NETBOX_URL": "https://nb.example", "PROXBOX_SCHEDULER_NETBOX_TOKEN": "t"}
        if aware
        else {}
    )
    config = load(
        env(
            PROXBOX_SCHEDULER_INVOKE="exec",
            PROXBOX_SCHEDULER_EXEC_CMD="netbox proxbox_sync --wait --enqueue-once",
            **extra,
        )
    )
    said = [w for w in config.warnings if "--enqueue-once" in w]
    assert len(said) == 1
    assert "deletes a recurring 'Proxbox Sync' schedule" in said[0]
    assert ("refuses to run it" in said[0]) and (("set PROXBOX_SCHEDULER_NETBOX_URL" in said[0]) is not aware)
