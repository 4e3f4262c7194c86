"""proxbox-api's wire contract as data: paths, the key header, event names, the stages.

Written from proxbox-api 0.0.30's published contract and the captured streams;
everything that reads the peer's answers takes its names from here.
"""

from __future__ import annotations

KEY_HEADER = "X-Proxbox-API-Key"
FULL_UPDATE_PATH = "/full-update/stream"
"""The whole sync; the per-stage streams (``/dcim/devices/create/stream``,
``/virtualization/virtual-machines/create/stream`` ...) frame their events the same way
but run one stage, without the ``stream`` step and the full-update ``discovery``, and
end with ``complete {"ok": true, "result": {"count": n}}`` (tests/data/samples/sample-stage-*)."""
ACTIVE_PATH = "/sync/active"
EVENT_STREAM = "text/event-stream"

SUCCESS_EVENT = "complete"
"""Terminal event of every run; ``ok: false`` in its data makes it a failure."""
FAILURE_EVENT = "error"
"""Terminal failure of the whole run (``step: full-update``), followed by ``complete ok:false``."""
STAGE_STEP_EVENT = "step"
PHASE_SUMMARY_EVENT = "phase_summary"
DISCOVERY_EVENT = "discovery"
FULL_UPDATE_PHASE = "full-update"
STREAM_STEP = "stream"
"""The ``step`` whose ``started`` message carries the run's ``operation_id``."""

STAGES = (
    "devices",
    "storage",
    "virtual-machines",
    "virtual-disks",
    "task-history",
    "backups",
    "snapshots",
    "node-interfaces",
    "vm-interfaces",
    "vm-ip-addresses",
    "replications",
    "backup-routines",
)
"""The twelve stages of a full update, in the order proxbox-api runs them."""

STAGE_COUNT_KEY = "count"
"""The one figure of a per-stage stream's result: how many objects its stage synced."""
SUMMARY_KEYS = frozenset(
    {"ok", "message", "result", "errors", "error", "detail", "warnings", "degraded", STAGE_COUNT_KEY}
)
"""Keys of a terminal payload the verdict reads (besides the ``*_count`` figures)."""
COUNT_SUFFIX = "_count"
