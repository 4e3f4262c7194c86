"""The frames each of the 12 stages emits between its ``started`` and ``completed`` steps.

One function per stage, shaped after sample-stream-ok.txt; each returns the
``result`` of its ``completed`` step. ``BODIES`` maps every stage of the contract
to its function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxbox_emulator.frames import Frames, progress
from proxbox_emulator.inventory import Vm

_FLOOD_BATCH = 4096  # item_progress frames per chunk when flooding
ITEM_FRAME = (
    'event: item_progress\ndata: {"event": "item_progress", "phase": "virtual-machines", '
    '"status": "completed", "message": "Synced virtual machine \'vm-item-%d\'", '
    '"item": {"name": "vm-item-%d", "item_type": "qemu"}, "operation": "updated", '
    '"progress": {"current": %d, "total": %d, "percent": %r}}\n\n'
)
"""One ``--item-events`` frame: about 300 bytes, like proxbox-api's per-VM progress."""


def item_frames(first: int, last: int, total: int) -> str:
    """Frames ``first``..``last`` (inclusive) of a ``total``-long item_progress flood, preformatted.

    The benchmarks build their throughput streams with it too, so both floods are alike.
    """
    return "".join(ITEM_FRAME % (i, i, i, total, round(100.0 * i / total, 1)) for i in range(first, last + 1))


def _device_item(
    f: Frames, node: str, status: str, message: str, progress_: dict[str, Any], **item: Any
) -> None:
    f.event(
        "item_progress",
        {
            "event": "item_progress",
            "phase": "devices",
            "status": status,
            "message": message,
            "item": {"name": node, **item, "item_type": "node"},
            "operation": f.operation,
            "progress": progress_,
        },
    )


def _device_rows(f: Frames, i: int, node: str, url: str) -> None:
    nb = f.inventory.netbox_url
    processing = {
        "completed": False,
        "sync_status": "syncing",
        "rowid": node,
        "name": node,
        "netbox_id": None,
    }
    f.row(
        "device",
        "progress",
        f"Processing device {node}",
        node,
        object="device",
        type="create",
        data=processing,
    )
    _device_item(
        f,
        node,
        "completed",
        f"Synced device '{node}'",
        progress(i, len(f.inventory.nodes)),
        netbox_id=i,
        netbox_url=url,
    )
    synced = {
        "completed": True,
        "increment_count": "yes",
        "sync_status": "completed",
        "rowid": node,
        "name": f"<a href='{url}'>{node}</a>",
        "netbox_id": i,
        "role": f"<a href='{nb}/api/dcim/device-roles/1/'>Proxmox Node</a>",
        "cluster": f"<a href='{nb}/api/virtualization/clusters/1/'>pve-lab</a>",
        "device_type": f"<a href='{nb}/api/dcim/device-types/1/'>Proxmox Generic Device</a>",
    }
    f.row("device", "completed", f"Synced device {node}", node, object="device", type="create", data=synced)


def devices(f: Frames) -> dict[str, Any]:
    nodes = f.inventory.nodes
    n = len(nodes)
    f.discovery(
        "devices",
        f"Discovered {n} device(s) to synchronize",
        [{"name": node, "item_type": "node"} for node in nodes],
        metadata={"total_devices": n},
    )
    for i, node in enumerate(nodes, 1):
        _device_item(f, node, "processing", f"Finalizing device '{node}'", progress(i, n))
        _device_rows(f, i, node, f"{f.inventory.netbox_url}/dcim/devices/{i}/")
    tally = f.tally(n)
    f.phase_summary("devices", f"Device sync completed: {tally['created']} created, 0 failed", tally)
    f.end_of("device")
    return {"count": n}


def storage(f: Frames) -> dict[str, Any]:
    names = f.inventory.storage_names
    f.discovery(
        "storage",
        f"Discovered {len(names)} storage item(s) to synchronize",
        [{"name": name, "item_type": "storage"} for name in names],
        metadata={"fetch_concurrency": f.fetch_concurrency},
    )
    tally = f.tally(len(names))
    f.phase_summary(
        "storage",
        f"Storage synchronization completed: {tally['created']} created, "
        f"{tally['updated']} updated, 0 failed",
        tally,
    )
    return {"count": 0}  # proxbox-api counts 0 whatever it synced (full and storage-stage captures)


def _flood(f: Frames, total: int) -> None:
    """Stream ``total`` small item_progress frames fast: preformatted, batched per chunk."""
    f.writer.flush()
    for start in range(1, total + 1, _FLOOD_BATCH):
        f.writer.send(item_frames(start, min(start + _FLOOD_BATCH - 1, total), total).encode())


def virtual_machines(f: Frames) -> dict[str, Any]:
    vms = f.inventory.vms
    n = len(vms)
    vm_discovery(f, vms, sync_vm_network=False)
    if f.settings.item_events:
        _flood(f, f.settings.item_events)
    vm_phase_end(f, vms)
    return {"count": n}


def vm_discovery(f: Frames, vms: list[Vm], *, sync_vm_network: bool) -> None:
    """The VM stage's discovery frame (a full update syncs no VM networks, the stage's own stream does)."""
    f.discovery(
        "virtual-machines",
        f"Discovered {len(vms)} virtual machine(s) to synchronize",
        [{"name": vm.name, "item_type": vm.kind} for vm in vms],
        metadata={"sync_vm_network": sync_vm_network},
    )


def vm_phase_end(f: Frames, vms: list[Vm], *, always_name_failed: bool = False) -> None:
    """The VM phase's summary and end row, one VM failed when the run is degraded (both VM streams).

    The full update leaves ``, 0 failed`` out of its summary; the VM stage's own stream
    always says it (sample-stage-vms-ok.txt).
    """
    n = len(vms)
    failed = 1 if f.settings.degraded and n else 0
    if failed:
        vm = vms[-1]
        f.event(
            "item_progress",
            {
                "event": "item_progress",
                "phase": "virtual-machines",
                "status": "failed",
                "message": f"Failed to sync virtual machine '{vm.name}'",
                "item": {"name": vm.name, "item_type": vm.kind},
                "operation": f.operation,
                "progress": progress(n, n),
                "error": "NetBox rejected the virtual machine payload (400)",
            },
        )
    message = f"Virtual machine sync completed: {n - failed} synchronized"
    if failed or always_name_failed:
        message += f", {failed} failed"
    status = "completed_with_errors" if failed else "completed"
    f.phase_summary("virtual-machines", message, f.tally(n, failed), status=status)
    f.end_of("virtual_machine")


def virtual_disks(f: Frames) -> dict[str, Any]:
    vms = f.inventory.vms
    for vm in vms:
        rowid = f"{vm.name}-disks"
        data = {
            "completed": False,
            "rowid": rowid,
            "name": vm.name,
            "sync_status": "syncing",
            "disks": "undefined",
        }
        f.row(
            "virtual_disk",
            "progress",
            f"Processing virtual_disk {rowid}",
            rowid,
            object="virtual_disk",
            type="sync",
            data=data,
        )
    created, updated = (1, 0) if f.first else (0, 1)
    for vm in vms:
        rowid = f"{vm.name}-disks"
        data = {
            "completed": True,
            "increment_count": "yes" if created else "no",  # "no" when the disk was only updated
            "rowid": rowid,
            "name": vm.name,
            "sync_status": "completed",
            "disks": f"1 disks ({created} created, {updated} updated, 0 deleted)",
        }
        f.row(
            "virtual_disk",
            "completed",
            f"Synced virtual_disk {rowid}",
            rowid,
            object="virtual_disk",
            type="sync",
            data=data,
        )
    f.end_of("virtual_disk")
    return {"count": len(vms)}


def task_history(f: Frames, vms: list[Vm] | None = None) -> dict[str, Any]:
    vms = f.inventory.vms if vms is None else vms
    n = len(vms)
    f.discovery(
        "task-history",
        f"Starting task history sync for {n} VMs",
        [{"name": vm.name, "item_type": "vm"} for vm in vms],
    )
    records = (n + 1) // 2
    f.phase_summary(
        "task-history",
        f"Task history sync completed: {records} records reconciled, 0 skipped, 0 fetch error(s)",
        f.tally(records),
    )
    return {"count": n}


def backups(f: Frames) -> dict[str, Any]:
    b = f.inventory.backups
    f.sync_progress({"step": "backups", "status": "started", "message": "Starting backup synchronization."})
    f.sync_progress(
        {"step": "backups", "status": "discovered", "message": f"Found {b} backups to reconcile.", "count": b}
    )
    f.sync_progress(
        {
            "step": "backups",
            "status": "completed",
            "message": f"Backup sync completed. {b} reconciled, 0 task error(s), 0 deleted.",
            "result": {"reconciled": b, "failed_tasks": 0, "deleted": 0},
        }
    )
    return {"count": b}


def _snapshot_rows(f: Frames) -> None:
    vms = f.inventory.vms
    for vm in vms:
        data = {
            "sync_status": "undefined",
            "name": vm.name,
            "netbox_id": vm.netbox_id,
            "status": "Processing...",
        }
        f.row(
            "snapshot",
            "progress",
            f"Processing snapshot {vm.name}",
            vm.name,
            object="snapshot",
            type="sync",
            data=data,
        )
    for vm in vms:
        data = {
            "completed": True,
            "name": vm.name,
            "netbox_id": vm.netbox_id,
            "snapshots_found": vm.snapshots,
            "sync_status": "completed",
        }
        f.row(
            "snapshot",
            "completed",
            f"Synced snapshot {vm.name}",
            vm.name,
            object="snapshot",
            type="sync",
            data=data,
        )
    for i, vm in enumerate(vms, 1):
        f.event(
            "item_progress",
            {
                "event": "item_progress",
                "phase": "vm-snapshots",
                "status": "completed",
                "message": f"Scanned VM '{vm.name}': {vm.snapshots} snapshot(s) found",
                "item": {"name": vm.name, "item_type": "virtual-machine"},
                "operation": "updated",
                "progress": progress(i, len(vms)),
            },
        )


def snapshots(f: Frames) -> dict[str, Any]:
    vms = f.inventory.vms
    f.sync_progress(
        {"step": "snapshots", "status": "started", "message": "Starting snapshot synchronization."}
    )
    f.discovery(
        "vm-snapshots",
        f"Discovered {len(vms)} VM(s) to scan for snapshots",
        [{"name": vm.name, "item_type": "virtual-machine"} for vm in vms],
    )
    _snapshot_rows(f)
    snaps = sum(vm.snapshots for vm in vms)
    tally = f.tally(snaps)
    f.phase_summary(
        "vm-snapshots",
        f"Snapshot sync completed: {tally['created']} created, {tally['updated']} updated, "
        "0 deleted, 0 skipped",
        tally,
    )
    f.sync_progress(
        {
            "step": "snapshots",
            "status": "completed",
            "message": f"Snapshot synchronization finished. Created/updated: {snaps}",
            "count": snaps,
        }
    )
    return {"count": len(vms)}


def node_interfaces(f: Frames) -> dict[str, Any]:
    count = 0
    for index, node in enumerate(f.inventory.nodes):
        processing = {"completed": False, "sync_status": "syncing", "rowid": node, "name": node}
        f.row(
            "node_interface",
            "progress",
            f"Processing node_interface {node}",
            node,
            object="node_interface",
            data=processing,
        )
        for iface, address in f.inventory.node_addresses(index):
            count += 1
            data = {
                "completed": True,
                "rowid": iface,
                "name": iface,
                "netbox_id": count,
                "device": node,
                "ip_address": address,
            }
            f.row("interface", "completed", f"Synced interface {iface}", iface, object="interface", data=data)
        synced = {"completed": True, "rowid": node, "name": node, "count": 2}
        f.row(
            "node_interface",
            "completed",
            f"Synced node_interface {node}",
            node,
            object="node_interface",
            data=synced,
        )
    f.end_of("node_interface")
    return {"count": count}


def _vm_progress_rows(f: Frames, obj: str) -> None:
    """One "Processing" row per VM interface, as proxbox-api sends for interfaces and IPs."""
    for vm in f.inventory.vms:
        data = {
            "completed": False,
            "sync_status": "syncing",
            "rowid": vm.iface,
            "name": vm.iface,
            "vm": vm.name,
        }
        f.row(obj, "progress", f"Processing {obj} {vm.iface}", vm.iface, object=obj, data=data)


def vm_interfaces(f: Frames) -> dict[str, Any]:
    _vm_progress_rows(f, "vm_interface")
    f.end_of("vm_interface")
    return {"count": len(f.inventory.vms)}


def vm_ip_addresses(f: Frames) -> dict[str, Any]:
    _vm_progress_rows(f, "vm_ip")
    for vm in f.inventory.vms:
        data = {
            "completed": True,
            "rowid": vm.iface,
            "name": vm.iface,
            "vm": vm.name,
            "ip_id": f.inventory.ip_id(vm),
            "address": vm.address,
        }
        f.row("vm_ip", "completed", f"Synced vm_ip {vm.iface}", vm.iface, object="vm_ip", data=data)
    f.end_of("vm_ip")
    return {"count": len(f.inventory.vms)}


def replications(f: Frames) -> dict[str, Any]:
    return {"created": 0, "updated": 0}


def backup_routines(f: Frames) -> dict[str, Any]:
    r = f.inventory.backup_routines
    names = [f"backup-daily-{i}" if i > 1 else "backup-daily" for i in range(1, r + 1)]
    f.discovery(
        "backup-routines",
        f"Discovered {r} backup routine(s) to synchronize",
        [{"name": name, "item_type": "backup-routine"} for name in names],
    )
    tally = f.tally(r)
    f.phase_summary(
        "backup-routines",
        f"Backup routines sync completed: {tally['created']} created, "
        f"{tally['updated']} updated, 0 stale, 0 failed",
        tally,
    )
    return {"created": tally["created"], "updated": tally["updated"]}


BODIES: dict[str, Callable[[Frames], dict[str, Any]]] = {
    "devices": devices,
    "storage": storage,
    "virtual-machines": virtual_machines,
    "virtual-disks": virtual_disks,
    "task-history": task_history,
    "backups": backups,
    "snapshots": snapshots,
    "node-interfaces": node_interfaces,
    "vm-interfaces": vm_interfaces,
    "vm-ip-addresses": vm_ip_addresses,
    "replications": replications,
    "backup-routines": backup_routines,
}
