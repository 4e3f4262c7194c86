"""The operator's console: a server-rendered page per /status, one card per job.

Pure rendering from the status dict (first paint works with JavaScript off); the
small script in ops/static/page.js polls /status and swaps the page in when it
changed, and drives the control buttons. No external assets, everything escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

from proxbox_scheduler.ops.page_chart import counts_chart, mark, timeline
from proxbox_scheduler.ops.page_format import duration, parse_time, relative, short_id, trigger_of, when, zone

STATIC = files("proxbox_scheduler.ops") / "static"
CSS = (STATIC / "page.css").read_text(encoding="utf-8")
SCRIPT = (STATIC / "page.js").read_text(encoding="utf-8")
FIGURES = ("count", "created", "updated")
WINDOWS = (("1h", "1 h"), ("6h", "6 h"), ("24h", "24 h"), ("7d", "7 d"))


@dataclass(frozen=True)
class View:
    """What the operator asked to see: the timeline window, the stale threshold (seconds)."""

    now: datetime
    window: float = 86400.0
    window_raw: str = "24h"
    stale_after: float = 86400.0
    control: bool = False


def _state(job: dict[str, Any]) -> str:
    """``waiting``, ``running stage 4 of 12 (virtual-machines)``, ``running virtual-machines``
    (a per-stage stream: its one stage), ``paused``, ``stopping``."""
    current = job.get("current")
    if job["state"] == "running" and current:
        index, total, stage = current.get("stage_index"), current.get("stages_total"), current.get("stage")
        if total == 1 and stage:
            return f"running {stage}"
        if index and total:
            return f"running stage {index} of {total}" + (f" ({stage})" if stage else "")
        return "running"
    return str(job["state"])


def _fact(label: str, value: str, css: str = "") -> str:
    return f'<dt>{escape(label)}</dt><dd class="{css}">{value}</dd>'


def _outcome(run: dict[str, Any] | None) -> str:
    if not run:
        return "no run yet"
    reason = f" — {escape(run['reason'])}" if run.get("reason") else ""
    name = escape(run["outcome"])
    return f'<span class="badge o-{name}">{mark(name)} {name}</span>{reason}'


def _current(current: dict[str, Any] | None, view: View, tz: ZoneInfo) -> str:
    """The run in flight: its id (whole on hover), since when, what started it."""
    if not current:
        return ""
    start = parse_time(current.get("start"))
    text = (
        f'<code title="{escape(current["id"])}">{escape(short_id(current["id"]))}</code> since '
        f"{when(start, tz)} ({relative(start, view.now)}), {escape(trigger_of(current))}"
    )
    return _fact("current run", text)


def _facts(job: dict[str, Any], view: View, tz: ZoneInfo) -> str:
    runs = job.get("runs", [])
    fire, success = parse_time(job.get("next_fire")), parse_time(job.get("last_success"))
    age = (view.now - success).total_seconds() if success else None
    stale = (age is None and bool(runs)) or (age is not None and age > view.stale_after)
    stale_note = f' <strong class="warn">older than {duration(view.stale_after)}</strong>' if stale else ""
    success_text = f"{when(success, tz)} ({relative(success, view.now)})" if success else "never"
    failures = int(job.get("consecutive_failures") or 0)
    return "".join(
        (
            _current(job.get("current"), view, tz),
            _fact("next fire", f"{when(fire, tz)} ({relative(fire, view.now)})" if fire else "—"),
            _fact("last outcome", _outcome(runs[0] if runs else None)),
            _fact("last success", escape(success_text) + stale_note, "stale" if stale else ""),
            _fact("consecutive failures", str(failures), "warn" if failures else ""),
            _fact("mode", escape(str(job.get("mode")))),
            _fact("zone · invoke", escape(f"{job.get('zone')} · {job.get('invoke')}")),
            _fact("target", f"<code>{escape(str(job.get('target')))}</code>"),
        )
    )


def _controls(job: dict[str, Any], view: View) -> str:
    """The run/pause buttons, drawn only when control is on; the script reveals and drives them."""
    if not view.control:
        return ""
    name = escape(job["name"])
    toggle = ("resume", "Resume") if job.get("paused") else ("pause", "Pause")
    return (
        f'<div class="controls" hidden data-job="{name}">'
        f'<button type="button" data-action="run">Run now</button>'
        f'<button type="button" data-action="{toggle[0]}">{toggle[1]}</button>'
        '<span class="result" role="status"></span></div>'
    )


def _stages(job: dict[str, Any]) -> str:
    """The last run's stages with durations and counts, the slowest marked in words too."""
    last = next((run for run in job.get("runs", []) if run.get("stages")), None)
    if not last:
        return '<p class="muted">No stages reported yet.</p>'
    stages = last["stages"]
    slowest = max(stages, key=lambda s: s.get("duration_s") or 0.0)
    longest = slowest.get("duration_s") or 0.0
    rows = []
    for stage in stages:
        seconds = stage.get("duration_s") or 0.0
        is_slow = stage is slowest and longest > 0
        width = 100.0 * seconds / longest if longest else 0.0
        figures = [f"{key} {stage[key]}" for key in FIGURES if stage.get(key) is not None]
        rows.append(
            f"<tr{' class=slowest' if is_slow else ''}><td class=num>{stage.get('index') or ''}</td>"
            f"<td>{escape(str(stage.get('stage')))}{' <strong>slowest</strong>' if is_slow else ''}</td>"
            f'<td class=num>{duration(seconds)}<span class="meter" style="width:{width:.0f}%"></span></td>'
            f"<td>{', '.join(figures) or '—'}</td></tr>"
        )
    return (
        f'<p class="muted">Run {escape(short_id(last["id"]))}, {len(stages)} stages.</p>'
        '<div class="scroll"><table class="stages"><thead><tr><th class=num>#</th><th>stage</th>'
        "<th class=num>duration</th><th>objects</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _runs_table(job: dict[str, Any], tz: ZoneInfo) -> str:
    rows = "".join(
        f'<tr><td><code title="{escape(run["id"])}">{escape(short_id(run["id"]))}</code></td>'
        f"<td>{when(parse_time(run.get('start')), tz)}</td>"
        f"<td class=num>{duration(run.get('duration_s'))}</td>"
        f"<td>{_outcome(run)}</td><td>{escape(trigger_of(run))}</td></tr>"
        for run in job.get("runs", [])[:20]
    )
    return (
        '<details><summary>Last runs (table)</summary><div class="scroll"><table><thead><tr><th>run</th>'
        "<th>start</th><th class=num>duration</th><th>outcome and reason</th><th>trigger</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def _card(job: dict[str, Any], view: View) -> str:
    tz = zone(job.get("zone"))
    name = escape(job["name"])
    state = _state(job)
    return (
        f'<section class="card" id="job-{name}" data-job="{name}"><header><h2>{name}</h2>'
        f'<span class="state s-{escape(job["state"])}">{escape(state)}</span></header>'
        f"{_controls(job, view)}<dl>{_facts(job, view, tz)}</dl>"
        f"<h3>Timeline</h3>{timeline(job, view.now, view.window, tz)}"
        '<p class="detail muted" aria-live="polite"></p>'
        f"<h3>Stages of the last run</h3>{_stages(job)}"
        f"<h3>Objects over time</h3>{counts_chart(job, view.now, view.window)}"
        f"{_runs_table(job, tz)}</section>"
    )


def _window_form(view: View) -> str:
    options = "".join(
        f'<option value="{value}"{" selected" if value == view.window_raw else ""}>{label}</option>'
        for value, label in WINDOWS
    )
    if view.window_raw not in {value for value, _ in WINDOWS}:
        options += f'<option value="{escape(view.window_raw)}" selected>{escape(view.window_raw)}</option>'
    return (
        '<form method="get" class="window"><label>Timeline window <select name="window">'
        f'{options}</select></label> <button type="submit">Show</button>'
        f'<input type="hidden" name="stale" value="{view.stale_after:g}"></form>'
    )


def _token_form() -> str:
    return (
        '<form id="token-form" hidden><label>Control token <input type="password" name="token" '
        'autocomplete="off" required></label> <button type="submit">Use token</button>'
        ' <span class="muted">kept for this browser tab only</span></form>'
    )


def render(status: dict[str, Any], view: View) -> str:
    """The whole page; ``status`` is a /status snapshot (several jobs, or the one of today)."""
    jobs = status.get("jobs") or []
    cards = "".join(_card(job, view) for job in jobs) or '<p class="muted">No jobs configured.</p>'
    stamp = when(view.now, zone(jobs[0].get("zone") if jobs else None))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>proxbox-scheduler</title>
<style>{CSS}</style></head>
<body data-control="{"on" if view.control else "off"}">
<header class="top"><h1>proxbox-scheduler <small>{escape(str(status.get("version", "")))}</small></h1>
{_window_form(view)}{_token_form() if view.control else ""}</header>
<main id="main">{cards}
<p class="muted updated">Shown {escape(stamp)}.</p></main>
<footer class="muted"><a href="/status">/status</a> · <a href="/openapi.json">/openapi.json</a> ·
<a href="/metrics">/metrics</a> · <a href="/livez">/livez</a> · <a href="/readyz">/readyz</a></footer>
<script src="/page.js" defer></script>
</body></html>
"""
