"""What the emulator saw and is doing: requests, statuses, runs, open connections.

All of it behind one lock with one condition, so tests can ``wait_until`` a
state change instead of sleeping, and the handler threads never race each other.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from proxbox_emulator.contract import RUN_KIND


class Fate(StrEnum):
    """What a run is set to do, decided when it begins."""

    OK = "ok"
    FAIL = "fail"
    CUT = "cut"


class Outcome(StrEnum):
    """How a run ended.

    ``ok`` and ``failed``: a terminal ``complete`` was sent; ``cut``: ended on purpose
    without one; ``disconnected``: the client went away; ``stopped``: the emulator
    was stopped mid-run; ``error``: a bug in the emulator.
    """

    OK = "ok"
    FAILED = "failed"
    CUT = "cut"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"
    ERROR = "error"


TERMINAL = (Outcome.OK, Outcome.FAILED)  # outcomes whose stream carried a complete event


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it, so tests can assert on what the client sent."""

    method: str
    path: str
    query: str
    key_present: bool
    user_agent: str | None
    accept: str | None
    client: str


@dataclass
class RunRecord:
    """One stream run; ``outcome`` stays None while it is active.

    ``kind`` is ``full-update`` or the stage a per-stage stream ran; ``endpoint_ids`` the
    Proxmox endpoints the query narrowed it to (None: all). The outcome is recorded just
    before the terminal frames are written.
    """

    id: str
    number: int
    started_at: str
    kind: str = RUN_KIND
    outcome: Outcome | None = None
    endpoint_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RunStart:
    """A run just registered: its record, its fate, and whether no run has succeeded yet."""

    run: RunRecord
    fate: Fate
    first: bool


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """Thread-safe state of one emulator; every mutation wakes ``wait_until``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RequestRecord] = []
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._runs: list[RunRecord] = []
        self._active: dict[str, RunRecord] = {}
        self._stream_requests = 0
        self._writing = 0  # streams whose handler is still writing (outlives the run's outcome)
        self._connections: set[socket.socket] = set()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true (re-checked on every state change)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # -- written by the handler ------------------------------------------------------

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def record(self, record: RequestRecord) -> None:
        with self._changed:
            self._requests.append(record)
            self._paths[record.path] += 1
            self._changed.notify_all()

    def count_status(self, status: int) -> None:
        with self._changed:
            self._statuses[status] += 1
            self._changed.notify_all()

    def next_stream_request(self) -> int:
        """Number the stream requests (rejected ones included), from 1."""
        with self._lock:
            self._stream_requests += 1
            return self._stream_requests

    def begin_run(
        self,
        *,
        cut_every: int,
        fail_every: int,
        kind: str = RUN_KIND,
        endpoint_ids: tuple[int, ...] | None = None,
    ) -> RunStart:
        """Register a run and decide its fate by its number, counted over every kind (cut wins over fail)."""
        with self._changed:
            number = len(self._runs) + 1
            if cut_every and number % cut_every == 0:
                fate = Fate.CUT
            elif fail_every and number % fail_every == 0:
                fate = Fate.FAIL
            else:
                fate = Fate.OK
            first = not any(run.outcome == Outcome.OK for run in self._runs)
            run = RunRecord(
                id=str(uuid.uuid4()),
                number=number,
                started_at=_iso_now(),
                kind=kind,
                endpoint_ids=endpoint_ids,
            )
            self._runs.append(run)
            self._active[run.id] = run
            self._writing += 1
            self._changed.notify_all()
        return RunStart(run, fate, first)

    def end_run(self, run: RunRecord, outcome: Outcome) -> None:
        """Mark a run finished; the first outcome recorded wins."""
        with self._changed:
            if run.outcome is not None:
                return
            run.outcome = outcome
            self._active.pop(run.id, None)
            self._changed.notify_all()

    def stream_closed(self) -> None:
        with self._changed:
            self._writing -= 1
            self._changed.notify_all()

    # -- read by the emulator and tests (snapshots) -----------------------------------

    def quiet(self) -> bool:
        """No stream handler is still writing."""
        with self._lock:
            return self._writing == 0

    def connections(self) -> list[socket.socket]:
        with self._lock:
            return list(self._connections)

    @property
    def requests_per_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self._paths)

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def status_counts(self) -> dict[int, int]:
        with self._lock:
            return dict(self._statuses)

    @property
    def runs(self) -> list[RunRecord]:
        with self._lock:
            return [replace(run) for run in self._runs]

    @property
    def runs_started(self) -> int:
        with self._lock:
            return len(self._runs)

    @property
    def runs_completed(self) -> int:
        """Runs that ended with a terminal ``complete`` event (ok or failed)."""
        with self._lock:
            return sum(run.outcome in TERMINAL for run in self._runs)

    @property
    def active_runs(self) -> int:
        with self._lock:
            return len(self._active)

    def sync_active(self) -> dict[str, Any]:
        """The ``GET /sync/active`` body (sync-active-and-concurrency.txt): full updates only,
        per-stage runs never show there (stage-http-and-active.txt)."""
        with self._lock:
            runs = [
                {"id": run.id, "kind": run.kind, "started_at": run.started_at}
                for run in self._active.values()
                if run.kind == RUN_KIND
            ]
        if not runs:
            return {"active": False, "started_at": None, "id": None, "kind": None, "runs": []}
        first = runs[0]
        return {
            "active": True,
            "started_at": first["started_at"],
            "id": first["id"],
            "kind": first["kind"],
            "runs": runs,
        }
