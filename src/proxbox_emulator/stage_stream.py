"""One run of a per-stage stream (``/virtualization/virtual-machines/create/stream`` ...).

Shaped after sample-stage-*.txt (proxbox-api 0.0.30.post2): ``step <stage> started``,
the stage's frames, ``step <stage> completed`` and ``complete``, both carrying the
stage's result (no duration, no bootstrap, no ``stream`` step). That result is the
count a full update's step reports, or, for the stages whose full ``complete`` sums them
up in figures (virtual disks, task history, snapshots, replications, backup routines),
those figures. A run fated to fail
fails in its one stage with ``error {step: <stage>}`` and ``complete ok:false``
(sample-stage-vms-fail-netbox-500.txt); one fated to be cut is cut there. A run whose
endpoint selection leaves out the emulated endpoint syncs nothing, as the real one does
for an unknown id: the VM stage still announces its 0 VMs, the others send no frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxbox_emulator.contract import stage_stream_wording
from proxbox_emulator.frames import Frames, progress
from proxbox_emulator.inventory import Vm
from proxbox_emulator.ledger import Fate, Outcome
from proxbox_emulator.script import cut
from proxbox_emulator.stages import BODIES, task_history, vm_discovery, vm_phase_end

RESOLVE_MS, RECONCILE_MS = 5200, 20700  # per-VM timings of the capture, reported as they were


class StageScript:
    """Plays one per-stage run; ``play`` returns its outcome (``settle`` records it first)."""

    def __init__(
        self, frames: Frames, stage: str, fate: Fate, settle: Callable[[Outcome], None], *, selected: bool
    ) -> None:
        self.frames = frames
        self.stage = stage
        self.fate = fate
        self.settle = settle
        self.selected = selected
        self.wording = stage_stream_wording(stage)

    def play(self) -> Outcome:
        frames, stage = self.frames, self.stage
        started, finished, completed, _ = self.wording
        frames.event("step", {"step": stage, "status": "started", "message": started})
        settings = frames.settings
        frames.writer.pause(settings.slow_stages.get(stage, settings.stage_delay))
        if self.fate is Fate.CUT:
            return cut(frames, self.settle)
        if self.fate is Fate.FAIL:
            return self._fail()
        result = self._body()
        frames.event("step", {"step": stage, "status": "completed", "message": finished, "result": result})
        frames.writer.flush()
        self.settle(Outcome.OK)
        frames.event("complete", {"ok": True, "message": completed, "result": result})
        frames.writer.finish()
        return Outcome.OK

    @property
    def _vms(self) -> list[Vm]:
        """The VMs this run covers: none when its endpoint selection leaves the cluster out."""
        return self.frames.inventory.vms if self.selected else []

    def _body(self) -> dict[str, Any]:
        if self.stage == "virtual-machines":
            return vm_stage(self.frames, self._vms)
        if not self.selected:
            return {"count": 0}
        result = BODIES[self.stage](self.frames)
        return self.frames.inventory.stage_summary(self.stage, self.frames.first) or result

    def _fail(self) -> Outcome:
        """Fail as the captured VM stage does: after the stage announced what it found."""
        settings = self.frames.settings
        if self.stage == "virtual-machines":
            vm_discovery(self.frames, self._vms, sync_vm_network=True)
        error = settings.fail_error
        if settings.fail_detail is not None:
            error = f"{error} | {settings.fail_detail}"
        self.frames.event("error", {"step": self.stage, "status": "failed", "error": error, "detail": error})
        failed = {"ok": False, "message": self.wording[3], "errors": [{"detail": error}]}
        self.frames.event("complete", failed)
        self.settle(Outcome.FAILED)
        self.frames.writer.finish()
        return Outcome.FAILED


def _vm_item(f: Frames, vm: Vm, status: str, message: str, ids: dict[str, Any] | None = None) -> None:
    """A VM's ``item_progress``; a synced one (``ids``: its NetBox id and URL) carries its timing."""
    timing = {} if ids is None else {"timing": {"elapsed_ms": RECONCILE_MS}}
    f.event(
        "item_progress",
        {
            "event": "item_progress",
            "phase": "virtual-machines",
            "status": status,
            "message": message,
            "item": {"name": vm.name, **(ids or {}), "item_type": vm.kind},
            "operation": f.operation,
            "progress": progress(0, 0),
            **timing,
        },
    )


def _substep(f: Frames, vm: Vm, name: str, status: str, message: str, elapsed_ms: int | None = None) -> None:
    timing = {} if elapsed_ms is None else {"timing": {"elapsed_ms": elapsed_ms}}
    f.event(
        "substep",
        {
            "event": "substep",
            "phase": "virtual-machines",
            "substep": name,
            "status": status,
            "message": message,
            "item": {"name": vm.name},
            **timing,
        },
    )


def _vm_row(f: Frames, vm: Vm) -> None:
    unknown = "undefined"
    data = {
        "sync_status": "syncing",
        "name": vm.name,
        "netbox_id": unknown,
        "status": unknown,
        "cluster": "pve-lab",
        "device": vm.node,
        **dict.fromkeys(("role", "vcpus", "memory", "disk", "vm_interfaces"), unknown),
        "completed": False,
        "rowid": vm.name,
    }
    message = f"Processing virtual_machine {vm.name}"
    f.row("virtual_machine", "progress", message, vm.name, object="virtual_machine", type="create", data=data)


def vm_stage(f: Frames, vms: list[Vm]) -> dict[str, Any]:
    """The VM stage as its own stream runs it: with VM networks and the VMs' task history."""
    vm_discovery(f, vms, sync_vm_network=True)
    for vm in vms:
        _vm_item(f, vm, "processing", f"Processing VM '{vm.name}'")
        _vm_row(f, vm)
        resolve = "resolve_dependencies"
        _substep(f, vm, resolve, "processing", f"Resolving dependencies for VM '{vm.name}'")
        _substep(f, vm, resolve, "completed", f"Dependencies ready for VM '{vm.name}'", RESOLVE_MS)
    for vm in vms:
        _substep(f, vm, "reconcile_vm", "processing", f"Reconciling VM '{vm.name}' in NetBox")
    for vm in vms:
        _substep(f, vm, "reconcile_vm", "completed", f"VM '{vm.name}' reconciled in NetBox", RECONCILE_MS)
    for vm in vms:
        url = f"{f.inventory.netbox_url}/virtualization/virtual-machines/{vm.netbox_id}/"
        _vm_item(f, vm, "completed", f"Synced VM '{vm.name}'", {"netbox_id": vm.netbox_id, "netbox_url": url})
    if vms:
        task_history(f, vms)
    vm_phase_end(f, vms, always_name_failed=True)
    return {"count": len(vms)}
