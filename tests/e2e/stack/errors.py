"""The one failure the harness reports: which service, why, and the tail of its log."""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 40


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class StackError(Exception):
    """A service could not start or answer; str() names it and shows its log's tail."""

    def __init__(self, service: str, reason: str, log: Path | None = None) -> None:
        self.service, self.reason, self.log = service, reason, log
        message = f"{service}: {reason}"
        if log is not None:
            message += f"\n----- last lines of {log} -----\n{tail(log)}"
        super().__init__(message)
