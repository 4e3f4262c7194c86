"""One full-update run played onto a writer: the prelude, 12 stages, then the terminal frames.

The script decides nothing about the run's fate; the ledger did that when the run
began. It only records the outcome (through ``settle``) before the last bytes go
out, so a client that has read the terminal frame always finds the counters and
``/sync/active`` already updated: no race in tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from proxbox_emulator.contract import BOOTSTRAP_OBJECTS, DISCOVERY_ORDER, RUN_KIND, STAGE_LABELS, STAGES
from proxbox_emulator.frames import Frames
from proxbox_emulator.inventory import PAD_PLACEHOLDER
from proxbox_emulator.ledger import Fate, Outcome
from proxbox_emulator.stages import BODIES


def cut(frames: Frames, settle: Callable[[Outcome], None]) -> Outcome:
    """End a run fated to be cut: no terminal event, the body ended or the connection dropped."""
    settle(Outcome.CUT)
    if frames.settings.cut_mode == "clean":
        frames.writer.finish()
    else:
        frames.writer.abort()
    return Outcome.CUT


class Script:
    """Plays one run as proxbox-api does; ``play`` returns its outcome."""

    def __init__(self, frames: Frames, run_id: str, fate: Fate, settle: Callable[[Outcome], None]) -> None:
        self.frames = frames
        self.run_id = run_id
        self.fate = fate
        self.settle = settle

    def play(self) -> Outcome:
        """Emit the whole run; return its outcome (ok, failed or cut)."""
        self._prelude()
        settings = self.frames.settings
        for stage in STAGES:
            started = time.monotonic()
            label = STAGE_LABELS[stage]
            self.frames.event(
                "step", {"step": stage, "status": "started", "message": f"Starting {label} synchronization."}
            )
            self.frames.writer.pause(settings.slow_stages.get(stage, settings.stage_delay))
            if stage == settings.fail_stage and self.fate is Fate.CUT:
                return cut(self.frames, self.settle)
            if stage == settings.fail_stage and self.fate is Fate.FAIL:
                return self._fail(stage)
            result = BODIES[stage](self.frames)
            self.frames.event(
                "step",
                {
                    "step": stage,
                    "status": "completed",
                    "message": f"{label[0].upper()}{label[1:]} synchronization finished.",
                    "result": result,
                    "duration_seconds": round(time.monotonic() - started, 3),
                },
            )
        return self._complete()

    def _prelude(self) -> None:
        objects = list(BOOTSTRAP_OBJECTS)
        first = self.frames.first
        self.frames.event(
            "bootstrap_done",
            {
                "ok": True,
                "skipped": False,
                "reason": None,
                "warnings": [],
                "created": objects if first else [],
                "patched": [],
                "unchanged": [] if first else objects,
            },
        )
        self.frames.event(
            "step",
            {
                "step": "stream",
                "status": "started",
                "message": f"Full update stream connected (operation_id={self.run_id})",
            },
        )
        self.frames.event(
            "discovery",
            {
                "event": "discovery",
                "phase": RUN_KIND,
                "status": "discovered",
                "message": f"Discovered {len(STAGES)} sync stage(s) for full update",
                "count": len(STAGES),
                "items": [{"name": name, "type": "stage"} for name in DISCOVERY_ORDER],
                "progress": {"current": 0, "total": len(STAGES), "percent": 0},
                "metadata": {"operation_id": self.run_id},
            },
        )

    def _fail(self, stage: str) -> Outcome:
        """The failure shape of sample-stream-fail*.txt: error_detail(s), error, complete."""
        settings, event = self.frames.settings, self.frames.event
        error, detail = settings.fail_error, settings.fail_detail
        if detail is not None:
            event(
                "error_detail",
                {
                    "event": "error_detail",
                    "phase": stage,
                    "category": "internal",
                    "message": f"Error during {STAGE_LABELS[stage]} sync: {error} | {detail}",
                    "detail": f"{error} | {detail}",
                },
            )
        event(
            "error_detail",
            {
                "event": "error_detail",
                "phase": RUN_KIND,
                "category": "internal",
                "message": "Full update synchronization failed",
                "detail": detail if detail is not None else error,
                "suggestion": "Review backend logs and retry the full update",
            },
        )
        event("error", {"step": RUN_KIND, "status": "failed", "error": error, "detail": detail})
        event(
            "complete",
            {"ok": False, "message": error, "errors": [{"detail": detail if detail is not None else error}]},
        )
        self.settle(Outcome.FAILED)
        self.frames.writer.finish()
        return Outcome.FAILED

    def _complete(self) -> Outcome:
        """The success ``complete``, with the prebuilt padding spliced in unserialised."""
        inventory, writer = self.frames.inventory, self.frames.writer
        padding = inventory.padding
        result = inventory.result(
            first=self.frames.first,
            padding_placeholder=PAD_PLACEHOLDER if padding else None,
            empty=self.frames.empty,
        )
        line = json.dumps({"ok": True, "message": "Full update sync completed.", "result": result})
        writer.flush()
        self.settle(Outcome.OK)
        if padding:
            head, tail = line.split(json.dumps(PAD_PLACEHOLDER), 1)
            writer.send(b"event: complete\ndata: " + head.encode())
            writer.send(padding)
            writer.send(tail.encode() + b"\n\n")
        else:
            writer.send(f"event: complete\ndata: {line}\n\n".encode())
        writer.finish()
        return Outcome.OK
