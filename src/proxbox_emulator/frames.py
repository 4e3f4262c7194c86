"""The frame shapes a stage body repeats, bound to one run's writer and inventory."""

from __future__ import annotations

from typing import Any

from proxbox_emulator.inventory import Inventory
from proxbox_emulator.settings import EmulatorSettings
from proxbox_emulator.sse import SseWriter


def progress(current: int, total: int) -> dict[str, Any]:
    """The ``progress`` object of discovery and item_progress frames."""
    percent = round(100.0 * current / total, 1) if total else 0.0
    return {"current": current, "total": total, "percent": percent}


class Frames:
    """What a stage body needs: the writer, the cluster, the settings and this run's facts.

    ``first`` is true until a run has succeeded: proxbox-api then reports objects
    as created, afterwards as updated.
    """

    def __init__(
        self,
        writer: SseWriter,
        inventory: Inventory,
        settings: EmulatorSettings,
        *,
        first: bool,
        fetch_concurrency: int,
        empty: bool = False,
    ) -> None:
        self.writer = writer
        self.inventory = inventory
        self.settings = settings
        self.first = first
        self.empty = empty  # the complete event reports 0 objects of every kind
        self.operation = "created" if first else "updated"
        self.fetch_concurrency = fetch_concurrency

    def event(self, name: str, data: dict[str, Any]) -> None:
        self.writer.event(name, data)

    def tally(self, total: int, failed: int = 0) -> dict[str, int]:
        """A phase_summary result: everything created on the first sync, updated after."""
        done = total - failed
        return {
            "created": done if self.first else 0,
            "updated": 0 if self.first else done,
            "deleted": 0,
            "failed": failed,
            "skipped": 0,
            "total": total,
        }

    def discovery(self, phase: str, message: str, items: list[dict[str, Any]], **extra: Any) -> None:
        self.event(
            "discovery",
            {
                "event": "discovery",
                "phase": phase,
                "status": "discovered",
                "message": message,
                "count": len(items),
                "items": items,
                "progress": progress(0, len(items)),
                **extra,
            },
        )

    def row(self, step: str, status: str, message: str, rowid: str | None, **payload: Any) -> None:
        """A per-object ``step`` frame (proxbox-api's table-row updates)."""
        self.event(
            "step",
            {"step": step, "status": status, "message": message, "rowid": rowid, "payload": payload},
        )

    def end_of(self, obj: str) -> None:
        self.row(obj, "completed", f"{obj} stream completed", None, object=obj, end=True)

    def sync_progress(self, payload: dict[str, Any]) -> None:
        """A ``sync`` step wrapping a sub-step's own step/status/message (backups, snapshots)."""
        self.event(
            "step",
            {
                "step": "sync",
                "status": "progress",
                "message": "sync progress",
                "rowid": None,
                "payload": payload,
            },
        )

    def phase_summary(
        self, phase: str, message: str, result: dict[str, int], status: str = "completed"
    ) -> None:
        self.event(
            "phase_summary",
            {
                "event": "phase_summary",
                "phase": phase,
                "status": status,
                "message": message,
                "result": result,
            },
        )
