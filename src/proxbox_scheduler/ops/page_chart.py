"""The page's charts as inline SVG: a timeline of runs on a real time axis, object counts over time.

Positions are percentages of the chart's width, so one drawing fits 360 px and a
wide screen without scaling its text; every outcome has a colour AND a shape and a
word, and every mark carries its full description for hover, focus and screen readers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from proxbox_scheduler.ops.page_format import (
    duration,
    parse_time,
    short_id,
    tick_label,
    ticks,
    trigger_of,
    when,
)

MARKS = {"success": "✓", "degraded": "◆", "failure": "✕", "skipped": "○", "interrupted": "✕"}
"""The shape (a text glyph) of each outcome, shown next to its colour."""
TOP, BASE, HEIGHT = 24, 104, 150
SKIP_Y = 118
EMPTY = "no runs in this window"


def mark(outcome: str) -> str:
    return MARKS.get(outcome, "?")


def _x(moment: datetime, start: datetime, span: float) -> float:
    return max(0.0, min(100.0, 100.0 * (moment - start).total_seconds() / span))


def describe(run: dict[str, Any], tz: ZoneInfo) -> str:
    """One line with everything the hover and focus show about a run."""
    start, end = parse_time(run.get("start")), parse_time(run.get("end"))
    words = [
        f"{run['outcome']} run {short_id(run['id'])}",
        f"{when(start, tz)} to {when(end, tz)}",
        duration(run.get("duration_s")),
        trigger_of(run),
    ]
    if run.get("reason"):
        words.append(run["reason"])
    return " · ".join(words)


def _run_mark(run: dict[str, Any], x: float, longest: float, tz: ZoneInfo) -> str:
    share = (run.get("duration_s") or 0.0) / longest if longest else 0.0
    top = BASE - max(6.0, (BASE - TOP) * share)
    text = escape(describe(run, tz))
    outcome = escape(run["outcome"])
    return (
        f'<g class="run o-{outcome}" tabindex="0" role="img" aria-label="{text}" data-detail="{text}">'
        f"<title>{text}</title>"
        f'<rect x="{x:.3f}%" y="{top:.1f}" width="6" height="{BASE - top:.1f}" transform="translate(-3 0)"/>'
        f'<text x="{x:.3f}%" y="{top - 4:.1f}" text-anchor="middle" class="glyph">{mark(outcome)}</text></g>'
    )


def _skip_mark(skip: dict[str, Any], x: float, tz: ZoneInfo) -> str:
    count = skip.get("count", 1)
    fires = "fire" if count == 1 else f"{count} fires"
    text = escape(f"skipped {fires} ({skip['reason']}) at {when(parse_time(skip['at']), tz)}")
    return (
        f'<g class="skip" tabindex="0" role="img" aria-label="{text}" data-detail="{text}">'
        f"<title>{text}</title>"
        f'<text x="{x:.3f}%" y="{SKIP_Y}" text-anchor="middle" class="glyph">○</text></g>'
    )


def _axis(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    span = (end - start).total_seconds()
    parts = [f'<line x1="0" x2="100%" y1="{BASE}" y2="{BASE}" class="axis"/>']
    for i, tick in enumerate(ticks(start, end, tz)):
        x = _x(tick, start, span)
        anchor = "start" if x < 4 else "end" if x > 96 else "middle"
        minor = " minor" if i % 2 else ""
        parts.append(
            f'<line x1="{x:.3f}%" x2="{x:.3f}%" y1="{BASE}" y2="{BASE + 4}" class="axis"/>'
            f'<text x="{x:.3f}%" y="{HEIGHT - 6}" text-anchor="{anchor}" class="tick{minor}">'
            f"{escape(tick_label(tick, tz, span))}</text>"
        )
    return "".join(parts)


def timeline(job: dict[str, Any], now: datetime, window: float, tz: ZoneInfo) -> str:
    """The job's runs and skipped fires in [now - window, now], newest on the right."""
    start = now - timedelta(seconds=window)
    runs = [r for r in job.get("runs", []) if (t := parse_time(r.get("start"))) and t >= start]
    skips = [s for s in job.get("skips", []) if (t := parse_time(s.get("at"))) and t >= start]
    longest = max((r.get("duration_s") or 0.0 for r in runs), default=0.0)
    marks = [_run_mark(r, _x(parse_time(r["start"]), start, window), longest, tz) for r in reversed(runs)]
    marks += [_skip_mark(s, _x(parse_time(s["at"]), start, window), tz) for s in skips]
    label = f"{len(runs)} runs and {sum(s.get('count', 1) for s in skips)} skipped fires in the window"
    empty = "" if runs or skips else f'<text x="50%" y="{BASE / 2 + 20}" text-anchor="middle">{EMPTY}</text>'
    return (
        f'<svg class="timeline" width="100%" height="{HEIGHT}" role="group" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{_axis(start, now, tz)}{empty}{"".join(marks)}</svg>'
        f'<p class="muted">{escape(label)}; bar height: duration (longest {duration(longest)}).</p>'
    )


def _spark(values: list[float]) -> str:
    """A line over the values, scaled to its own maximum (a drop to zero stands out)."""
    top = max(values) or 1.0
    step = 100.0 / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.2f},{28 - 26 * v / top:.2f}" for i, v in enumerate(values))
    return (
        '<svg class="spark" width="100%" height="30" viewBox="0 0 100 30" preserveAspectRatio="none" '
        f'aria-hidden="true"><polyline points="{points}" vector-effect="non-scaling-stroke"/></svg>'
    )


def counts_chart(job: dict[str, Any], now: datetime, window: float) -> str:
    """Objects per kind over the window's runs that reported counts, oldest first."""
    start = now - timedelta(seconds=window)
    runs = [
        r
        for r in reversed(job.get("runs", []))
        if r.get("counts") and (t := parse_time(r.get("start"))) and t >= start
    ]
    if not runs:
        return '<p class="muted">No object counts reported in this window.</p>'
    kinds = list(dict.fromkeys(k for r in runs for k in r["counts"]))
    rows = []
    for kind in kinds:
        values = [float(r["counts"].get(kind, 0)) for r in runs]
        dropped = values[-1] == 0 and max(values) > 0
        note = ' <strong class="warn">dropped to 0</strong>' if dropped else ""
        breakable = escape(kind).replace("_", "_<wbr>")  # long kinds wrap at their words on a phone
        rows.append(
            f'<tr{" class=dropped" if dropped else ""}><th scope="row">{breakable}</th>'
            f"<td>{_spark(values)}</td><td class=num>{int(values[-1])}{note}</td>"
            f"<td class=num>{int(min(values))} to {int(max(values))}</td></tr>"
        )
    return (
        '<table class="counts"><thead><tr><th>kind</th><th>over the window</th><th class=num>last</th>'
        f"<th class=num>range</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="muted">{len(runs)} runs; each line is scaled to its own maximum.</p>'
    )
