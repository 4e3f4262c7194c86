"""Judging a success against the last one: a sync that synced nothing is not a plain success.

proxbox-api answers ``complete ok:true`` with every ``*_count`` at 0 when, for
instance, the Proxmox endpoint lost its permissions or the cluster mapping went
away: green while doing nothing (netbox-proxbox b0bdeefd). Once a success has
had objects, such a run is ``degraded`` so metrics, the status page and pings show it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from proxbox_scheduler.core.outcome import Outcome
from proxbox_scheduler.state.base import history_counts

Counts = Mapping[str, int]


def judge_counts(outcome: Outcome, last: Counts | None) -> tuple[Outcome, Counts | None]:
    """The outcome as judged, and the counts of the last success with objects (kept for the next run).

    Runs without counts (the exec invoke, failures, skips) change nothing.
    """
    counts = history_counts(outcome.details.get("counts")) if outcome.ok else {}
    if not counts:
        return outcome, last
    if any(counts.values()):
        return outcome, counts
    if last is None or not any(last.values()):
        return outcome, last
    reason = (
        f"synced 0 objects (last success: {last.get('devices', 0)} devices, "
        f"{last.get('virtual_machines', 0)} VMs)"
    )
    return dataclasses.replace(outcome, degraded=True, reason=reason), last
