"""A proxbox-api emulator that speaks the real service's wire contract.

Why it exists: users point a deployment at it to try their setup without a
Proxmox cluster or a NetBox; the test suite drives it to produce every stream
shape the scheduler must cope with (success, failure, cut, degraded, slow,
huge); the demo and the benchmarks use it as a fast, controllable peer.

What it follows: ``shared/spec/proxbox-api.md`` and the captured traffic in
``shared/samples/`` (proxbox-api 0.0.30.post2). Payload keys, messages, event
order, header names, the key check with its 401 countdown and per
(client address, key) 429 lockout, and ``/sync/active`` mirror those captures.
It is built on the standard library only (``ThreadingHTTPServer``, one daemon
thread per connection) so that it runs anywhere the scheduler runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import math
import selectors
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from proxbox_scheduler.proxbox.protocol import STAGES

# proxbox-api announces the stages in a different order than it runs them
# (sample-stream-ok.txt); a client must not rely on the announced order.
_DISCOVERY_ORDER = (
    "devices",
    "storage",
    "virtual-machines",
    "virtual-disks",
    "task-history",
    "backups",
    "snapshots",
    "replications",
    "backup-routines",
    "node-interfaces",
    "vm-interfaces",
    "vm-ip-addresses",
)

# Wording used in "Starting <label> synchronization." / "<Label> synchronization finished."
_STAGE_LABELS = {
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

_BOOTSTRAP_OBJECTS = [
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
]

# Headers proxbox-api's middleware adds to routed responses (not to its own 401/429).
_SECURITY_HEADERS = (
    ("vary", "Origin"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-xss-protection", "1; mode=block"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("content-security-policy", "default-src 'self'; frame-ancestors 'none'"),
)

_LOCKED_BODY = {"detail": "Too many failed authentication attempts. Please try again later."}

# Pre-stream rejections, bodies as captured in http-error-responses.txt.
_REJECT_BODIES: dict[int, dict[str, Any]] = {
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

_KEY_HEADER = "X-Proxbox-API-Key"
_FLUSH_BYTES = 64 * 1024  # frames are buffered up to this much before a chunk goes out
_FLOOD_BATCH = 4096  # item_progress frames per chunk when flooding
_PAD_RECORD_COMMENT = 800  # filler characters per padding record
_PAD_PLACEHOLDER = "\x00journal_entries\x00"  # cannot occur in real data


@dataclass
class EmulatorSettings:
    """Every knob of the emulator; the defaults are an instant, always-successful small cluster.

    Run numbering starts at 1 per emulator. ``fail_every``/``cut_every`` pick runs by
    that number (a run that qualifies for both is cut). ``fail_stage`` is the stage
    at which failing runs fail and cut runs are cut, after the stage's delay.
    ``result_bytes`` is the approximate size of the final ``complete`` data line;
    the filler goes into ``result.journal_entries`` as NetBox-like records so the
    line stays one valid JSON document with realistic nesting.
    """

    host: str = "127.0.0.1"
    port: int = 0
    key: str | None = None
    stage_delay: float = 0.0
    slow_stages: dict[str, float] = field(default_factory=dict)
    keepalive_interval: float = 15.0
    first_byte_delay: float = 0.0
    fail_every: int = 0
    fail_stage: str = "node-interfaces"
    fail_error: str = "NetBox REST request failed"
    fail_detail: str | None = "Injected fault (500) by proxbox-api emulator"
    cut_every: int = 0
    cut_mode: str = "abort"  # "abort": close without the last chunk; "clean": end the body
    reject_every: int = 0
    reject_status: int = 502
    degraded: bool = False
    item_events: int = 0
    result_bytes: int = 0
    devices: int = 1
    virtual_machines: int = 2
    storage: int = 2
    backups: int = 1
    backup_routines: int = 1
    lockout_after: int = 5
    lockout_seconds: float = 300.0
    netbox_url: str = "http://netbox.example.com"
    access_log: bool = False

    def __post_init__(self) -> None:
        unknown = {self.fail_stage, *self.slow_stages} - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
        if self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be > 0")
        if self.cut_mode not in ("abort", "clean"):
            raise ValueError("cut_mode must be 'abort' or 'clean'")
        if self.reject_status not in _REJECT_BODIES:
            raise ValueError(f"reject_status must be one of {sorted(_REJECT_BODIES)}")
        if self.devices < 1:
            raise ValueError("devices must be >= 1 (virtual machines live on nodes)")
        if self.lockout_after < 1:
            raise ValueError("lockout_after must be >= 1")
        counts = (
            self.fail_every,
            self.cut_every,
            self.reject_every,
            self.item_events,
            self.result_bytes,
            self.virtual_machines,
            self.storage,
            self.backups,
            self.backup_routines,
        )
        delays = (self.stage_delay, self.first_byte_delay, self.lockout_seconds)
        if min(counts) < 0 or min(delays) < 0 or min(self.slow_stages.values(), default=0) < 0:
            raise ValueError("counts and delays must not be negative")


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
    """One ``/full-update/stream`` run; ``outcome`` stays None while it is active.

    Outcomes: ``ok`` and ``failed`` (a terminal ``complete`` was sent), ``cut`` (ended
    on purpose without one), ``disconnected`` (the client went away), ``stopped``
    (the emulator was stopped mid-run), ``error`` (a bug in the emulator). The
    outcome is recorded just before the terminal frames are written.
    """

    id: str
    number: int
    started_at: str
    kind: str = "full-update"
    outcome: str | None = None


class _ClientGone(Exception):
    """The peer closed the connection (or the emulator cut it) while a run was going."""


@dataclass
class _Strike:
    failures: int = 0
    locked_until: float = 0.0


@dataclass(frozen=True)
class _Vm:
    netbox_id: int
    node_id: int
    vmid: int
    name: str
    kind: str  # "qemu" or "lxc"
    node: str
    iface: str
    address: str


def _progress(current: int, total: int) -> dict[str, Any]:
    percent = round(100.0 * current / total, 1) if total else 0.0
    return {"current": current, "total": total, "percent": percent}


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _await_peer(selector: selectors.BaseSelector, sock: socket.socket, timeout: float) -> None:
    """Wait ``timeout`` seconds but raise _ClientGone as soon as the peer closes.

    An idle SSE connection only becomes readable when the client hangs up (or the
    emulator shuts the socket down on stop), so readability plus an empty peek is
    the disconnect signal; without it a slow stage would not notice a gone client.
    """
    if timeout <= 0:
        return
    if not selector.select(timeout):
        return
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except OSError as exc:
        raise _ClientGone from exc
    if not data:
        raise _ClientGone
    # The client sent bytes mid-response (a pipelined request): nothing to learn here.
    time.sleep(timeout)


class _SseWriter:
    """SSE output of one run: buffers frames, sends them as HTTP/1.1 chunks, keeps alive."""

    def __init__(self, sock: socket.socket, wfile: Any, keepalive: float, *, chunked: bool) -> None:
        self._sock = sock
        self._wfile = wfile
        self._keepalive = keepalive
        self._chunked = chunked
        self._parts: list[str] = []
        self._size = 0
        self._last_sent = time.monotonic()
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)

    def event(self, name: str, data: dict[str, Any]) -> None:
        # json.dumps defaults (", " and ": " separators, ASCII) are what proxbox-api emits.
        text = f"event: {name}\ndata: {json.dumps(data)}\n\n"
        self._parts.append(text)
        self._size += len(text)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            payload = "".join(self._parts).encode()
            self._parts.clear()
            self._size = 0
            self.send(payload)

    def send(self, payload: bytes) -> None:
        """Send bytes as one chunk (the caller flushed buffered frames first)."""
        if not self._chunked:
            self._wfile.write(payload)
        elif len(payload) < _FLUSH_BYTES:
            self._wfile.write(b"%x\r\n%b\r\n" % (len(payload), payload))
        else:  # avoid copying multi-MiB payloads just to frame them
            self._wfile.write(b"%x\r\n" % len(payload))
            self._wfile.write(payload)
            self._wfile.write(b"\r\n")
        self._last_sent = time.monotonic()

    def pause(self, seconds: float) -> None:
        """Idle like a slow stage: keep-alive comments when quiet, notice a gone client."""
        self.flush()
        deadline = time.monotonic() + seconds
        while (now := time.monotonic()) < deadline:
            due = self._last_sent + self._keepalive
            if now >= due:
                self.send(b": keepalive\n\n")
            else:
                _await_peer(self._selector, self._sock, min(deadline, due) - now)

    def finish(self) -> None:
        self.flush()
        if self._chunked:
            self._wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection mid-body, like a killed server or a proxy timeout."""
        self.flush()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._selector.close()


class _Script:
    """Plays one full-update run onto a writer, stage by stage, as proxbox-api does."""

    def __init__(
        self,
        emulator: Emulator,
        writer: _SseWriter,
        run: RunRecord,
        *,
        fate: str,
        first: bool,
        fetch_concurrency: int,
    ) -> None:
        self.s = emulator.settings
        self.w = writer
        self.run = run
        self.fate = fate
        self.first = first
        self.op = "created" if first else "updated"
        self.fetch_concurrency = fetch_concurrency
        self.nodes = emulator._nodes
        self.vms = emulator._vms
        self.emulator = emulator
        self.bodies: dict[str, Callable[[], dict[str, Any]]] = {
            "devices": self._devices,
            "storage": self._storage,
            "virtual-machines": self._virtual_machines,
            "virtual-disks": self._virtual_disks,
            "task-history": self._task_history,
            "backups": self._backups,
            "snapshots": self._snapshots,
            "node-interfaces": self._node_interfaces,
            "vm-interfaces": self._vm_interfaces,
            "vm-ip-addresses": self._vm_ip_addresses,
            "replications": self._replications,
            "backup-routines": self._backup_routines,
        }

    def _settle(self, outcome: str) -> None:
        """Record the outcome before the last bytes go out.

        A client that has read the terminal frame (or seen the cut) then always
        finds the counters and /sync/active already updated: no race in tests.
        """
        self.emulator._end_run(self.run, outcome)

    def play(self) -> str:
        """Emit the whole run; return its outcome ("ok", "failed" or "cut")."""
        w = self.w
        objects = list(_BOOTSTRAP_OBJECTS)
        w.event(
            "bootstrap_done",
            {
                "ok": True,
                "skipped": False,
                "reason": None,
                "warnings": [],
                "created": objects if self.first else [],
                "patched": [],
                "unchanged": [] if self.first else objects,
            },
        )
        w.event(
            "step",
            {
                "step": "stream",
                "status": "started",
                "message": f"Full update stream connected (operation_id={self.run.id})",
            },
        )
        w.event(
            "discovery",
            {
                "event": "discovery",
                "phase": "full-update",
                "status": "discovered",
                "message": f"Discovered {len(STAGES)} sync stage(s) for full update",
                "count": len(STAGES),
                "items": [{"name": name, "type": "stage"} for name in _DISCOVERY_ORDER],
                "progress": {"current": 0, "total": len(STAGES), "percent": 0},
                "metadata": {"operation_id": self.run.id},
            },
        )
        for stage in STAGES:
            started = time.monotonic()
            label = _STAGE_LABELS[stage]
            w.event(
                "step",
                {"step": stage, "status": "started", "message": f"Starting {label} synchronization."},
            )
            w.pause(self.s.slow_stages.get(stage, self.s.stage_delay))
            if stage == self.s.fail_stage and self.fate == "cut":
                self._settle("cut")
                if self.s.cut_mode == "clean":
                    w.finish()
                else:
                    w.abort()
                return "cut"
            if stage == self.s.fail_stage and self.fate == "fail":
                self._fail(stage)
                return "failed"
            result = self.bodies[stage]()
            w.event(
                "step",
                {
                    "step": stage,
                    "status": "completed",
                    "message": f"{label[0].upper()}{label[1:]} synchronization finished.",
                    "result": result,
                    "duration_seconds": round(time.monotonic() - started, 3),
                },
            )
        self._complete()
        return "ok"

    # -- terminal frames ---------------------------------------------------------

    def _fail(self, stage: str) -> None:
        """The failure shape of sample-stream-fail*.txt: error_detail(s), error, complete."""
        s, w = self.s, self.w
        detail = s.fail_detail
        if detail is not None:
            w.event(
                "error_detail",
                {
                    "event": "error_detail",
                    "phase": stage,
                    "category": "internal",
                    "message": f"Error during {_STAGE_LABELS[stage]} sync: {s.fail_error} | {detail}",
                    "detail": f"{s.fail_error} | {detail}",
                },
            )
        w.event(
            "error_detail",
            {
                "event": "error_detail",
                "phase": "full-update",
                "category": "internal",
                "message": "Full update synchronization failed",
                "detail": detail if detail is not None else s.fail_error,
                "suggestion": "Review backend logs and retry the full update",
            },
        )
        w.event(
            "error",
            {"step": "full-update", "status": "failed", "error": s.fail_error, "detail": detail},
        )
        w.event(
            "complete",
            {
                "ok": False,
                "message": s.fail_error,
                "errors": [{"detail": detail if detail is not None else s.fail_error}],
            },
        )
        self._settle("failed")
        w.finish()

    def _complete(self) -> None:
        padding = self.emulator._padding
        placeholder = _PAD_PLACEHOLDER if padding else None
        result = self.emulator._result(first=self.first, padding_placeholder=placeholder)
        line = json.dumps({"ok": True, "message": "Full update sync completed.", "result": result})
        w = self.w
        w.flush()
        self._settle("ok")
        if padding:
            head, tail = line.split(json.dumps(_PAD_PLACEHOLDER), 1)
            w.send(b"event: complete\ndata: " + head.encode())
            w.send(padding)
            w.send(tail.encode() + b"\n\n")
        else:
            w.send(f"event: complete\ndata: {line}\n\n".encode())
        w.finish()

    # -- stage bodies: emit the frames between "started" and "completed" ---------

    def _tally(self, total: int, failed: int = 0) -> dict[str, int]:
        done = total - failed
        return {
            "created": done if self.first else 0,
            "updated": 0 if self.first else done,
            "deleted": 0,
            "failed": failed,
            "skipped": 0,
            "total": total,
        }

    def _discovery(self, phase: str, message: str, items: list[dict[str, Any]], **extra: Any) -> None:
        self.w.event(
            "discovery",
            {
                "event": "discovery",
                "phase": phase,
                "status": "discovered",
                "message": message,
                "count": len(items),
                "items": items,
                "progress": _progress(0, len(items)),
                **extra,
            },
        )

    def _row(self, step: str, status: str, message: str, rowid: str | None, **payload: Any) -> None:
        self.w.event(
            "step",
            {"step": step, "status": status, "message": message, "rowid": rowid, "payload": payload},
        )

    def _end_of(self, obj: str) -> None:
        self._row(obj, "completed", f"{obj} stream completed", None, object=obj, end=True)

    def _sync_progress(self, payload: dict[str, Any]) -> None:
        self.w.event(
            "step",
            {
                "step": "sync",
                "status": "progress",
                "message": "sync progress",
                "rowid": None,
                "payload": payload,
            },
        )

    def _devices(self) -> dict[str, Any]:
        n, nb = len(self.nodes), self.s.netbox_url
        self._discovery(
            "devices",
            f"Discovered {n} device(s) to synchronize",
            [{"name": node, "item_type": "node"} for node in self.nodes],
            metadata={"total_devices": n},
        )
        for i, node in enumerate(self.nodes, 1):
            url = f"{nb}/dcim/devices/{i}/"
            progress = _progress(i, n)
            self.w.event(
                "item_progress",
                {
                    "event": "item_progress",
                    "phase": "devices",
                    "status": "processing",
                    "message": f"Finalizing device '{node}'",
                    "item": {"name": node, "item_type": "node"},
                    "operation": self.op,
                    "progress": progress,
                },
            )
            self._row(
                "device",
                "progress",
                f"Processing device {node}",
                node,
                object="device",
                type="create",
                data={
                    "completed": False,
                    "sync_status": "syncing",
                    "rowid": node,
                    "name": node,
                    "netbox_id": None,
                },
            )
            self.w.event(
                "item_progress",
                {
                    "event": "item_progress",
                    "phase": "devices",
                    "status": "completed",
                    "message": f"Synced device '{node}'",
                    "item": {"name": node, "netbox_id": i, "netbox_url": url, "item_type": "node"},
                    "operation": self.op,
                    "progress": progress,
                },
            )
            self._row(
                "device",
                "completed",
                f"Synced device {node}",
                node,
                object="device",
                type="create",
                data={
                    "completed": True,
                    "increment_count": "yes",
                    "sync_status": "completed",
                    "rowid": node,
                    "name": f"<a href='{url}'>{node}</a>",
                    "netbox_id": i,
                    "role": f"<a href='{nb}/api/dcim/device-roles/1/'>Proxmox Node</a>",
                    "cluster": f"<a href='{nb}/api/virtualization/clusters/1/'>pve-lab</a>",
                    "device_type": f"<a href='{nb}/api/dcim/device-types/1/'>Proxmox Generic Device</a>",
                },
            )
        tally = self._tally(n)
        self._phase_summary("devices", f"Device sync completed: {tally['created']} created, 0 failed", tally)
        self._end_of("device")
        return {"count": n}

    def _phase_summary(
        self, phase: str, message: str, result: dict[str, int], status: str = "completed"
    ) -> None:
        self.w.event(
            "phase_summary",
            {
                "event": "phase_summary",
                "phase": phase,
                "status": status,
                "message": message,
                "result": result,
            },
        )

    def _storage(self) -> dict[str, Any]:
        names = self.emulator._storage_names
        self._discovery(
            "storage",
            f"Discovered {len(names)} storage item(s) to synchronize",
            [{"name": name, "item_type": "storage"} for name in names],
            metadata={"fetch_concurrency": self.fetch_concurrency},
        )
        tally = self._tally(len(names))
        self._phase_summary(
            "storage",
            f"Storage synchronization completed: {tally['created']} created, "
            f"{tally['updated']} updated, 0 failed",
            tally,
        )
        return {"count": len(names)}

    def _virtual_machines(self) -> dict[str, Any]:
        n = len(self.vms)
        self._discovery(
            "virtual-machines",
            f"Discovered {n} virtual machine(s) to synchronize",
            [{"name": vm.name, "item_type": vm.kind} for vm in self.vms],
            metadata={"sync_vm_network": False},
        )
        if self.s.item_events:
            self._flood(self.s.item_events)
        failed = 1 if self.s.degraded and n else 0
        if failed:
            vm = self.vms[-1]
            self.w.event(
                "item_progress",
                {
                    "event": "item_progress",
                    "phase": "virtual-machines",
                    "status": "failed",
                    "message": f"Failed to sync virtual machine '{vm.name}'",
                    "item": {"name": vm.name, "item_type": vm.kind},
                    "operation": self.op,
                    "progress": _progress(n, n),
                    "error": "NetBox rejected the virtual machine payload (400)",
                },
            )
            message = f"Virtual machine sync completed: {n - 1} synchronized, 1 failed"
        else:
            message = f"Virtual machine sync completed: {n} synchronized"
        self._phase_summary(
            "virtual-machines",
            message,
            self._tally(n, failed),
            status="completed_with_errors" if failed else "completed",
        )
        self._end_of("virtual_machine")
        return {"count": n}

    def _flood(self, total: int) -> None:
        """Stream ``total`` small item_progress frames fast: preformatted, batched per chunk."""
        template = (
            'event: item_progress\ndata: {"event": "item_progress", "phase": "virtual-machines", '
            '"status": "completed", "message": "Synced virtual machine \'vm-item-%d\'", '
            '"item": {"name": "vm-item-%d", "item_type": "qemu"}, "operation": "updated", '
            '"progress": {"current": %d, "total": %d, "percent": %r}}\n\n'
        )
        self.w.flush()
        for start in range(1, total + 1, _FLOOD_BATCH):
            frames = [
                template % (i, i, i, total, round(100.0 * i / total, 1))
                for i in range(start, min(start + _FLOOD_BATCH, total + 1))
            ]
            self.w.send("".join(frames).encode())

    def _virtual_disks(self) -> dict[str, Any]:
        for vm in self.vms:
            self._row(
                "virtual_disk",
                "progress",
                f"Processing virtual_disk {vm.name}-disks",
                f"{vm.name}-disks",
                object="virtual_disk",
                type="sync",
                data={
                    "completed": False,
                    "rowid": f"{vm.name}-disks",
                    "name": vm.name,
                    "sync_status": "syncing",
                    "disks": "undefined",
                },
            )
        created, updated = (1, 0) if self.first else (0, 1)
        for vm in self.vms:
            self._row(
                "virtual_disk",
                "completed",
                f"Synced virtual_disk {vm.name}-disks",
                f"{vm.name}-disks",
                object="virtual_disk",
                type="sync",
                data={
                    "completed": True,
                    "increment_count": "yes",
                    "rowid": f"{vm.name}-disks",
                    "name": vm.name,
                    "sync_status": "completed",
                    "disks": f"1 disks ({created} created, {updated} updated, 0 deleted)",
                },
            )
        self._end_of("virtual_disk")
        return {"count": len(self.vms)}

    def _task_history(self) -> dict[str, Any]:
        n = len(self.vms)
        self._discovery(
            "task-history",
            f"Starting task history sync for {n} VMs",
            [{"name": vm.name, "item_type": "vm"} for vm in self.vms],
        )
        records = (n + 1) // 2
        self._phase_summary(
            "task-history",
            f"Task history sync completed: {records} records reconciled, 0 skipped, 0 fetch error(s)",
            self._tally(records),
        )
        return {"count": n}

    def _backups(self) -> dict[str, Any]:
        b = self.s.backups
        self._sync_progress(
            {"step": "backups", "status": "started", "message": "Starting backup synchronization."}
        )
        self._sync_progress(
            {
                "step": "backups",
                "status": "discovered",
                "message": f"Found {b} backups to reconcile.",
                "count": b,
            }
        )
        self._sync_progress(
            {
                "step": "backups",
                "status": "completed",
                "message": f"Backup sync completed. {b} reconciled, 0 task error(s), 0 deleted.",
                "result": {"reconciled": b, "failed_tasks": 0, "deleted": 0},
            }
        )
        return {"count": b}

    def _snapshots(self) -> dict[str, Any]:
        n = len(self.vms)
        self._sync_progress(
            {
                "step": "snapshots",
                "status": "started",
                "message": "Starting snapshot synchronization.",
            }
        )
        self._discovery(
            "vm-snapshots",
            f"Discovered {n} VM(s) to scan for snapshots",
            [{"name": vm.name, "item_type": "virtual-machine"} for vm in self.vms],
        )
        for vm in self.vms:
            self._row(
                "snapshot",
                "progress",
                f"Processing snapshot {vm.name}",
                vm.name,
                object="snapshot",
                type="sync",
                data={
                    "sync_status": "undefined",
                    "name": vm.name,
                    "netbox_id": vm.netbox_id,
                    "status": "Processing...",
                },
            )
        for vm in self.vms:
            self._row(
                "snapshot",
                "completed",
                f"Synced snapshot {vm.name}",
                vm.name,
                object="snapshot",
                type="sync",
                data={
                    "completed": True,
                    "name": vm.name,
                    "netbox_id": vm.netbox_id,
                    "snapshots_found": self._snapshot_count(vm),
                    "sync_status": "completed",
                },
            )
        for i, vm in enumerate(self.vms, 1):
            self.w.event(
                "item_progress",
                {
                    "event": "item_progress",
                    "phase": "vm-snapshots",
                    "status": "completed",
                    "message": f"Scanned VM '{vm.name}': {self._snapshot_count(vm)} snapshot(s) found",
                    "item": {"name": vm.name, "item_type": "virtual-machine"},
                    "operation": "updated",
                    "progress": _progress(i, n),
                },
            )
        snaps = sum(self._snapshot_count(vm) for vm in self.vms)
        tally = self._tally(snaps)
        self._phase_summary(
            "vm-snapshots",
            f"Snapshot sync completed: {tally['created']} created, {tally['updated']} updated, "
            "0 deleted, 0 skipped",
            tally,
        )
        self._sync_progress(
            {
                "step": "snapshots",
                "status": "completed",
                "message": f"Snapshot synchronization finished. Created/updated: {snaps}",
                "count": snaps,
            }
        )
        return {"count": n}

    @staticmethod
    def _snapshot_count(vm: _Vm) -> int:
        return 1 if vm.kind == "qemu" else 0

    def _node_interfaces(self) -> dict[str, Any]:
        count = 0
        for index, node in enumerate(self.nodes):
            self._row(
                "node_interface",
                "progress",
                f"Processing node_interface {node}",
                node,
                object="node_interface",
                data={"completed": False, "sync_status": "syncing", "rowid": node, "name": node},
            )
            for iface, address in (("eno1", None), ("vmbr0", f"192.0.2.{index % 250 + 1}/24")):
                count += 1
                self._row(
                    "interface",
                    "completed",
                    f"Synced interface {iface}",
                    iface,
                    object="interface",
                    data={
                        "completed": True,
                        "rowid": iface,
                        "name": iface,
                        "netbox_id": count,
                        "device": node,
                        "ip_address": address,
                    },
                )
            self._row(
                "node_interface",
                "completed",
                f"Synced node_interface {node}",
                node,
                object="node_interface",
                data={"completed": True, "rowid": node, "name": node, "count": 2},
            )
        self._end_of("node_interface")
        return {"count": count}

    def _vm_progress_rows(self, obj: str) -> None:
        """One "Processing" row per VM interface, as proxbox-api sends for interfaces and IPs."""
        for vm in self.vms:
            self._row(
                obj,
                "progress",
                f"Processing {obj} {vm.iface}",
                vm.iface,
                object=obj,
                data={
                    "completed": False,
                    "sync_status": "syncing",
                    "rowid": vm.iface,
                    "name": vm.iface,
                    "vm": vm.name,
                },
            )

    def _vm_interfaces(self) -> dict[str, Any]:
        self._vm_progress_rows("vm_interface")
        self._end_of("vm_interface")
        return {"count": len(self.vms)}

    def _vm_ip_addresses(self) -> dict[str, Any]:
        self._vm_progress_rows("vm_ip")
        for vm in self.vms:
            self._row(
                "vm_ip",
                "completed",
                f"Synced vm_ip {vm.iface}",
                vm.iface,
                object="vm_ip",
                data={
                    "completed": True,
                    "rowid": vm.iface,
                    "name": vm.iface,
                    "vm": vm.name,
                    "ip_id": vm.netbox_id + len(self.nodes),
                    "address": vm.address,
                },
            )
        self._end_of("vm_ip")
        return {"count": len(self.vms)}

    def _replications(self) -> dict[str, Any]:
        return {"created": 0, "updated": 0}

    def _backup_routines(self) -> dict[str, Any]:
        r = self.s.backup_routines
        names = [f"backup-daily-{i}" if i > 1 else "backup-daily" for i in range(1, r + 1)]
        self._discovery(
            "backup-routines",
            f"Discovered {r} backup routine(s) to synchronize",
            [{"name": name, "item_type": "backup-routine"} for name in names],
        )
        tally = self._tally(r)
        self._phase_summary(
            "backup-routines",
            f"Backup routines sync completed: {tally['created']} created, "
            f"{tally['updated']} updated, 0 stale, 0 failed",
            tally,
        )
        return {"created": tally["created"], "updated": tally["updated"]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Routes one connection's requests; the state lives on the Emulator."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.settings.access_log:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.emulator._track(self.connection, add=False)
        super().finish()

    def send_response(self, code: int, message: str | None = None) -> None:
        self.server.emulator._count_status(code)
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        path = parts.path
        key = self.headers.get(_KEY_HEADER) or None
        emulator._record(
            RequestRecord(
                method=method,
                path=path,
                query=parts.query,
                key_present=key is not None,
                user_agent=self.headers.get("User-Agent"),
                accept=self.headers.get("Accept"),
                client=self.client_address[0],
            )
        )
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if path in ("/", "/health"):
            if method != "GET":
                self._json(405, {"detail": "Method Not Allowed"})
            elif path == "/":
                self._json(200, {"message": "proxbox-api emulator", "emulator": True})
            else:
                self._json(200, {"status": "ok"})
            return
        denial = emulator._authorize(self.client_address[0], key)
        if denial is not None:
            status, body, headers = denial
            self._json(status, body, headers, middleware=True)
            return
        if path == "/full-update/stream":
            if method != "GET":
                self._json(405, {"detail": "Method Not Allowed"})
            else:
                self._full_update(parse_qs(parts.query))
        elif path == "/sync/active":
            if method != "GET":
                self._json(405, {"detail": "Method Not Allowed"})
            else:
                self._json(200, emulator.sync_active())
        else:
            self._json(404, {"detail": "Not Found"})

    def _json(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        middleware: bool = False,
    ) -> None:
        """Plain JSON like FastAPI; the auth middleware's own replies carry no security headers."""
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.send_header("content-type", "application/json")
        if not middleware:
            for name, value in _SECURITY_HEADERS:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _full_update(self, query: dict[str, list[str]]) -> None:
        emulator = self.server.emulator
        settings = emulator.settings
        fetch = query.get("fetch_max_concurrency", ["8"])[-1]
        try:
            fetch_concurrency = int(fetch)
        except ValueError:
            self._json(422, _validation_error("int_parsing", fetch))
            return
        if fetch_concurrency < 1:
            self._json(422, _validation_error("greater_than_equal", fetch))
            return
        if settings.reject_every and emulator._next_stream_request() % settings.reject_every == 0:
            status = settings.reject_status
            self._json(status, _REJECT_BODIES[status])
            return
        if settings.first_byte_delay:
            # proxbox-api resolves NetBox/Proxmox sessions before any header goes out.
            with selectors.DefaultSelector() as selector:
                selector.register(self.connection, selectors.EVENT_READ)
                try:
                    _await_peer(selector, self.connection, settings.first_byte_delay)
                except _ClientGone:
                    self.close_connection = True
                    return
        run, fate, first = emulator._begin_run()
        outcome = "error"  # only kept if the emulator itself raised
        writer: _SseWriter | None = None
        try:
            self.send_response(200)
            self.send_header("cache-control", "no-cache")
            self.send_header("x-accel-buffering", "no")
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            for name, value in _SECURITY_HEADERS:
                self.send_header(name, value)
            chunked = self.request_version == "HTTP/1.1"
            if chunked:
                self.send_header("transfer-encoding", "chunked")
            else:
                self.close_connection = True
            self.end_headers()
            writer = _SseWriter(self.connection, self.wfile, settings.keepalive_interval, chunked=chunked)
            outcome = _Script(
                emulator, writer, run, fate=fate, first=first, fetch_concurrency=fetch_concurrency
            ).play()
        except (_ClientGone, OSError):
            outcome = "stopped" if emulator._stopping.is_set() else "disconnected"
        finally:
            if writer is not None:
                writer.close()
            if outcome not in ("ok", "failed"):
                self.close_connection = True
            emulator._end_run(run, outcome)
            emulator._stream_closed()


def _validation_error(kind: str, value: str) -> dict[str, Any]:
    """FastAPI's 422 body for a bad ``fetch_max_concurrency`` query parameter."""
    loc = ["query", "fetch_max_concurrency"]
    if kind == "int_parsing":
        msg = "Input should be a valid integer, unable to parse string as an integer"
        return {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value}]}
    msg = "Input should be greater than or equal to 1"
    return {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value, "ctx": {"ge": 1}}]}


class Emulator:
    """A running proxbox-api stand-in plus thread-safe counters of what it saw.

    ``start()`` serves from a background thread (tests, demo); ``serve_forever()``
    blocks the caller until ``stop()`` (CLI). ``wait_until()`` lets tests wait for
    a state change without sleeping.
    """

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self.port = 0
        self.url = ""
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RequestRecord] = []
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._runs: list[RunRecord] = []
        self._active: dict[str, RunRecord] = {}
        self._strikes: dict[tuple[str, str], _Strike] = {}
        self._stream_requests = 0
        self._writing = 0  # streams whose handler is still writing (outlives the run's outcome)
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        s = self.settings
        self._nodes = [f"pve{i:02d}" for i in range(1, s.devices + 1)]
        self._storage_names = ["local", "local-lvm", *(f"pool{i}" for i in range(3, s.storage + 1))][
            : s.storage
        ]
        self._vms = [self._make_vm(i) for i in range(s.virtual_machines)]
        self._padding = self._build_padding()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve from a daemon thread; sets ``port`` and ``url``. Idempotent."""
        with self._lock:
            if self._server is not None:
                return self
            host = self.settings.host
            server_class = _Server6 if ":" in host else _Server
            server = server_class((host, self.settings.port), _Handler)
            server.emulator = self
            self._server = server
            self.port = server.server_address[1]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{self.port}"
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"proxbox-api-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Start if needed, then block the calling thread until ``stop()`` has run."""
        self.start()
        self._stopped.wait()

    def stop(self, grace: float = 0.0) -> None:
        """Stop accepting, give active runs ``grace`` seconds, then cut every connection.

        A run cut here ends like one on a restarted proxbox-api: no terminal event.
        """
        with self._lock:
            server, thread = self._server, self._thread
        if server is None or self._stopping.is_set():
            return
        server.shutdown()
        if grace > 0:
            self.wait_until(self._quiet, timeout=grace)
        self._stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.wait_until(self._quiet, timeout=5.0)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        self._stopped.set()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observations (thread-safe snapshots) ----------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true (re-checked on every state change)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

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
            return sum(run.outcome in ("ok", "failed") for run in self._runs)

    @property
    def active_runs(self) -> int:
        with self._lock:
            return len(self._active)

    def sync_active(self) -> dict[str, Any]:
        """The ``GET /sync/active`` body (sync-active-and-concurrency.txt)."""
        with self._lock:
            runs = [
                {"id": run.id, "kind": run.kind, "started_at": run.started_at}
                for run in self._active.values()
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

    # -- used by the handler ---------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, record: RequestRecord) -> None:
        with self._changed:
            self._requests.append(record)
            self._paths[record.path] += 1
            self._changed.notify_all()

    def _count_status(self, status: int) -> None:
        with self._changed:
            self._statuses[status] += 1
            self._changed.notify_all()

    def _authorize(self, client: str, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """proxbox-api's key check: None when allowed, else (status, body, headers).

        Lockout is per (client address, presented key): a missing key never counts
        (the capture shows "5 attempts remaining" forever), a wrong key counts down
        and the attempt after the last allowed one gets 429 with ``retry-after``.
        """
        expected = self.settings.key
        if expected is None:
            return None
        limit = self.settings.lockout_after
        if key is None:
            return 401, {"detail": f"API key required. {limit} attempts remaining."}, {}
        now = time.monotonic()
        with self._lock:
            strike = self._strikes.get((client, key))
            if strike is not None and strike.locked_until:
                if now < strike.locked_until:
                    retry = str(max(1, math.ceil(strike.locked_until - now)))
                    return 429, dict(_LOCKED_BODY), {"retry-after": retry}
                del self._strikes[(client, key)]  # the lockout has expired: start afresh
            if hmac.compare_digest(key.encode(), expected.encode()):
                return None
            strike = self._strikes.setdefault((client, key), _Strike())
            strike.failures += 1
            remaining = limit - strike.failures
            if remaining <= 0:
                strike.locked_until = now + self.settings.lockout_seconds
        if remaining > 0:
            return 401, {"detail": f"Invalid API key. {remaining} attempts remaining."}, {}
        return 401, {"detail": "Invalid API key."}, {}

    def _next_stream_request(self) -> int:
        with self._lock:
            self._stream_requests += 1
            return self._stream_requests

    def _begin_run(self) -> tuple[RunRecord, str, bool]:
        """Register a run; decide its fate (ok/fail/cut) and whether it is the first sync."""
        s = self.settings
        with self._changed:
            number = len(self._runs) + 1
            if s.cut_every and number % s.cut_every == 0:
                fate = "cut"
            elif s.fail_every and number % s.fail_every == 0:
                fate = "fail"
            else:
                fate = "ok"
            first = not any(run.outcome == "ok" for run in self._runs)
            run = RunRecord(id=str(uuid.uuid4()), number=number, started_at=_iso_now())
            self._runs.append(run)
            self._active[run.id] = run
            self._writing += 1
            self._changed.notify_all()
        return run, fate, first

    def _quiet(self) -> bool:
        with self._lock:
            return self._writing == 0

    def _stream_closed(self) -> None:
        with self._changed:
            self._writing -= 1
            self._changed.notify_all()

    def _end_run(self, run: RunRecord, outcome: str) -> None:
        """Mark a run finished; the first outcome recorded wins."""
        with self._changed:
            if run.outcome is not None:
                return
            run.outcome = outcome
            self._active.pop(run.id, None)
            self._changed.notify_all()

    # -- synthetic inventory and the complete payload ----------------------------------

    def _make_vm(self, index: int) -> _Vm:
        vmid = 100 + index
        kind = "qemu" if index % 2 == 0 else "lxc"
        node = index % len(self._nodes)
        return _Vm(
            netbox_id=index + 1,
            node_id=node + 1,
            vmid=vmid,
            name=f"vm-{vmid}" if kind == "qemu" else f"ct-{vmid}",
            kind=kind,
            node=self._nodes[node],
            iface="net0" if kind == "qemu" else "eth0",
            address=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}/24",
        )

    def _ref(self, path: str, ident: int, display: str, **extra: Any) -> dict[str, Any]:
        nb = self.settings.netbox_url
        return {
            "id": ident,
            "url": f"{nb}/api/{path}/{ident}/",
            "display_url": f"{nb}/{path}/{ident}/",
            "display": display,
            **extra,
        }

    def _result(self, *, first: bool, padding_placeholder: str | None) -> dict[str, Any]:
        """The success ``result``: NetBox records per stage, summaries, then 12 counts.

        ``padding_placeholder`` reserves the ``journal_entries`` slot that the
        prebuilt padding is spliced into, so the big part is never re-serialised.
        """
        s, nodes, vms = self.settings, self._nodes, self._vms
        new = (1, 0) if first else (0, 1)
        site = self._ref(
            "dcim/sites",
            1,
            "Proxmox Default Site - pve-lab",
            name="Proxmox Default Site - pve-lab",
            slug="proxmox-default-site-pve-lab",
        )
        cluster = self._ref("virtualization/clusters", 1, "pve-lab", name="pve-lab")
        active = {"value": "active", "label": "Active"}
        devices = [
            self._ref(
                "dcim/devices",
                i,
                node,
                name=node,
                device_type=self._ref(
                    "dcim/device-types", 1, "Proxmox Generic Device", slug="proxmox-generic-device"
                ),
                role=self._ref("dcim/device-roles", 1, "Proxmox Node", slug="proxmox-node"),
                site=site,
                cluster=cluster,
                status=active,
                description=f"Proxmox Node {node}",
                tags=[],
            )
            for i, node in enumerate(nodes, 1)
        ]
        storage = [
            self._ref("plugins/proxbox/storage", i, name, name=name, cluster=cluster, enabled=True)
            for i, name in enumerate(self._storage_names, 1)
        ]
        virtual_machines = [
            self._ref(
                "virtualization/virtual-machines",
                vm.netbox_id,
                vm.name,
                name=vm.name,
                status=active,
                site=site,
                cluster=cluster,
                device=self._ref("dcim/devices", vm.node_id, vm.node, name=vm.node),
                vcpus=2.0,
                memory=2048,
                disk=32768,
                custom_fields={"proxmox_vm_id": vm.vmid, "proxmox_vm_type": vm.kind},
            )
            for vm in vms
        ]
        backups = [
            {
                "storage": "local",
                "virtual_machine": vms[i % len(vms)].netbox_id if vms else None,
                "subtype": "qemu",
                "size": 2147483648,
                "volume_id": f"local:backup/vzdump-qemu-{100 + i}-2026_01_01-02_00_00.vma.zst",
                "format": "tzst",
                **self._ref("plugins/proxbox/backups", i + 1, f"Object {i + 1}"),
            }
            for i in range(s.backups)
        ]
        node_ifaces = [
            {"id": 2 * i + j + 1, "name": name}
            for i in range(len(nodes))
            for j, name in enumerate(("eno1", "vmbr0"))
        ]
        vm_ifaces = [
            {
                "id": vm.netbox_id,
                "mac_address": None,
                "interface": self._ref("virtualization/interfaces", vm.netbox_id, vm.iface),
                "name": vm.iface,
                "enabled": True,
            }
            for vm in vms
        ]
        vm_ips = [{"ip_id": vm.netbox_id + len(nodes), "address": vm.address} for vm in vms]
        n = len(vms)
        snaps = sum(vm.kind == "qemu" for vm in vms)
        result: dict[str, Any] = {
            "devices": devices,
            "storage": storage,
            "virtual_machines": virtual_machines,
            "virtual_disks": {"count": n, "created": n * new[0], "updated": n * new[1], "skipped": 0},
            "task_history": {"count": n, "created": (n + 1) // 2, "skipped": 0},
            "backups": backups,
            "snapshots": {
                "count": n,
                "created": snaps * new[0],
                "updated": snaps * new[1],
                "skipped": 0,
                "deleted": 0,
            },
            "node_interfaces": node_ifaces,
            "vm_interfaces": vm_ifaces,
            "vm_ip_addresses": vm_ips,
            "replications": {"created": 0, "updated": 0, "stale": 0, "errors": 0},
            "backup_routines": {
                "created": s.backup_routines * new[0],
                "updated": s.backup_routines * new[1],
                "stale": 0,
                "errors": 0,
            },
        }
        if padding_placeholder is not None:
            result["journal_entries"] = padding_placeholder
        result.update(
            devices_count=len(nodes),
            storage_count=len(storage),
            virtual_machines_count=n,
            virtual_disks_count=n,
            task_history_count=n,
            backups_count=s.backups,
            snapshots_count=n,
            node_interfaces_count=len(node_ifaces),
            vm_interfaces_count=n,
            vm_ip_addresses_count=n,
            replications_count=0,
            backup_routines_count=s.backup_routines,
        )
        if s.degraded:
            result["warnings"] = [
                f"virtual-machines: {1 if n else 0} of {n} virtual machine(s) failed to sync"
            ]
            result["degraded"] = True
        return result

    def _build_padding(self) -> bytes:
        """JSON list of journal-entry records sized so the complete line is ~result_bytes.

        Built once: it is the same for every run, and a multi-MiB line should cost
        the benchmark its transfer and parsing, not the emulator's formatting.
        """
        target = self.settings.result_bytes
        if not target:
            return b""
        placeholder = _PAD_PLACEHOLDER
        base_line = json.dumps(
            {
                "ok": True,
                "message": "Full update sync completed.",
                "result": self._result(first=True, padding_placeholder=placeholder),
            }
        )
        budget = target - (len(base_line) - len(json.dumps(placeholder)))
        if budget < 64:
            return b""
        return journal_padding(budget, self.settings.netbox_url, len(self._vms)).encode()


def journal_padding(budget: int, netbox_url: str, vm_count: int) -> str:
    """A JSON list of NetBox journal-entry records exactly ``budget`` characters long.

    Stands in for the synced records a large cluster's ``complete`` event carries;
    the benchmarks use it too, so their big events look like the emulator's.
    """

    def record(ident: int, comment_len: int) -> str:
        return json.dumps(
            {
                "id": ident,
                "url": f"{netbox_url}/api/extras/journal-entries/{ident}/",
                "display": f"Journal entry {ident}",
                "assigned_object_type": "virtualization.virtualmachine",
                "assigned_object_id": ident % max(1, vm_count) + 1,
                "kind": {"value": "info", "label": "Info"},
                "comments": "x" * comment_len,
            }
        )

    parts: list[str] = []
    used = 2  # the enclosing brackets
    ident = 0
    while True:
        ident += 1
        full = record(ident, _PAD_RECORD_COMMENT)
        bare = len(full) - _PAD_RECORD_COMMENT + (2 if parts else 0)  # 2: ", " separator
        left = budget - used - bare  # comment length if this record were the last
        if left <= 2 * (bare + _PAD_RECORD_COMMENT):
            parts.append(record(ident, max(0, left)))
            break
        parts.append(full)
        used += bare + _PAD_RECORD_COMMENT
    return "[" + ", ".join(parts) + "]"


# -- command line ------------------------------------------------------------------------


def _slow_stage(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    if not sep or name not in STAGES:
        raise argparse.ArgumentTypeError(f"expected STAGE=SECONDS with STAGE one of {', '.join(STAGES)}")
    try:
        return name, float(seconds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad seconds in {text!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``emulate-api`` flags (defaults are EmulatorSettings', port 8800 aside)."""
    d = EmulatorSettings()
    add = parser.add_argument
    add("--host", default=d.host, help="address to bind (default %(default)s)")
    add(
        "--port",
        type=int,
        default=8800,
        help="port to bind, 0 for any free one (default %(default)s, like proxbox-api)",
    )
    add("--key", default=None, help="API key required in X-Proxbox-API-Key (default: no key required)")
    add(
        "--stage-delay",
        type=float,
        default=d.stage_delay,
        metavar="SECONDS",
        help="time each of the 12 stages takes (default %(default)s)",
    )
    add(
        "--slow-stage",
        type=_slow_stage,
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
        help="override the delay of one stage (repeatable)",
    )
    add(
        "--keepalive",
        type=float,
        default=d.keepalive_interval,
        metavar="SECONDS",
        help="send ': keepalive' after this much silence (default %(default)s)",
    )
    add(
        "--first-byte-delay",
        type=float,
        default=d.first_byte_delay,
        metavar="SECONDS",
        help="delay before the stream's response headers (real: 0.4-1.4 s)",
    )
    add(
        "--fail-every",
        type=int,
        default=d.fail_every,
        metavar="N",
        help="every Nth run fails with error + complete ok:false (0: never)",
    )
    add(
        "--fail-stage",
        choices=STAGES,
        default=d.fail_stage,
        help="stage where failing runs fail and cut runs are cut (default %(default)s)",
    )
    add("--fail-error", default=d.fail_error, help="error string of failing runs")
    add("--fail-detail", default=d.fail_detail, help="detail string of failing runs")
    add(
        "--cut-every",
        type=int,
        default=d.cut_every,
        metavar="N",
        help="every Nth run's stream is cut with no terminal event (0: never)",
    )
    add(
        "--cut-mode",
        choices=("abort", "clean"),
        default=d.cut_mode,
        help="abort: drop the connection mid-body; clean: end the body early",
    )
    add(
        "--reject-every",
        type=int,
        default=d.reject_every,
        metavar="N",
        help="every Nth stream request is refused before the stream (0: never)",
    )
    add(
        "--reject-status",
        type=int,
        choices=sorted(_REJECT_BODIES),
        default=d.reject_status,
        help="status of refused stream requests: 400 no endpoint, 502 NetBox unreachable",
    )
    add(
        "--degraded",
        action="store_true",
        help="runs succeed with phase_summary completed_with_errors and result.degraded",
    )
    add(
        "--item-events",
        type=int,
        default=d.item_events,
        metavar="N",
        help="extra item_progress events per run (throughput benchmarks)",
    )
    add(
        "--result-bytes",
        type=int,
        default=d.result_bytes,
        metavar="BYTES",
        help="pad the final complete data line to about this size",
    )
    add("--devices", type=int, default=d.devices, help="Proxmox nodes (default %(default)s)")
    add(
        "--virtual-machines",
        type=int,
        default=d.virtual_machines,
        help="VMs and containers (default %(default)s)",
    )
    add("--storage", type=int, default=d.storage, help="storages (default %(default)s)")
    add("--backups", type=int, default=d.backups, help="backups (default %(default)s)")
    add(
        "--backup-routines", type=int, default=d.backup_routines, help="backup routines (default %(default)s)"
    )
    add(
        "--lockout-after",
        type=int,
        default=d.lockout_after,
        help="wrong-key attempts before the 429 lockout (default %(default)s)",
    )
    add(
        "--lockout-seconds",
        type=float,
        default=d.lockout_seconds,
        help="lockout length (default %(default)s)",
    )
    add("--quiet", action="store_true", help="no access log on stderr")


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """Map parsed ``emulate-api`` flags onto EmulatorSettings."""
    return EmulatorSettings(
        host=args.host,
        port=args.port,
        key=args.key,
        stage_delay=args.stage_delay,
        slow_stages=dict(args.slow_stage),
        keepalive_interval=args.keepalive,
        first_byte_delay=args.first_byte_delay,
        fail_every=args.fail_every,
        fail_stage=args.fail_stage,
        fail_error=args.fail_error,
        fail_detail=args.fail_detail,
        cut_every=args.cut_every,
        cut_mode=args.cut_mode,
        reject_every=args.reject_every,
        reject_status=args.reject_status,
        degraded=args.degraded,
        item_events=args.item_events,
        result_bytes=args.result_bytes,
        devices=args.devices,
        virtual_machines=args.virtual_machines,
        storage=args.storage,
        backups=args.backups,
        backup_routines=args.backup_routines,
        lockout_after=args.lockout_after,
        lockout_seconds=args.lockout_seconds,
        access_log=not args.quiet,
    )


class _Shutdown(Exception):
    """Raised from the signal handler to unwind the main thread out of its wait."""


def _on_signal(signum: int, frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # a second signal must not interrupt the stop
    raise _Shutdown(signum)


def run_cli(args: argparse.Namespace) -> int:
    """``proxbox-scheduler emulate-api``: serve until SIGTERM/SIGINT, then exit 0."""
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"emulate-api: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(settings)
    try:
        emulator.start()
    except OSError as exc:
        print(f"emulate-api: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        required = "yes" if settings.key is not None else "no"
        print(f"proxbox-api emulator listening on {emulator.url} (key required: {required})", flush=True)
        emulator.serve_forever()
    except _Shutdown:
        pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(
        prog="python -m proxbox_scheduler.emulator",
        description="proxbox-api emulator faithful to its wire contract.",
    )
    add_arguments(_parser)
    sys.exit(run_cli(_parser.parse_args()))
