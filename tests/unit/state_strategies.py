"""Hypothesis strategies for state records, shared by the state tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from proxbox_scheduler.state import RunRecord
from proxbox_scheduler.state.base import MAX_COUNTS

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64)
aware = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9000, 1, 1), timezones=st.just(dt.UTC)
) | st.datetimes(timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=h)) for h in (-11, 0, 5, 14)]))


@st.composite
def records(draw: st.DrawFn, job: str | None = None) -> RunRecord:
    started = draw(aware)
    finished = draw(st.booleans())
    return RunRecord(
        run_id=draw(names),
        job=job or draw(names),
        started=started,
        ended=draw(aware) if finished else None,
        duration_s=draw(st.floats(0, 1e9, allow_nan=False)) if finished else None,
        outcome=draw(st.sampled_from(["success", "failure", "degraded", "skipped", "interrupted"])),
        reason=draw(st.text(max_size=1200)),
        trigger=draw(st.sampled_from(["scheduled", "manual", "once", "start"])),
        slot=draw(st.none() | aware),
        counts=draw(st.dictionaries(names, st.integers(-(2**63), 2**63 - 1), max_size=MAX_COUNTS)),
        replica=draw(st.text(max_size=64)),
    )
