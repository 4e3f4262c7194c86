"""The SQLite store on real files: restarts, SIGKILL mid-run, corrupt and unwritable files, the loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from proxbox_scheduler.state import Counters, RunStart, SqliteStore, StateUnavailable, StateWriteFailed, rows

T = TypeVar("T")
T0 = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)
DEADLINE_S = 20.0

CHILD = """
import asyncio, datetime as dt, sys
from proxbox_scheduler.state import rows
from proxbox_scheduler.state import Counters, RunStart, SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    t0 = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)
    done = RunStart("run-1", "full", t0, "scheduled", t0)
    await store.run_started(done)
    await store.run_finished(done.finish(t0, 2.0, "success"), Counters(0, 0))
    slot = t0 + dt.timedelta(days=1)
    await store.run_started(RunStart("run-2", "full", slot, "scheduled", slot, "pod-a"))
    print("in flight", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def opened(path: Path) -> tuple[SqliteStore, Any]:
    store = SqliteStore(path)
    return store, await store.open()


def test_restart_keeps_history_last_success_streaks_slot_and_pause(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def first() -> None:
        store, _ = await opened(path)
        ok = RunStart("a", "full", T0, "scheduled", T0)
        await store.run_started(ok)
        await store.run_finished(ok.finish(T0, 3.0, "success", counts={"devices": 7}), Counters(0, 0))
        bad = RunStart("b", "full", T0 + dt.timedelta(hours=1), "scheduled", T0 + dt.timedelta(hours=1))
        await store.run_started(bad)
        await store.run_finished(bad.finish(bad.started, 0.1, "failure", "HTTP 401"), Counters(2, 2))
        await store.set_paused("full", True)
        await store.close()

    async def second() -> None:
        store, report = await opened(path)
        state = await store.load("full")
        assert report.warnings == () and report.interrupted == () and state.interrupted == ()
        assert [r.run_id for r in state.runs] == ["b", "a"]
        assert state.runs[0].reason == "HTTP 401"
        assert state.last_success is not None and state.last_success.counts == {"devices": 7}
        assert state.counters == Counters(2, 2)
        assert state.last_slot == T0 + dt.timedelta(hours=1)
        assert state.paused
        await store.close()

    run(first())
    run(second())


def wait_line(proc: subprocess.Popen[str], expected: str) -> None:
    """Read the child's stdout until ``expected`` arrives or the deadline passes."""
    assert proc.stdout is not None
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], deadline - time.monotonic())[0]:
            line = proc.stdout.readline()
            if line.strip() == expected:
                return
            assert line, f"child exited before {expected!r}: {proc.wait()}"
    raise AssertionError(f"no {expected!r} from the child within {DEADLINE_S} s")


def test_a_run_in_flight_at_sigkill_is_recorded_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        wait_line(child, "in flight")
    finally:
        child.send_signal(signal.SIGKILL)
        assert child.wait(DEADLINE_S) == -signal.SIGKILL

    async def after() -> None:
        store, report = await opened(path)
        slot = T0 + dt.timedelta(days=1)
        assert [(r.run_id, r.outcome, r.started, r.slot, r.replica) for r in report.interrupted] == [
            ("run-2", "interrupted", slot, slot, "pod-a")
        ]
        state = await store.load("full")
        assert [(r.run_id, r.outcome) for r in state.runs] == [("run-2", "interrupted"), ("run-1", "success")]
        assert state.interrupted == report.interrupted
        assert state.last_slot == slot  # the interrupted slot is not run again
        assert state.last_success is not None and state.last_success.run_id == "run-1"
        await store.close()
        store, report = await opened(path)  # reported once: the next open finds nothing in flight
        assert report.interrupted == ()
        assert [r.outcome for r in (await store.load("full")).runs] == ["interrupted", "success"]
        await store.close()

    run(after())


def test_second_process_on_the_same_file_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        first, _ = await opened(tmp_path / "state.db")
        with pytest.raises(StateUnavailable, match="in use by another process"):
            await opened(tmp_path / "state.db")
        await first.close()
        again, _ = await opened(tmp_path / "state.db")  # the lock goes with the store
        await again.close()

    run(scenario())


def assert_fresh_start_after_corruption(path: Path, garbage: bytes) -> None:
    async def scenario() -> None:
        store, report = await opened(path)
        assert len(report.warnings) == 1
        line = report.warnings[0]
        assert line.startswith(f"state file {path} was corrupt (") and "\n" not in line
        aside = [p for p in path.parent.glob("state.db.corrupt-*") if not p.name.endswith("-wal")]
        assert len(aside) == 1 and str(aside[0]) in line
        assert aside[0].read_bytes().startswith(garbage[:64])
        assert (await store.load("full")).runs == ()
        s = RunStart("c", "full", T0, "scheduled")
        await store.run_started(s)
        await store.run_finished(s.finish(T0, 1.0, "success"), Counters())
        await store.close()
        store, report = await opened(path)
        assert report.warnings == () and len((await store.load("full")).runs) == 1
        await store.close()

    run(scenario())


def test_garbage_file_is_moved_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    assert_fresh_start_after_corruption(path, garbage)


def test_damaged_pages_are_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def fill() -> None:
        store, _ = await opened(path)
        for n in range(200):
            s = RunStart(f"r{n}", "full", T0 + dt.timedelta(minutes=n), "scheduled")
            await store.run_finished(s.finish(s.started, 1.0, "failure", "x" * 500), Counters(n, 0))
        await store.close()

    run(fill())
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the damage below hits the data
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : 4 * page] = b"\xde\xad\xbe\xef" * (3 * page // 4)
    path.write_bytes(bytes(data))
    assert path.with_name("state.db-wal").exists()
    assert_fresh_start_after_corruption(path, bytes(data))
    assert len(list(tmp_path.glob("state.db.corrupt-*-wal"))) == 1  # the WAL went aside with its file


def test_schema_from_a_newer_version_is_refused_not_moved(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StateUnavailable, match="schema version 99 is newer"):
        run(opened(path))
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))
    with sqlite3.connect(path) as conn:  # the failed open let go of the file and its lock
        conn.execute("PRAGMA user_version = 1")
        for statement in rows.SCHEMA:
            conn.execute(statement)
    store, report = run(opened(path))
    assert report.warnings == ()
    run(store.close())


def test_path_under_a_regular_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateUnavailable) as caught:
        run(opened(tmp_path / "file" / "state.db"))
    assert str(caught.value) == f"state file {tmp_path}/file/state.db: {tmp_path}/file is not a directory"
    assert "\n" not in str(caught.value)


def test_directory_as_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StateUnavailable, match="is a directory"):
        run(opened(tmp_path / "state.db"))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root: ``chattr +i`` (permission bits do not stop root)."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        undo = ["chmod", "u+w", str(path)]
    else:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make {path} immutable here: {done.stderr.strip()}")
        undo = ["chattr", "-i", str(path)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_unwritable_directory_is_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(StateUnavailable) as caught:
        run(opened(folder / "state.db"))
    assert str(caught.value) in {  # chattr +i (root) / chmod (others)
        f"state file {folder}/state.db: cannot create {folder}/state.db.lock: {why}"
        for why in ("Operation not permitted", "Permission denied")
    }


def test_unwritable_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def create() -> None:
        store, _ = await opened(path)
        await store.set_paused("full", True)
        await store.close()

    run(create())
    with read_only(path), pytest.raises(StateUnavailable) as caught:
        run(opened(path))
    message = str(caught.value)
    assert message.startswith(f"state file {path}: ") and "readonly" in message and "\n" not in message


def test_a_slow_write_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """Another connection holds the write lock, so the store's write waits on its thread; the loop ticks."""
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store, _ = await opened(path)
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        s = RunStart("slow", "full", T0, "scheduled")
        write = asyncio.create_task(store.run_finished(s.finish(T0, 1.0, "success"), Counters()))
        ticks, deadline = 0, time.monotonic() + 0.3
        while time.monotonic() < deadline:  # a tick-counting poll: the loop runs while the write waits
            await asyncio.sleep(0)
            ticks += 1
            assert not write.done(), "the write finished while another connection held the lock"
        assert ticks > 1000
        assert any(t.name.startswith("proxbox-state") for t in threading.enumerate())
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.wait_for(write, DEADLINE_S)
        assert [r.run_id for r in (await store.load("full")).runs] == ["slow"]
        await store.close()

    run(scenario())


def test_a_failed_write_raises_one_line_and_the_store_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout_s=0.05)
        await store.open()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        s = RunStart("x", "full", T0, "scheduled")
        with pytest.raises(StateWriteFailed, match=f"^state file {path}: database is locked$"):
            await store.run_started(s)
        blocker.execute("ROLLBACK")
        blocker.close()
        await store.run_started(s)
        await store.run_finished(s.finish(T0, 1.0, "success"), Counters())
        assert [r.run_id for r in (await store.load("full")).runs] == ["x"]
        await store.close()

    run(scenario())
