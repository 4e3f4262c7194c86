"""Memory that survives restarts: per-job history, last success, streaks, last slot, pause.

``store_from_setting`` turns the value of ``PROXBOX_SCHEDULER_STATE_PATH``
(``state_path`` in the file) into a store: ``memory`` keeps nothing across
restarts, anything else is the path of a SQLite file, and no value means the
per-user default below. Inside the image the setting points at the volume.

``shared_store_from_url`` turns ``PROXBOX_SCHEDULER_STATE_URL`` (``postgresql://``
or ``redis://``/``rediss://``, Valkey included) into a store that several
replicas share; setting it turns on coordination (``coordination.py``).
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
from .shared import SharedStore
from .sqlite import SqliteStore

MEMORY = "memory"
"""The setting value that selects the store without persistence (a file named so: ``./memory``)."""
POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss")

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
    "SharedStore",
    "SqliteStore",
    "StateError",
    "StateLocked",
    "StateStore",
    "StateUnavailable",
    "StateWriteFailed",
    "default_state_path",
    "parse_state_url",
    "shared_store_from_url",
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


def parse_state_url(text: str) -> str:
    """Empty (no sharing) or a ``postgresql://``/``redis://``/``rediss://`` URL, else ValueError."""
    if not text:
        return ""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in (*POSTGRES_SCHEMES, *REDIS_SCHEMES) or not rest:
        raise ValueError(
            "expected postgresql://user:pass@host:5432/db or redis://host:6379/0"
            " (rediss:// for TLS, Valkey too)"
        )
    return text


def shared_store_from_url(url: str, replica: str, bounds: Bounds | None = None) -> SharedStore:
    """The shared store a (validated) URL names; nothing is opened yet."""
    scheme = url.partition("://")[0].lower()
    if scheme in POSTGRES_SCHEMES:
        from .postgres import PostgresStore

        return PostgresStore(url, bounds, replica=replica)
    from .redis import RedisStore

    return RedisStore(url, bounds, replica=replica)
