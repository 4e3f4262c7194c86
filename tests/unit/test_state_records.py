"""State records: validation, row round trips, and the setting -> store mapping."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given
from state_strategies import records

from proxbox_scheduler.state import (
    MemoryStore,
    RunRecord,
    RunStart,
    SqliteStore,
    default_state_path,
    rows,
    store_from_setting,
)
from proxbox_scheduler.state.base import MAX_COUNTS, MAX_REASON, Counters

T0 = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)


@given(records())
def test_record_survives_the_row_and_json_forms(record: RunRecord) -> None:
    assert rows.run_from_row(rows.run_to_row(record)) == record
    assert rows.run_from_row(json.loads(rows.record_json(record))) == record


@given(records())
def test_times_are_kept_in_utc(record: RunRecord) -> None:
    assert record.started.tzinfo is dt.UTC
    assert record.slot is None or record.slot.tzinfo is dt.UTC
    assert len(record.reason) <= MAX_REASON


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="started must be an aware datetime"):
        RunStart("r", "job", dt.datetime(2026, 1, 1), "scheduled")
    with pytest.raises(ValueError, match="slot must be an aware"):
        RunStart("r", "job", T0, "scheduled", slot=dt.datetime(2026, 1, 1))


def test_counts_are_bounded_and_integral() -> None:
    start = RunStart("r", "job", T0, "scheduled")
    with pytest.raises(ValueError, match="at most 64"):
        start.finish(T0, 1.0, "success", counts={f"k{i}": i for i in range(MAX_COUNTS + 1)})
    with pytest.raises(ValueError, match="64-bit int"):
        start.finish(T0, 1.0, "success", counts={"devices": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="64-bit int"):
        start.finish(T0, 1.0, "success", counts={"devices": True})


def test_ended_and_duration_go_together_and_duration_is_finite() -> None:
    with pytest.raises(ValueError, match="both set or both None"):
        RunRecord("r", "job", T0, T0, None, "success")
    with pytest.raises(ValueError, match="finite number"):
        RunRecord("r", "job", T0, T0, float("inf"), "success")
    with pytest.raises(ValueError, match=r"1\.\.64 characters"):
        RunRecord("r", "", T0, T0, 1.0, "success")


def test_long_reasons_are_cut() -> None:
    record = RunStart("r", "job", T0, "scheduled").finish(T0, 1.0, "failure", "x" * 5000)
    assert len(record.reason) == MAX_REASON
    assert record.reason.endswith("…")


def test_interrupted_record_keeps_the_start_and_says_when_it_was_found() -> None:
    start = RunStart("r", "job", T0, "scheduled", slot=T0, replica="pod-a")
    record = start.interrupted(T0 + dt.timedelta(hours=1))
    assert (record.outcome, record.started, record.slot, record.replica) == ("interrupted", T0, T0, "pod-a")
    assert record.ended is None and record.duration_s is None and not record.ok
    assert "2026-12-01T05:00:00+00:00" in record.reason


def test_counters_are_checked() -> None:
    with pytest.raises(ValueError, match="auth_streak"):
        Counters(0, -1)


def test_setting_memory_gives_the_memory_store() -> None:
    assert isinstance(store_from_setting("memory"), MemoryStore)
    assert isinstance(store_from_setting(" memory "), MemoryStore)


def test_setting_path_gives_sqlite(tmp_path: Path) -> None:
    store = store_from_setting(str(tmp_path / "s.db"))
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "s.db"
    named_memory = store_from_setting("./memory")
    assert isinstance(named_memory, SqliteStore) and named_memory.path == Path("memory")


def test_setting_tilde_is_expanded() -> None:
    store = store_from_setting("~/x.db")
    assert isinstance(store, SqliteStore) and store.path == Path.home() / "x.db"


def test_default_path_follows_xdg_then_home() -> None:
    assert default_state_path({"XDG_STATE_HOME": "/xdg", "HOME": "/h"}) == Path(
        "/xdg/proxbox-scheduler/state.db"
    )
    assert default_state_path({"HOME": "/h"}) == Path("/h/.local/state/proxbox-scheduler/state.db")
    # The XDG spec: a relative value is invalid and ignored.
    assert default_state_path({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.local/state/proxbox-scheduler/state.db"
    )
    store = store_from_setting("", {"HOME": "/h"})
    assert isinstance(store, SqliteStore) and store.path == Path("/h/.local/state/proxbox-scheduler/state.db")
