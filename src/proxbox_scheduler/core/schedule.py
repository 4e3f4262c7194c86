"""Schedule arithmetic: the modes and their fire times. Pure: no clock, no I/O.

Cron evaluation is cronsim's, chosen because it matches Vixie cron / cronie
across DST changes (a fixed-hour job in a spring-forward gap runs once at the
first valid minute after it; in a fall-back repeated hour it runs once;
wildcard-hour jobs follow real elapsed time). tests/unit/test_schedule.py
proves each of those cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MODE_HELP = "expected off, continuous, interval=<seconds> or cron=<5-field expression or @alias>"
CRON_FIELDS = (
    "fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT"
)
MIN_INTERVAL = 0.01
MAX_INTERVAL = 366 * 86400.0


class ModeError(ValueError):
    """The mode string is not one we accept; the message says what is."""


class ModeKind(StrEnum):
    OFF = "off"
    CONTINUOUS = "continuous"
    INTERVAL = "interval"
    CRON = "cron"


@dataclass(frozen=True)
class Mode:
    """A parsed mode (``off | continuous | interval=S | cron=EXPR``)."""

    kind: ModeKind
    interval: float = 0.0
    cron: str = ""

    def __str__(self) -> str:
        if self.kind is ModeKind.INTERVAL:
            return f"interval={self.interval:.3f}".rstrip("0").rstrip(".")
        if self.kind is ModeKind.CRON:
            return f"cron={self.cron}"
        return self.kind.value


def parse_mode(raw: str) -> Mode:
    """Parse ``off | continuous | interval=S | cron=EXPR`` (keywords in any case)."""
    text = raw.strip()
    head, sep, rest = text.partition("=")
    word = head.strip().lower()
    if not sep:
        if word in ("", "off"):
            return Mode(ModeKind.OFF)
        if word == "continuous":
            return Mode(ModeKind.CONTINUOUS)
        raise ModeError(MODE_HELP)
    if word == "interval":
        return Mode(ModeKind.INTERVAL, interval=_interval_seconds(rest.strip()))
    if word == "cron":
        return Mode(ModeKind.CRON, cron=validate_cron(rest))
    raise ModeError(MODE_HELP)


def _interval_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:  # also rejects nan and inf
        raise ModeError(
            f"interval expects seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:.0f}, e.g. interval=300"
        )
    return seconds


def normalize_cron(expr: str) -> str:
    """Collapse whitespace and expand @aliases to their 5-field form."""
    text = " ".join(expr.split())
    return ALIASES.get(text.lower(), text)


def validate_cron(expr: str) -> str:
    """Return the normalised expression, or raise ModeError saying what is wrong."""
    text = normalize_cron(expr)
    if text.startswith("@"):
        raise ModeError("cron alias must be one of " + ", ".join(ALIASES))
    if len(text.split()) != 5:
        raise ModeError(f"cron expects 5 fields or an @alias; {CRON_FIELDS}")
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ModeError(f"cron expression is invalid ({exc}); {CRON_FIELDS}") from None
    return " ".join(expr.split())


def cron_fires(expr: str, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
    """Fire times strictly after ``after`` (any aware datetime), in ``tz``, ascending."""
    local = after.astimezone(tz).replace(second=0, microsecond=0)
    for fire in CronSim(normalize_cron(expr), local):
        if fire > after:
            yield fire


@dataclass(frozen=True)
class IntervalPlan:
    """Where the next interval run goes: ``start`` on the monotonic clock, on grid ``origin + index*S``."""

    origin: float
    index: int
    start: float
    skipped: int


def plan_interval(origin: float, index: int, interval: float, now: float) -> IntervalPlan:
    """Plan the run after the one scheduled at slot ``index`` of the grid ``origin + k*interval``.

    Slots are computed by multiplication from a fixed origin, so thousands of
    runs accumulate no drift. When slots passed while the run was going, the
    next run starts at once (the first passed slot, served late), the others
    are counted as skipped, and the grid re-anchors at ``now`` so there is no burst.
    """
    passed = math.floor((now - origin) / interval) - index
    if passed <= 0:
        return IntervalPlan(origin, index + 1, origin + (index + 1) * interval, 0)
    return IntervalPlan(now, 0, now, passed - 1)


@dataclass(frozen=True)
class CronPlan:
    """The next cron fire after a run and the fires passed over, by why: ``stepped`` the wall
    clock had jumped past before the wait for the last fire ended, ``overrun`` passed during
    the run, ``backoff`` fall inside the wait after a failure."""

    fire: datetime
    stepped: int = 0
    overrun: int = 0
    backoff: int = 0


def plan_cron(
    expr: str, last: datetime, tz: ZoneInfo, now: datetime, wait: float, woke: datetime | None, cap: int
) -> CronPlan:
    """The first fire after ``last`` that is both in the future and past ``now + wait``; at most
    ``cap`` passed fires are counted (then the fire is simply the first after the wait)."""
    earliest = now + timedelta(seconds=wait)
    stepped = overrun = backoff = 0
    for fire in cron_fires(expr, last, tz):
        if fire >= earliest and fire > now:
            return CronPlan(fire, stepped, overrun, backoff)
        if stepped + overrun + backoff >= cap:
            return CronPlan(next(cron_fires(expr, earliest, tz)), stepped, overrun, backoff)
        if woke is not None and fire <= woke:
            stepped += 1
        elif fire <= now:
            overrun += 1
        else:
            backoff += 1
    raise AssertionError("cron_fires never ends")


def upcoming(mode: Mode, start: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
    """The next ``count`` fire times from ``start`` for `check` (interval: start + k*S)."""
    if mode.kind is ModeKind.CRON:
        fires = cron_fires(mode.cron, start, tz)
        return [next(fires) for _ in range(count)]
    if mode.kind is ModeKind.INTERVAL:
        base = start.astimezone(tz)
        return [base + timedelta(seconds=mode.interval * k) for k in range(1, count + 1)]
    return []


def missed_fires(
    mode: Mode, last: datetime, now: datetime, tz: ZoneInfo, cap: int
) -> tuple[int, datetime | None]:
    """The fires of ``mode`` in (last, now]: how many (counted up to ``cap``) and the latest counted.

    Used at start with the last slot a previous process ran. Interval slots
    continue that process's grid (``last + k*S``).
    """
    if mode.kind is ModeKind.INTERVAL:
        count = math.floor((now - last).total_seconds() / mode.interval)
        if count <= 0:
            return 0, None
        return min(count, cap), last + timedelta(seconds=count * mode.interval)
    count, latest = 0, None
    if mode.kind is ModeKind.CRON:
        for fire in cron_fires(mode.cron, last, tz):
            if fire > now or count >= cap:
                break
            count, latest = count + 1, fire
    return count, latest


def epoch_grid_slot(slot: datetime, step: float) -> datetime:
    """``slot`` moved to the nearest multiple of ``step`` seconds since the Unix epoch.

    Interval grids start when each process starts, so two replicas name one fire
    with different times; on the epoch grid they name it the same way.
    """
    return datetime.fromtimestamp(round(slot.timestamp() / step) * step, slot.tzinfo)
