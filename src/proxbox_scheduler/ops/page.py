"""The human status page: a self-refreshing HTML view of /status, one card per job with an inline SVG chart.

Pure rendering from the snapshot dict: no external assets, everything escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = {"success": "#2e9d4f", "degraded": "#d9a400", "failure": "#d43d3d", "skipped": "#8a8f98"}
CHART_W, CHART_H, BAR_GAP = 600, 120, 4


def _chart(runs: list[dict[str, Any]]) -> str:
    """Duration per run (oldest left), coloured by outcome."""
    if not runs:
        return '<p class="muted">No runs yet.</p>'
    ordered = list(reversed(runs))
    longest = max((run["duration_s"] or 0 for run in ordered), default=0) or 1.0
    width = CHART_W / max(len(ordered), 1)
    bars = []
    for i, run in enumerate(ordered):
        height = max(2.0, CHART_H * (run["duration_s"] or 0) / longest)
        colour = COLOURS.get(run["outcome"], "#555")
        title = escape(f"{run['start']} {run['outcome']} {_duration(run)} {run['reason'] or ''}")
        bars.append(
            f'<rect x="{i * width + BAR_GAP / 2:.1f}" y="{CHART_H - height:.1f}" '
            f'width="{max(width - BAR_GAP, 1):.1f}" height="{height:.1f}" fill="{colour}">'
            f"<title>{title}</title></rect>"
        )
    return (
        f'<svg role="img" aria-label="run durations" width="{CHART_W}" height="{CHART_H + 16}" '
        f'viewBox="0 0 {CHART_W} {CHART_H + 16}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(bars)
        + f'<text x="0" y="{CHART_H + 13}" font-size="11" fill="#555">longest {longest:.1f} s</text></svg>'
    )


def _duration(run: dict[str, Any]) -> str:
    """Seconds, or a dash for a run that was interrupted (its end is not known)."""
    return "—" if run["duration_s"] is None else f"{run['duration_s']:.1f} s"


def _short_id(run_id: str) -> str:
    """The first block of the UUID, the whole id on hover."""
    return f'<code title="{escape(run_id)}">{escape(run_id[:8])}</code>'


def _when(stamp: str | None) -> str:
    """``2026-11-29 21:27:06`` from an ISO time (the offset is the configured zone's)."""
    return escape(stamp[:19].replace("T", " ")) if stamp else "—"


def _rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items())
        colour = COLOURS.get(run["outcome"], "#555")
        rows.append(
            f"<tr><td>{_short_id(run['id'])}</td><td>{_when(run['start'])}</td>"
            f"<td>{_duration(run)}</td>"
            f'<td><span class="dot" style="background:{colour}"></span>{escape(run["outcome"])}</td>'
            f"<td>{escape(run['reason'] or '')}</td><td>{escape(counts)}</td></tr>"
        )
    return "".join(rows)


def _card(job: dict[str, Any]) -> str:
    """One job: what it is doing, its facts, its chart and its recent runs."""
    current = job.get("current")
    now_line = (
        f"run {_short_id(current['id'])} since {_when(current['start'])}"
        + (f", stage {escape(str(current['stage']))}" if current.get("stage") else "")
        if current
        else f"next fire {_when(job.get('next_fire'))}"
    )
    facts = "".join(
        f"<dt>{escape(label)}</dt><dd>{escape(str(job.get(key) or '—'))}</dd>"
        for label, key in (
            ("mode", "mode"),
            ("zone", "zone"),
            ("invoke", "invoke"),
            ("target", "target"),
            ("last success", "last_success"),
            ("failures in a row", "consecutive_failures"),
        )
    )
    runs = job.get("runs", [])
    return f"""<section class="card"><h2>{escape(str(job.get("name", "")))}</h2>
<p><strong>{escape(str(job.get("state", "")))}</strong>: {now_line}</p>
<dl>{facts}</dl>
<h3>Recent runs</h3>
{_chart(runs)}
<table><thead><tr><th>run</th><th>start</th><th>duration</th><th>outcome</th><th>reason</th><th>counts</th>
</tr></thead><tbody>{_rows(runs)}</tbody></table></section>"""


def render(status: dict[str, Any], refresh_seconds: int = 10) -> str:
    cards = "".join(_card(job) for job in status.get("jobs", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_seconds}">
<title>proxbox-scheduler</title>
<style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:70em}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}} dt{{color:#666}} dd{{margin:0}}
table{{border-collapse:collapse;width:100%}}
td,th{{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}}
.card{{border:1px solid #ddd;border-radius:6px;padding:0 1em 1em;margin:1em 0}}
.dot{{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.4em}} .muted{{color:#888}}
</style></head><body>
<h1>proxbox-scheduler</h1>
<p class="muted">version {escape(str(status.get("version") or "—"))}</p>
{cards}
<p class="muted"><a href="/status">/status</a> · <a href="/metrics">/metrics</a> ·
<a href="/livez">/livez</a> · <a href="/readyz">/readyz</a></p>
</body></html>
"""
