"""The synthetic Proxmox cluster a run reports, and the ``complete`` result built from it.

One Inventory per emulator, made from its settings and shared read-only by every
run: the stage frames and the final result then always describe the same nodes,
storages and VMs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from proxbox_emulator.settings import EmulatorSettings

PAD_PLACEHOLDER = "\x00journal_entries\x00"  # cannot occur in real data
_PAD_RECORD_COMMENT = 800  # filler characters per padding record
_NODE_IFACES = ("eno1", "vmbr0")
_ACTIVE = {"value": "active", "label": "Active"}


@dataclass(frozen=True)
class Vm:
    """One VM (qemu) or container (lxc) and the NetBox ids it is synced to."""

    netbox_id: int
    node_id: int
    vmid: int
    name: str
    kind: str  # "qemu" or "lxc"
    node: str
    iface: str
    address: str

    @property
    def snapshots(self) -> int:
        """Containers have none in the captures; each VM has one."""
        return 1 if self.kind == "qemu" else 0


def _make_vm(index: int, nodes: list[str]) -> Vm:
    vmid = 100 + index
    kind = "qemu" if index % 2 == 0 else "lxc"
    node = index % len(nodes)
    return Vm(
        netbox_id=index + 1,
        node_id=node + 1,
        vmid=vmid,
        name=f"vm-{vmid}" if kind == "qemu" else f"ct-{vmid}",
        kind=kind,
        node=nodes[node],
        iface="net0" if kind == "qemu" else "eth0",
        address=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}/24",
    )


class Inventory:
    """Nodes, storages and VMs of the emulated cluster, plus the prebuilt result padding."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.netbox_url = settings.netbox_url
        self.nodes = [f"pve{i:02d}" for i in range(1, settings.devices + 1)]
        self.storage_names = ["local", "local-lvm", *(f"pool{i}" for i in range(3, settings.storage + 1))][
            : settings.storage
        ]
        self.vms = [_make_vm(i, self.nodes) for i in range(settings.virtual_machines)]
        self.backups = settings.backups
        self.backup_routines = settings.backup_routines
        self.padding = self._build_padding()

    def ref(self, path: str, ident: int, display: str, **extra: Any) -> dict[str, Any]:
        """A NetBox object reference as the API nests it."""
        nb = self.netbox_url
        return {
            "id": ident,
            "url": f"{nb}/api/{path}/{ident}/",
            "display_url": f"{nb}/{path}/{ident}/",
            "display": display,
            **extra,
        }

    # -- the complete event's result ---------------------------------------------------

    def result(
        self, *, first: bool, padding_placeholder: str | None = None, empty: bool = False
    ) -> dict[str, Any]:
        """The success ``result``: NetBox records per stage, summaries, then 12 counts.

        ``padding_placeholder`` reserves the ``journal_entries`` slot that the
        prebuilt padding is spliced into, so the big part is never re-serialised.
        """
        result = {**self._records(), **self._summaries(first)}
        if padding_placeholder is not None:
            result["journal_entries"] = padding_placeholder
        result.update({key: 0 for key in self._counts()} if empty else self._counts())
        if self.settings.degraded:
            n = len(self.vms)
            result["warnings"] = [
                f"virtual-machines: {1 if n else 0} of {n} virtual machine(s) failed to sync"
            ]
            result["degraded"] = True
        return result

    def _site_and_cluster(self) -> tuple[dict[str, Any], dict[str, Any]]:
        site = self.ref(
            "dcim/sites",
            1,
            "Proxmox Default Site - pve-lab",
            name="Proxmox Default Site - pve-lab",
            slug="proxmox-default-site-pve-lab",
        )
        return site, self.ref("virtualization/clusters", 1, "pve-lab", name="pve-lab")

    def _device_records(self) -> list[dict[str, Any]]:
        site, cluster = self._site_and_cluster()
        device_type = self.ref(
            "dcim/device-types", 1, "Proxmox Generic Device", slug="proxmox-generic-device"
        )
        role = self.ref("dcim/device-roles", 1, "Proxmox Node", slug="proxmox-node")
        return [
            self.ref(
                "dcim/devices",
                i,
                node,
                name=node,
                device_type=device_type,
                role=role,
                site=site,
                cluster=cluster,
                status=_ACTIVE,
                description=f"Proxmox Node {node}",
                tags=[],
            )
            for i, node in enumerate(self.nodes, 1)
        ]

    def _vm_records(self) -> list[dict[str, Any]]:
        site, cluster = self._site_and_cluster()
        return [
            self.ref(
                "virtualization/virtual-machines",
                vm.netbox_id,
                vm.name,
                name=vm.name,
                status=_ACTIVE,
                site=site,
                cluster=cluster,
                device=self.ref("dcim/devices", vm.node_id, vm.node, name=vm.node),
                vcpus=2.0,
                memory=2048,
                disk=32768,
                custom_fields={"proxmox_vm_id": vm.vmid, "proxmox_vm_type": vm.kind},
            )
            for vm in self.vms
        ]

    def _backup_records(self) -> list[dict[str, Any]]:
        vms = self.vms
        return [
            {
                "storage": "local",
                "virtual_machine": vms[i % len(vms)].netbox_id if vms else None,
                "subtype": "qemu",
                "size": 2147483648,
                "volume_id": f"local:backup/vzdump-qemu-{100 + i}-2026_01_01-02_00_00.vma.zst",
                "format": "tzst",
                **self.ref("plugins/proxbox/backups", i + 1, f"Object {i + 1}"),
            }
            for i in range(self.backups)
        ]

    def _records(self) -> dict[str, Any]:
        """The per-object records, in the capture's key order."""
        _, cluster = self._site_and_cluster()
        return {
            "devices": self._device_records(),
            "storage": [
                self.ref("plugins/proxbox/storage", i, name, name=name, cluster=cluster, enabled=True)
                for i, name in enumerate(self.storage_names, 1)
            ],
            "virtual_machines": self._vm_records(),
        }

    def stage_summary(self, stage: str, first: bool) -> dict[str, Any] | None:
        """The complete event's figures for one stage, or None where it lists records instead.

        A stage's own stream ends with these figures (sample-stage-virtual-disks-ok.txt ...).
        """
        summary = self._summaries(first).get(stage.replace("-", "_"))
        return summary if isinstance(summary, dict) else None

    def _summaries(self, first: bool) -> dict[str, Any]:
        n = len(self.vms)
        created, updated = (1, 0) if first else (0, 1)
        snaps = sum(vm.snapshots for vm in self.vms)
        return {
            "virtual_disks": {"count": n, "created": n * created, "updated": n * updated, "skipped": 0},
            "task_history": {"count": n, "created": (n + 1) // 2, "skipped": 0},
            "backups": self._backup_records(),
            "snapshots": {
                "count": n,
                "created": snaps * created,
                "updated": snaps * updated,
                "skipped": 0,
                "deleted": 0,
            },
            "node_interfaces": self.node_interfaces(),
            "vm_interfaces": [
                {
                    "id": vm.netbox_id,
                    "mac_address": None,
                    "interface": self.ref("virtualization/interfaces", vm.netbox_id, vm.iface),
                    "name": vm.iface,
                    "enabled": True,
                }
                for vm in self.vms
            ],
            "vm_ip_addresses": [{"ip_id": self.ip_id(vm), "address": vm.address} for vm in self.vms],
            "replications": {"created": 0, "updated": 0, "stale": 0, "errors": 0},
            "backup_routines": {
                "created": self.backup_routines * created,
                "updated": self.backup_routines * updated,
                "stale": 0,
                "errors": 0,
            },
        }

    def _counts(self) -> dict[str, int]:
        n = len(self.vms)
        return {
            "devices_count": len(self.nodes),
            "storage_count": len(self.storage_names),
            "virtual_machines_count": n,
            "virtual_disks_count": n,
            "task_history_count": n,
            "backups_count": self.backups,
            "snapshots_count": n,
            "node_interfaces_count": len(self.nodes) * len(_NODE_IFACES),
            "vm_interfaces_count": n,
            "vm_ip_addresses_count": n,
            "replications_count": 0,
            "backup_routines_count": self.backup_routines,
        }

    def node_interfaces(self) -> list[dict[str, Any]]:
        """Two interfaces per node, numbered across the cluster."""
        return [
            {"id": len(_NODE_IFACES) * i + j + 1, "name": name}
            for i in range(len(self.nodes))
            for j, name in enumerate(_NODE_IFACES)
        ]

    def node_addresses(self, index: int) -> tuple[tuple[str, str | None], ...]:
        """(interface, address) of node ``index``: the bridge carries the address."""
        return ((_NODE_IFACES[0], None), (_NODE_IFACES[1], f"192.0.2.{index % 250 + 1}/24"))

    def ip_id(self, vm: Vm) -> int:
        """NetBox id of a VM's address: the nodes' addresses come first."""
        return vm.netbox_id + len(self.nodes)

    def _build_padding(self) -> bytes:
        """JSON list of journal-entry records sized so the complete line is ~result_bytes.

        Built once: it is the same for every run, and a multi-MiB line should cost
        the benchmark its transfer and parsing, not the emulator's formatting.
        """
        target = self.settings.result_bytes
        if not target:
            return b""
        base_line = json.dumps(
            {
                "ok": True,
                "message": "Full update sync completed.",
                "result": self.result(first=True, padding_placeholder=PAD_PLACEHOLDER),
            }
        )
        budget = target - (len(base_line) - len(json.dumps(PAD_PLACEHOLDER)))
        if budget < 64:
            return b""
        return journal_padding(budget, self.netbox_url, len(self.vms)).encode()


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
