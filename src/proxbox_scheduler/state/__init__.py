"""Memory that survives restarts: per-job history, last success, streaks, last slot, pause.

``store_from_setting`` turns the value of ``PROXBOX_SCHEDULER_STATE_PATH``
(``state_path`` in the file) into a store: ``memory`` keeps nothing across
restarts, anything else is the path of a SQLite file, and no value means the
per-user default below. Inside the image the setting points at the volume.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .base import (
    INTERRUPTED,
    Bounds,
    Counters,
    JobState,
    Opened,
    RunRecord,
    RunStart,
    StateError,
    StateLocked,
    StateStore,
    StateUnavailable,
    StateWriteFailed,
)
from .memory import MemoryStore
from .sqlite import SqliteStore

MEMORY = "memory"
"""The setting value that selects the store without persistence (a file named so: ``./memory``)."""

__all__ = [
    "INTERRUPTED",
    "MEMORY",
    "Bounds",
    "Counters",
    "JobState",
    "MemoryStore",
    "Opened",
    "RunRecord",
    "RunStart",
    "SqliteStore",
    "StateError",
    "StateLocked",
    "StateStore",
    "StateUnavailable",
    "StateWriteFailed",
    "default_state_path",
    "store_from_setting",
]


def default_state_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/proxbox-scheduler/state.db``, else ``~/.local/state/proxbox-scheduler/state.db``."""
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "proxbox-scheduler" / "state.db"


def store_from_setting(
    value: str | None, env: Mapping[str, str] = os.environ, bounds: Bounds | None = None
) -> StateStore:
    """The store a setting names; nothing is opened yet (``await store.open()`` does that)."""
    text = (value or "").strip()
    if text == MEMORY:
        return MemoryStore(bounds)
    path = Path(text).expanduser() if text else default_state_path(env)
    return SqliteStore(path, bounds)
