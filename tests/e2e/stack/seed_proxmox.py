"""Seed proxmox-sdk's mock Proxmox (run with proxbox-api's venv): one node, one VM, one container.

The mock answers a stored value for an exact path and a random schema sample
otherwise; random samples break the plugin's own writes, so every path the
sync reads is stored, including the firewall and CPU-model paths (step 3 of the
README's troubleshooting). ``--delete PATH`` removes one path: the mock then
answers 404 for it (the harness's Proxmox fault).

Usage: python seed_proxmox.py STATE_FILE [--delete /nodes/pve01/network]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from proxmox_sdk.mock.schema_helpers import schema_fingerprint
from proxmox_sdk.mock.state import SQLiteMockStore
from proxmox_sdk.schema import DEFAULT_PROXMOX_OPENAPI_TAG, load_proxmox_generated_openapi

NODE, CLUSTER, VM, CT = "pve01", "pve-lab", 100, 200
GIB = 1024**3
PREFIX = "/api2/json"


def _guests() -> list[dict[str, object]]:
    common = {
        "node": NODE,
        "status": "running",
        "template": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    }
    return [
        {
            **common,
            "id": f"qemu/{VM}",
            "type": "qemu",
            "vmid": VM,
            "name": "web-01",
            "cpu": 0.02,
            "maxcpu": 2,
            "mem": GIB,
            "maxmem": 4 * GIB,
            "disk": 0,
            "maxdisk": 32 * GIB,
            "uptime": 3600,
        },
        {
            **common,
            "id": f"lxc/{CT}",
            "type": "lxc",
            "vmid": CT,
            "name": "ct-db-01",
            "cpu": 0.01,
            "maxcpu": 1,
            "mem": GIB // 4,
            "maxmem": GIB,
            "disk": GIB,
            "maxdisk": 8 * GIB,
            "uptime": 7200,
        },
    ]


def _storages() -> dict[str, dict[str, object]]:
    digest = "0" * 40
    return {
        "local": {
            "storage": "local",
            "type": "dir",
            "content": "iso,vztmpl,backup",
            "path": "/var/lib/vz",
            "shared": 0,
            "digest": digest,
        },
        "local-lvm": {
            "storage": "local-lvm",
            "type": "lvmthin",
            "content": "images,rootdir",
            "thinpool": "data",
            "vgname": "pve",
            "shared": 0,
            "digest": digest,
        },
    }


def _node() -> dict[str, object]:
    return {
        "node": NODE,
        "status": "online",
        "type": "node",
        "id": f"node/{NODE}",
        "cpu": 0.05,
        "maxcpu": 8,
        "mem": 4 * GIB,
        "maxmem": 32 * GIB,
        "disk": 10 * GIB,
        "maxdisk": 100 * GIB,
        "uptime": 864000,
        "level": "",
        "ssl_fingerprint": ":".join(["AB"] * 32),
    }


def _cluster_paths() -> dict[str, object]:
    storage_resources = [
        {
            "id": f"storage/{NODE}/{name}",
            "type": "storage",
            "storage": name,
            "node": NODE,
            "status": "available",
            "content": s["content"],
            "plugintype": s["type"],
            "shared": 0,
            "disk": 5 * GIB,
            "maxdisk": 50 * GIB,
        }
        for name, s in _storages().items()
    ]
    return {
        "/version": {"version": "8.3.2", "release": "8.3", "repoid": "0123abcd"},
        "/cluster/status": [
            {"type": "cluster", "id": "cluster", "name": CLUSTER, "nodes": 1, "quorate": 1, "version": 1},
            {
                "type": "node",
                "id": f"node/{NODE}",
                "name": NODE,
                "ip": "127.0.0.1",
                "local": 1,
                "nodeid": 1,
                "online": 1,
                "level": "",
            },
        ],
        "/cluster/resources": [{**_node(), "cgroup-mode": 2}, *_guests(), *storage_resources],
        "/nodes": [_node()],
        "/storage": list(_storages().values()),
        **{f"/storage/{name}": s for name, s in _storages().items()},
        "/cluster/replication": [],
        "/cluster/backup": [
            {
                "id": "backup-daily",
                "type": "vzdump",
                "schedule": "02:00",
                "storage": "local",
                "vmid": f"{VM},{CT}",
                "mode": "snapshot",
                "enabled": 1,
                "compress": "zstd",
            },
        ],
        "/cluster/firewall/rules": [],
        "/cluster/firewall/groups": [],
        "/cluster/firewall/ipset": [],
        "/cluster/firewall/aliases": [],
        "/cluster/firewall/options": {"enable": 0},
        "/cluster/qemu/custom-cpu-models": [],
    }


def _node_paths(now: int) -> dict[str, object]:
    base = f"/nodes/{NODE}"
    return {
        f"{base}/network": [
            {
                "iface": "eno1",
                "type": "eth",
                "active": 1,
                "autostart": 1,
                "method": "manual",
                "method6": "manual",
                "families": ["inet"],
                "priority": 3,
                "exists": 1,
            },
            {
                "iface": "vmbr0",
                "type": "bridge",
                "active": 1,
                "autostart": 1,
                "method": "static",
                "method6": "manual",
                "address": "192.0.2.10",
                "netmask": "24",
                "cidr": "192.0.2.10/24",
                "gateway": "192.0.2.1",
                "bridge_ports": "eno1",
                "bridge_stp": "off",
                "bridge_fd": "0",
                "families": ["inet"],
                "priority": 4,
            },
        ],
        f"{base}/storage/local/content": [
            {
                "volid": f"local:backup/vzdump-qemu-{VM}-2026_01_01-02_00_00.vma.zst",
                "content": "backup",
                "format": "vma.zst",
                "size": 2 * GIB,
                "ctime": now - 3600,
                "vmid": VM,
                "subtype": "qemu",
            },
        ],
        f"{base}/storage/local-lvm/content": [
            {
                "volid": f"local-lvm:vm-{VM}-disk-0",
                "content": "images",
                "format": "raw",
                "size": 32 * GIB,
                "vmid": VM,
                "ctime": now - 86400,
            },
            {
                "volid": f"local-lvm:vm-{CT}-disk-0",
                "content": "rootdir",
                "format": "raw",
                "size": 8 * GIB,
                "vmid": CT,
                "ctime": now - 86400,
            },
        ],
        f"{base}/tasks": [
            {
                "upid": f"UPID:{NODE}:00001234:00005678:{now - 7200:08X}:vzdump:{VM}:root@pam:",
                "node": NODE,
                "pid": 4660,
                "pstart": 22136,
                "starttime": now - 7200,
                "endtime": now - 7100,
                "type": "vzdump",
                "id": str(VM),
                "user": "root@pam",
                "status": "OK",
            },
        ],
    }


def _vm_paths(now: int) -> dict[str, object]:
    qemu, lxc = f"/nodes/{NODE}/qemu/{VM}", f"/nodes/{NODE}/lxc/{CT}"
    uuid = f"00000000-0000-4000-8000-000000000{VM}"
    return {
        f"{qemu}/config": {
            "name": "web-01",
            "memory": "4096",
            "cores": 2,
            "sockets": 1,
            "ostype": "l26",
            "scsihw": "virtio-scsi-pci",
            "scsi0": f"local-lvm:vm-{VM}-disk-0,size=32G",
            "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0",
            "boot": "order=scsi0;net0",
            "agent": "1",
            "onboot": 1,
            "digest": "1" * 40,
            "vmgenid": uuid,
            "smbios1": f"uuid={uuid}",
        },
        f"{lxc}/config": {
            "hostname": "ct-db-01",
            "memory": 1024,
            "swap": 512,
            "cores": 1,
            "ostype": "debian",
            "arch": "amd64",
            "rootfs": f"local-lvm:vm-{CT}-disk-0,size=8G",
            "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:02:00,ip=192.0.2.20/24,gw=192.0.2.1,type=veth",
            "onboot": 1,
            "unprivileged": 1,
            "digest": "2" * 40,
        },
        f"{qemu}/status/current": {
            "vmid": VM,
            "name": "web-01",
            "status": "running",
            "qmpstatus": "running",
            "uptime": 3600,
            "cpus": 2,
            "maxmem": 4 * GIB,
            "mem": GIB,
            "maxdisk": 32 * GIB,
            "agent": 1,
        },
        f"{lxc}/status/current": {
            "vmid": CT,
            "name": "ct-db-01",
            "status": "running",
            "uptime": 7200,
            "cpus": 1,
            "maxmem": GIB,
            "mem": GIB // 4,
            "maxdisk": 8 * GIB,
            "type": "lxc",
        },
        f"{qemu}/agent/network-get-interfaces": {
            "result": [
                {
                    "name": "eth0",
                    "hardware-address": "bc:24:11:00:01:00",
                    "ip-addresses": [{"ip-address": "192.0.2.21", "ip-address-type": "ipv4", "prefix": 24}],
                },
            ]
        },
        f"{lxc}/interfaces": [{"name": "eth0", "hwaddr": "bc:24:11:00:02:00", "inet": "192.0.2.20/24"}],
        f"{qemu}/snapshot": [
            {"name": "before-upgrade", "description": "seeded", "snaptime": now - 86400, "vmstate": 0},
            {"name": "current", "description": "You are here!", "parent": "before-upgrade", "running": 1},
        ],
        f"{lxc}/snapshot": [{"name": "current", "description": "You are here!"}],
    }


def seed() -> dict[str, object]:
    now = int(time.time())
    return {**_cluster_paths(), **_node_paths(now), **_vm_paths(now)}


def main(argv: list[str]) -> int:
    state = Path(argv[0])
    store = SQLiteMockStore(owner_pid=os.getpid(), namespace="default", path=state)
    try:
        if argv[1:2] == ["--delete"]:
            store.delete_object(PREFIX + "/" + argv[2].removeprefix(PREFIX).lstrip("/"))
            return 0
        doc = load_proxmox_generated_openapi(version_tag=DEFAULT_PROXMOX_OPENAPI_TAG)
        store.touch_schema(schema_fingerprint(doc))
        store.reset()
        for path, value in seed().items():
            store.set_object(PREFIX + path, value)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
