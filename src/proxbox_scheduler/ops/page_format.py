"""The page's words for times and durations: one time format everywhere, durations people read.

Times are shown in the job's zone as ``2026-11-29 21:27:06 CET``; durations under a
second in milliseconds (``52 ms``), then seconds, minutes and hours (``3 h 12 min``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINDOW_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
WINDOW_MIN, WINDOW_MAX = 60.0, 31 * 86400.0
"""The timeline shows between a minute and a month (values outside are brought inside)."""
DURATION_PATTERN = r"^([0-9]+(?:\.[0-9]+)?)(s|m|min|h|d)?$"
"""A window or threshold: seconds, or a number with a unit (the OpenAPI document quotes it)."""
_DURATION = re.compile(DURATION_PATTERN)


def zone(name: str | None) -> ZoneInfo:
    """The job's zone; UTC when the status names none (or one this host does not know)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def short_id(run_id: str) -> str:
    """The part of a run id the page shows (the whole id is in its title)."""
    return run_id[:8]


def trigger_of(run: dict[str, Any]) -> str:
    """Why a run ran; runs recorded before triggers were kept count as scheduled."""
    return str(run.get("trigger") or "scheduled")


def parse_time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    """``2026-11-29 21:27:06 CET``, or a dash for no time."""
    if moment is None:
        return "—"
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or tz.key)


def duration(seconds: float | None) -> str:
    """``52 ms``, ``4.2 s``, ``3 min 12 s``, ``3 h 12 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 3 h 12 min`` or ``5 min 3 s ago`` (``now`` for less than a second)."""
    if moment is None:
        return ""
    delta = (moment - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def parse_window(raw: str | None, default: float) -> float:
    """A window such as ``24h``, ``90m``, ``7d`` or plain seconds, kept within 1 min..31 d;
    ValueError naming what is accepted."""
    if raw is None or raw == "":
        return default
    match = _DURATION.fullmatch(raw)
    if not match:
        raise ValueError("expected a duration such as 3600, 90m, 24h or 7d")
    value = float(match.group(1)) * WINDOW_UNITS[match.group(2) or "s"]
    return min(max(value, WINDOW_MIN), WINDOW_MAX)


def ticks(start: datetime, end: datetime, tz: ZoneInfo, most: int = 8) -> list[datetime]:
    """Round local times (every 5 min, 15 min, ... 1 d, 7 d) in [start, end], at most ``most`` of them."""
    span = (end - start).total_seconds()
    steps = (300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
    step = next((s for s in steps if span / s <= most), steps[-1])
    local = start.astimezone(tz)
    base = local.replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[datetime] = []
    k = math.ceil((local - base).total_seconds() / step)
    while len(out) <= most:
        tick = base + timedelta(seconds=k * step)
        if tick > end:
            break
        out.append(tick)
        k += 1
    return out


def tick_label(tick: datetime, tz: ZoneInfo, span: float) -> str:
    """``21:00`` within a day, ``11-29 21:00`` for longer windows: the same format as the times."""
    local = tick.astimezone(tz)
    return local.strftime("%H:%M") if span <= 86400 else local.strftime("%m-%d %H:%M")
