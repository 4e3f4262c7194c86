"""proxbox-api's wire contract as the emulator speaks it, copied from the captures.

This is the emulator's OWN copy, written from ``shared/spec/proxbox-api.md`` and
the traffic in ``shared/samples/`` (proxbox-api 0.0.30.post2), never imported from
the scheduler it checks: a wrong list on one side then fails the other side's
tests instead of passing both. ``tests/unit/test_emulator_contract.py`` holds it
against the captures in ``tests/data/samples``.
"""

from __future__ import annotations

from typing import Any

# Run order of the 12 stages (sample-stream-ok.txt, the ``step`` frames).
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

# proxbox-api announces the stages in a different order than it runs them
# (the first ``discovery`` frame); a client must not rely on the announced order.
DISCOVERY_ORDER = STAGES[:7] + STAGES[10:] + STAGES[7:10]
"""The interface and IP stages are announced after replications and backup routines."""

# Wording used in "Starting <label> synchronization." / "<Label> synchronization finished."
STAGE_LABELS = {
    "devices": "devices",
    "storage": "storage",
    "virtual-machines": "virtual machines",
    "virtual-disks": "virtual disks",
    "task-history": "task history",
    "backups": "backup",
    "snapshots": "snapshot",
    "node-interfaces": "node interfaces",
    "vm-interfaces": "VM interfaces",
    "vm-ip-addresses": "VM IP address",
    "replications": "replications",
    "backup-routines": "backup routines",
}

# Every event name the captured runs (ok, failed, NetBox down) carry; the emulator sends no other.
EVENTS = (
    "bootstrap_done",
    "step",
    "discovery",
    "item_progress",
    "phase_summary",
    "error_detail",
    "error",
    "complete",
)

# Sent only by the VM stage's own stream (sample-stage-vms-ok.txt), never by a full update.
STAGE_ONLY_EVENTS = ("substep",)

KEY_HEADER = "X-Proxbox-API-Key"
STREAM_PATH = "/full-update/stream"
SYNC_ACTIVE_PATH = "/sync/active"
OPEN_PATHS = ("/", "/health")  # answered without a key
RUN_KIND = "full-update"
DEFAULT_FETCH_CONCURRENCY = "8"

BOOTSTRAP_OBJECTS = (
    "tag:Proxbox",
    "tag:proxbox-discovered-qemu",
    "tag:proxbox-discovered-lxc",
    "tag:proxbox-discovered-cluster",
    "tag:proxbox-discovered-node",
    "tag:proxbox-soft-deleted",
    "cluster_type:proxmox",
    "manufacturer:proxmox",
    "device_type:proxmox-generic-device",
    "device_role:proxmox-node",
    "vm_role:virtual-machine-qemu",
    "vm_role:container-lxc",
    "vm_role:unknown",
    "vm_type:qemu-virtual-machine",
    "vm_type:lxc-container",
)

# The stream's own headers (sample-stream-ok.headers.txt), before the security headers.
STREAM_HEADERS = (
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("content-type", "text/event-stream; charset=utf-8"),
)

# Headers proxbox-api's middleware adds to routed responses (not to its own 401/429).
SECURITY_HEADERS = (
    ("vary", "Origin"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-xss-protection", "1; mode=block"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("content-security-policy", "default-src 'self'; frame-ancestors 'none'"),
)

SERVER_HEADER = "uvicorn"
LOCKED_BODY = {"detail": "Too many failed authentication attempts. Please try again later."}
NOT_FOUND_BODY = {"detail": "Not Found"}
METHOD_NOT_ALLOWED_BODY = {"detail": "Method Not Allowed"}

# Pre-stream rejections, bodies as captured in http-error-responses.txt.
REJECT_BODIES: dict[int, dict[str, Any]] = {
    400: {
        "message": "No NetBox endpoint found",
        "detail": "Please add a NetBox endpoint in the database",
        "python_exception": None,
    },
    502: {
        "message": "NetBox endpoint is not reachable",
        "detail": {
            "cause": "ClientConnectorError",
            "error": "ClientConnectorError: Cannot connect to host netbox:8000 ssl:default "
            "[Connect call failed ('netbox', 8000)]",
            "hint": "Check that the configured NetBox URL is reachable from proxbox-api.",
            "probe_timeout_seconds": 10.0,
        },
        "python_exception": None,
    },
}


# The per-stage streams: path -> the one stage it runs (proxbox-api 0.0.30.post2's /openapi.json).
# Each frames its run like sample-stage-*.txt: ``step <stage> started``, the stage's frames,
# ``step <stage> completed`` and ``complete``, both with the stage's result; no bootstrap,
# no ``stream`` step, no full-update discovery. None of them shows in ``/sync/active``
# (stage-http-and-active.txt).
STAGE_PATHS = {
    "/dcim/devices/create/stream": "devices",
    "/virtualization/virtual-machines/storage/create/stream": "storage",
    "/virtualization/virtual-machines/create/stream": "virtual-machines",
    "/virtualization/virtual-machines/virtual-disks/create/stream": "virtual-disks",
    "/virtualization/virtual-machines/task-history/create/stream": "task-history",
    "/virtualization/virtual-machines/backups/all/create/stream": "backups",
    "/virtualization/virtual-machines/snapshots/all/create/stream": "snapshots",
    "/dcim/devices/interfaces/create/stream": "node-interfaces",
    "/virtualization/virtual-machines/interfaces/create/stream": "vm-interfaces",
    "/virtualization/virtual-machines/interfaces/ip-address/create/stream": "vm-ip-addresses",
    "/proxmox/replication/stream": "replications",
    "/proxmox/cluster/backup/stream": "backup-routines",
}

# The stages whose stream words its messages with a capitalised label of its own; the
# others use the stage's name as it is ("devices sync completed.", sample-stage-*-ok.txt).
STAGE_STREAM_LABELS = {"virtual-machines": "Virtual machines", "replications": "Replications"}
# The one stage whose ``started`` step is worded apart from its other messages:
# "Starting virtual disks synchronization." then "virtual-disks synchronization finished."
STAGE_STREAM_STARTED_LABELS = {"virtual-disks": "virtual disks"}

# Query parameters that narrow a run to some Proxmox endpoints; the first one given wins
# (proxmox_endpoint_ids is the plugin's alias and takes precedence).
ENDPOINT_ID_PARAMS = ("proxmox_endpoint_ids", "endpoint_ids")
EMULATED_ENDPOINT_ID = 1
"""The id of the one Proxmox endpoint the emulated cluster is (the stack's mock has id 1 too)."""
INVALID_ENDPOINT_IDS_BODY = {
    "message": "Invalid Proxmox endpoint_ids query parameter",
    "detail": "endpoint_ids must be a comma-separated list of integers.",
    "python_exception": None,
}
"""The 400 for ``endpoint_ids=abc`` (stage-http-and-active.txt), before any stream."""


def stage_stream_wording(stage: str) -> tuple[str, str, str, str]:
    """A per-stage stream's messages: started, completed step, complete ok, complete failed."""
    label = STAGE_STREAM_LABELS.get(stage, stage)
    return (
        f"Starting {STAGE_STREAM_STARTED_LABELS.get(stage, label.lower())} synchronization.",
        f"{label} synchronization finished.",
        f"{label} sync completed.",
        f"{label} sync failed.",
    )


def key_required(attempts: int) -> dict[str, str]:
    """The 401 body for a missing key: the countdown never moves (the capture shows it)."""
    return {"detail": f"API key required. {attempts} attempts remaining."}


def key_invalid(remaining: int) -> dict[str, str]:
    """The 401 body for a wrong key; the last allowed attempt drops the countdown."""
    if remaining > 0:
        return {"detail": f"Invalid API key. {remaining} attempts remaining."}
    return {"detail": "Invalid API key."}


def validation_error(kind: str, value: str) -> dict[str, Any]:
    """FastAPI's 422 body for a bad ``fetch_max_concurrency`` query parameter."""
    loc = ["query", "fetch_max_concurrency"]
    if kind == "int_parsing":
        msg = "Input should be a valid integer, unable to parse string as an integer"
        return {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value}]}
    msg = "Input should be greater than or equal to 1"
    return {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value, "ctx": {"ge": 1}}]}
