"""After a scheduler run, the real NetBox holds the synced objects; a second run changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import Stack, run_once

pytestmark = pytest.mark.e2e

# The harness's mock Proxmox: node pve01, QEMU VM web-01 (eth0 192.0.2.21/24), LXC ct-db-01
# (eth0 192.0.2.20/24); the node's interfaces eno1 and vmbr0 (192.0.2.10/24).
EXPECTED_VMS = {"web-01", "ct-db-01"}
# What every run writes even when nothing changed: a journal entry per synced object and the
# plugin's sync-state rows (their timestamps).
BOOKKEEPING = {
    "extras.journalentry",
    "netbox_proxbox.proxboxdevicesyncstate",
    "netbox_proxbox.proxboxvirtualmachinesyncstate",
}


def inventory(stack: Stack) -> dict[str, object]:
    """What NetBox holds, read through its REST API."""
    vms = stack.netbox("/api/virtualization/virtual-machines/", limit="100")["results"]
    devices = stack.netbox("/api/dcim/devices/", limit="100")["results"]
    ips = stack.netbox("/api/ipam/ip-addresses/", limit="100")["results"]
    return {
        "devices": sorted(d["name"] for d in devices),
        "vms": sorted(v["name"] for v in vms),
        "device_interfaces": stack.count("/api/dcim/interfaces/"),
        "vm_interfaces": stack.count("/api/virtualization/interfaces/"),
        "ips": sorted(ip["address"] for ip in ips),
    }


def test_once_writes_the_cluster_into_netbox_and_a_second_run_changes_nothing(stack: Stack) -> None:
    first = run_once(stack)
    assert first.returncode == 0, first.explain()
    after_first = inventory(stack)
    assert after_first["devices"] == ["pve01"], after_first
    assert set(after_first["vms"]) == EXPECTED_VMS, after_first
    assert after_first["device_interfaces"] >= 2, after_first  # eno1, vmbr0
    assert after_first["vm_interfaces"] >= 2, after_first  # one eth0 per guest
    for address in ("192.0.2.20/24", "192.0.2.21/24"):
        assert address in after_first["ips"], after_first

    since = datetime.now(UTC).isoformat()
    second = run_once(stack)
    assert second.returncode == 0, second.explain()
    assert inventory(stack) == after_first
    changes = stack.netbox("/api/core/object-changes/", time_after=since, limit="500")
    changed = sorted({c["changed_object_type"] for c in changes["results"]})
    print(f"object changes during the second run: {changes['count']} ({changed})")
    assert set(changed) <= BOOKKEEPING, changed
