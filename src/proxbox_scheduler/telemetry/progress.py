"""Live progress for a person running `once` on a terminal: a bar over the sync's stages.

Only used when stdout is a terminal; otherwise `once` logs as usual. The bar has no
length until the first stage says how many there are (12 for a full update, 1 for a
per-stage stream), so it never shows a length the run does not have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as Bar,
)

from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Label, Outcome, Progress, ProgressKind


class TerminalProgress(Observer):
    """Draws the stage bar while a run goes, then one summary line."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Bar | None = None
        self._task: Any = None
        self._counts: dict[str, int] = {}

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self._progress = Bar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("connecting", total=None, counts="")

    def on_progress(self, run_id: str, progress: Progress) -> None:
        if self._progress is None:
            return
        total = progress.total  # None leaves the bar as it is
        if progress.kind is ProgressKind.STAGE_STARTED:
            stage = escape(str(progress.stage))
            self._progress.update(self._task, description=f"stage {stage}", total=total)
        elif progress.kind is ProgressKind.STAGE_COMPLETED:
            if progress.count is not None:
                self._counts[str(progress.stage)] = progress.count
            shown = " · ".join(f"{k} {v}" for k, v in self._counts.items())
            self._progress.update(self._task, advance=1, counts=shown, total=total)

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        counts = outcome.details.get("counts") or {}
        summary = escape(", ".join(f"{k} {v}" for k, v in counts.items()))
        if outcome.ok:
            label = "[yellow]sync succeeded (degraded)" if outcome.degraded else "[green]sync succeeded"
            self.console.print(f"{label}[/] in {duration:.1f} s" + (f": {summary}" if summary else ""))
        elif outcome.label is Label.SKIPPED:
            self.console.print(f"[bold]run skipped[/]: {escape(outcome.reason)}")
        else:
            self.console.print(f"[red]sync failed[/] after {duration:.1f} s: {escape(outcome.reason)}")
