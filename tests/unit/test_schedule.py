"""Schedule arithmetic: mode parsing, cron across DST (table-driven), interval planning, properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxbox_scheduler.core.schedule import (
    CronPlan,
    Mode,
    ModeError,
    cron_fires,
    parse_mode,
    plan_cron,
    plan_interval,
    upcoming,
    validate_cron,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("off", Mode("off")),
        ("", Mode("off")),
        ("  OFF ", Mode("off")),
        ("continuous", Mode("continuous")),
        ("Continuous", Mode("continuous")),
        ("interval=300", Mode("interval", interval=300)),
        ("INTERVAL = 0.5", Mode("interval", interval=0.5)),
        ("cron=0 */4 * * *", Mode("cron", cron="0 */4 * * *")),
        ("CRON=  0   */4 * * * ", Mode("cron", cron="0 */4 * * *")),
        ("cron=@daily", Mode("cron", cron="@daily")),
        ("cron=@HOURLY", Mode("cron", cron="@HOURLY")),
        ("cron=0 9 * jan-mar mon-fri", Mode("cron", cron="0 9 * jan-mar mon-fri")),
    ],
)
def test_parse_mode_accepts(raw: str, expected: Mode) -> None:
    assert parse_mode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "sometimes",
        "interval",
        "interval=",
        "interval=abc",
        "interval=0",
        "interval=-5",
        "interval=nan",
        "interval=inf",
        "cron=",
        "cron=* * * *",
        "cron=* * * * * *",
        "cron=61 * * * *",
        "cron=* 24 * * *",
        "cron=@fortnightly",
        "cron=@reboot",
        "timer=5",
    ],
)
def test_parse_mode_rejects_with_a_message_saying_what_is_accepted(raw: str) -> None:
    with pytest.raises(ModeError) as err:
        parse_mode(raw)
    assert any(word in str(err.value) for word in ("expected", "expects", "must", "fields"))


def test_bad_cron_field_message_lists_the_field_ranges() -> None:
    with pytest.raises(ModeError, match=r"minute 0-59"):
        validate_cron("61 * * * *")


def _fires(expr: str, start: datetime, tz: str, count: int) -> list[str]:
    fires = cron_fires(expr, start, ZoneInfo(tz))
    return [next(fires).isoformat() for _ in range(count)]


# (zone, expression, start in that zone, expected fires) — what Vixie cron / cronie do.
DST_TABLE = [
    # spring forward 02:00 -> 03:00: a fixed 02:30 job runs once, at the first minute after the gap
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    # fall back 02:00 -> 01:00: a fixed 01:30 job runs once, not twice
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    # wildcard hour follows real elapsed time through the repeated hour
    (
        "America/New_York",
        "*/30 * * * *",
        "2026-11-01T00:10",
        [
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # ... and through the missing hour
    (
        "America/New_York",
        "*/30 * * * *",
        "2026-03-08T01:10",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "Europe/London",
        "30 1 * * *",
        "2026-03-28T12:00",
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
    ),
    (
        "Europe/London",
        "30 1 * * *",
        "2026-10-24T12:00",
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
    ),
    (
        "Europe/London",
        "0 * * * *",
        "2026-10-25T00:10",
        ["2026-10-25T01:00:00+01:00", "2026-10-25T01:00:00+00:00", "2026-10-25T02:00:00+00:00"],
    ),
    # Sao Paulo had DST until 2019, with its changes at midnight
    (
        "America/Sao_Paulo",
        "30 0 * * *",
        "2018-11-03T12:00",
        ["2018-11-04T01:00:00-02:00", "2018-11-05T00:30:00-02:00"],
    ),
    (
        "America/Sao_Paulo",
        "30 23 * * *",
        "2019-02-16T12:00",
        ["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"],
    ),
    # and none since: 0 */4 keeps to -03:00 all year
    (
        "America/Sao_Paulo",
        "0 */4 * * *",
        "2026-11-01T01:00",
        ["2026-11-01T04:00:00-03:00", "2026-11-01T08:00:00-03:00"],
    ),
    # Lord Howe shifts by 30 minutes
    (
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2026-04-04T12:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    # Kathmandu: +05:45, no DST
    (
        "Asia/Kathmandu",
        "@daily",
        "2026-06-01T12:00",
        ["2026-06-02T00:00:00+05:45", "2026-06-03T00:00:00+05:45"],
    ),
]


@pytest.mark.parametrize(("zone", "expr", "start", "expected"), DST_TABLE)
def test_cron_across_dst_behaves_like_cronie(zone: str, expr: str, start: str, expected: list[str]) -> None:
    begin = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(zone))
    assert _fires(expr, begin, zone, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        # Vixie: restricted day-of-month and day-of-week match when either matches
        (
            "0 0 13 * 5",
            "2026-01-01T00:00",
            ["2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00"],
        ),
        ("0 0 * * sun", "2026-11-25T00:00", ["2026-11-29T00:00:00+00:00", "2026-12-06T00:00:00+00:00"]),
        ("0 0 * * 7", "2026-11-25T00:00", ["2026-11-29T00:00:00+00:00"]),
        (
            "15,45 8-9 * * *",
            "2026-11-29T00:00",
            ["2026-11-29T08:15:00+00:00", "2026-11-29T08:45:00+00:00", "2026-11-29T09:15:00+00:00"],
        ),
        ("0 0 1 feb,aug *", "2026-03-01T00:00", ["2026-08-01T00:00:00+00:00", "2027-02-01T00:00:00+00:00"]),
        ("@yearly", "2026-03-01T00:00", ["2027-01-01T00:00:00+00:00"]),
        ("@annually", "2026-03-01T00:00", ["2027-01-01T00:00:00+00:00"]),
        ("@monthly", "2026-03-01T00:00", ["2026-04-01T00:00:00+00:00"]),
        ("@weekly", "2026-11-25T00:00", ["2026-11-29T00:00:00+00:00"]),
        ("@midnight", "2026-11-25T10:00", ["2026-11-26T00:00:00+00:00"]),
        ("@hourly", "2026-11-25T10:00", ["2026-11-25T11:00:00+00:00"]),
        ("0 0 29 2 *", "2026-03-01T00:00", ["2028-02-29T00:00:00+00:00"]),
    ],
)
def test_cron_syntax(expr: str, start: str, expected: list[str]) -> None:
    begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert _fires(expr, begin, "UTC", len(expected)) == expected


def test_cron_fires_are_strictly_after_the_start_even_mid_minute() -> None:
    start = datetime(2026, 11, 29, 10, 15, 0, 1, tzinfo=UTC)
    assert _fires("*/15 * * * *", start, "UTC", 1) == ["2026-11-29T10:30:00+00:00"]


def test_plan_interval_on_time_keeps_the_grid() -> None:
    plan = plan_interval(origin=100.0, index=3, interval=10.0, now=131.0)
    assert (plan.start, plan.index, plan.skipped) == (140.0, 4, 0)


def test_plan_interval_after_an_overrun_starts_now_and_counts_skips() -> None:
    plan = plan_interval(origin=0.0, index=1, interval=10.0, now=45.0)
    # slots 20, 30, 40 passed: 20 is served now, 30 and 40 are skipped
    assert (plan.start, plan.origin, plan.index, plan.skipped) == (45.0, 45.0, 0, 2)


def _at(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"2026-12-01T{hhmm}:00+00:00")


# (hourly cron, last fire, now, wait after the run, wait ended at) -> plan; the rules as data
CRON_PLANS = [
    ("10:00", "10:01", 0, None, CronPlan(_at("11:00"))),  # a short run: the next fire
    ("10:00", "12:30", 0, None, CronPlan(_at("13:00"), overrun=2)),  # 11:00 and 12:00 passed during the run
    ("10:00", "10:01", 9000, None, CronPlan(_at("13:00"), backoff=2)),  # 11:00, 12:00 inside the wait
    ("11:00", "13:01", 0, "13:00", CronPlan(_at("14:00"), stepped=2)),  # woke at 13:00 for 11:00: stepped
    ("11:00", "14:30", 0, "13:00", CronPlan(_at("15:00"), stepped=2, overrun=1)),  # then a long run
    ("10:00", "23:30", 0, None, CronPlan(_at("23:00") + timedelta(hours=1), overrun=5)),  # capped at 5
]


@pytest.mark.parametrize(("last", "now", "wait", "woke", "expected"), CRON_PLANS)
def test_plan_cron_counts_each_passed_fire_by_why_it_passed(
    last: str, now: str, wait: float, woke: str | None, expected: CronPlan
) -> None:
    plan = plan_cron("0 * * * *", _at(last), ZoneInfo("UTC"), _at(now), wait, woke and _at(woke), cap=5)
    assert plan == expected


def test_upcoming_interval_and_cron_for_check() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    interval = upcoming(parse_mode("interval=90"), start, ZoneInfo("UTC"), 2)
    assert interval == [start + timedelta(seconds=90), start + timedelta(seconds=180)]
    assert upcoming(parse_mode("continuous"), start, ZoneInfo("UTC"), 3) == []


# ---------------------------------------------------------------- properties

# (low, high) for generated values; day-of-month stays <= 28 so every month can match,
# but `*` still means every day, 1-31
FIELD_RANGES = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 28), "month": (1, 12)}
STAR = {"minute": range(60), "hour": range(24), "dom": range(1, 32), "month": range(1, 13)}


@st.composite
def cron_field(draw: st.DrawFn, name: str) -> tuple[str, set[int]]:
    """A field's text and the set of values it means, built together so no parser is needed."""
    low, high = FIELD_RANGES[name]
    kind = draw(st.sampled_from(["star", "step", "range", "list"]))
    if kind == "star":
        return "*", set(STAR[name])
    if kind == "step":
        step = draw(st.integers(1, max(1, (high - low) // 2)))
        return f"*/{step}", set(STAR[name][::step])
    if kind == "range":
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        return f"{a}-{b}", set(range(a, b + 1))
    values = draw(st.sets(st.integers(low, high), min_size=1, max_size=4))
    return ",".join(map(str, sorted(values))), values


@st.composite
def cron_expr(draw: st.DrawFn) -> tuple[str, list[set[int]]]:
    parts = [draw(cron_field(name)) for name in ("minute", "hour", "dom", "month")]
    text = " ".join(p[0] for p in parts) + " *"
    return text, [p[1] for p in parts]


starts = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1))


@settings(max_examples=150, deadline=None)
@given(cron_expr(), starts, st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Kathmandu"]))
def test_property_fires_increase_and_match_in_fixed_offset_zones(
    expr: tuple[str, list[set[int]]], start: datetime, zone: str
) -> None:
    text, (minutes, hours, doms, months) = expr
    tz = ZoneInfo(zone)
    fires = cron_fires(text, start.replace(tzinfo=tz), tz)
    previous = start.replace(tzinfo=tz)
    for _ in range(5):
        fire = next(fires)
        assert fire > previous
        local = fire.astimezone(tz)
        assert local.minute in minutes and local.hour in hours
        assert local.day in doms and local.month in months
        assert local.second == 0
        previous = fire


@settings(max_examples=150, deadline=None)
@given(cron_expr(), starts, st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe"]))
def test_property_fires_strictly_increase_in_dst_zones(
    expr: tuple[str, list[set[int]]], start: datetime, zone: str
) -> None:
    tz = ZoneInfo(zone)
    fires = cron_fires(expr[0], start.replace(tzinfo=tz), tz)
    previous = start.replace(tzinfo=tz)
    for _ in range(6):
        fire = next(fires)
        assert fire > previous
        previous = fire


@given(st.floats(0.01, 1e6), st.integers(0, 10_000), st.floats(0, 1e7))
def test_property_plan_interval_never_plans_in_the_past_or_overlaps(
    interval: float, index: int, elapsed: float
) -> None:
    origin = 1000.0
    now = origin + index * interval + elapsed
    plan = plan_interval(origin, index, interval, now)
    assert plan.start >= now or plan.start == pytest.approx(now)
    assert plan.skipped >= 0


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["*/7 * * * *", "0 * * * *", "30 2 * * *", "15 */3 * * 1-5"]),
    st.integers(0, 3 * 86400),  # now, seconds after the last fire
    st.integers(0, 86400),  # the wait owed after the run
    st.one_of(st.none(), st.integers(0, 3 * 86400)),  # when the wait ended, seconds after the last fire
)
def test_property_plan_cron_fires_after_the_wait_and_accounts_for_every_fire_passed(
    expr: str, after: int, wait: int, woke_after: int | None
) -> None:
    tz = ZoneInfo("Europe/Berlin")
    last = next(cron_fires(expr, datetime(2026, 3, 28, tzinfo=tz), tz))  # a DST weekend ahead
    now = last + timedelta(seconds=after)
    woke = None if woke_after is None else min(now, last + timedelta(seconds=woke_after))
    plan = plan_cron(expr, last, tz, now, wait, woke, cap=10_000)
    assert plan.fire > now and plan.fire >= now + timedelta(seconds=wait)
    passed = list(itertools.takewhile(lambda f: f < plan.fire, cron_fires(expr, last, tz)))
    assert plan.stepped + plan.overrun + plan.backoff == len(passed)  # each skipped fire counted once
    assert plan.stepped == sum(1 for f in passed if woke is not None and f <= woke)
