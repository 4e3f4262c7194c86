"""Logging: JSON lines (default) or readable lines on stdout, one handler for the whole package."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f]")


def escape_controls(text: str) -> str:
    """Control characters as escapes (``\\r``, ``\\x1b``): a CR in a command's output cannot forge a line."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured extras of a record (everything not a stock LogRecord attribute)."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One readable line per record: time, level, message, then key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        extras = escape_controls(" ".join(f"{k}={v}" for k, v in _fields(record).items()))
        line = f"{_timestamp(record)} {record.levelname:<7} {escape_controls(record.getMessage())}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO", json_lines: bool = True, stream: TextIO | None = None) -> None:
    """Route every proxbox_scheduler logger to one stdout handler.

    A stdout that goes away (a closed pipe) must not turn every later record
    into a traceback on stderr, so handler errors are not reported.
    """
    logging.raiseExceptions = False
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger("proxbox_scheduler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
