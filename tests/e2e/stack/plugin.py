"""netbox-proxbox configured through NetBox's REST API, the way an operator would.

Three steps beyond the obvious endpoints are needed for the released versions
(README troubleshooting): approving the NetBox and Proxmox endpoints'
connection targets, and pre-creating the cluster (type, site, cluster, plugin
tracking row) because netbox-proxbox 0.0.29.post6 lacks the ``sync-cluster``
action proxbox-api 0.0.30.post2 asks for. The third, seeding six more mock
Proxmox paths, is in seed_proxmox.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import HOST, Layout

SERVICE = "netbox-proxbox (plugin configuration)"
PLUGIN = "/api/plugins/proxbox"
CLUSTER = "pve-lab"


@dataclass(frozen=True)
class NetBoxApi:
    """Minimal JSON client for NetBox's REST API with a v1 token."""

    url: str
    token: str
    lay: Layout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Token {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise StackError(
                SERVICE, f"{method} {path} answered {exc.code}: {detail}", self.lay.log("netbox-gunicorn")
            ) from exc

    def create(self, path: str, body: dict[str, Any]) -> int:
        return int(self.call("POST", path, body)["id"])


def configure(nb: NetBoxApi, api_port: int, api_key: str, netbox_port: int) -> dict[str, int]:
    """Endpoints (NetBox through ``netbox_port``, the fault proxy), approvals, the cluster."""
    ip = nb.create("/api/ipam/ip-addresses/", {"address": f"{HOST}/32", "status": "active"})
    nb.create(
        f"{PLUGIN}/endpoints/fastapi/",
        {
            "name": "proxbox-api",
            "ip_address": ip,
            "port": api_port,
            "use_https": False,
            "verify_ssl": False,
            "enabled": True,
            "token": api_key,
        },
    )
    token_id = nb.call("GET", "/api/users/tokens/?version=1")["results"][0]["id"]
    netbox_ep = nb.create(
        f"{PLUGIN}/endpoints/netbox/",
        {
            "name": "e2e-netbox",
            "ip_address": ip,
            "port": netbox_port,
            "token_version": "v1",
            "token": token_id,
            "verify_ssl": False,
            "enabled": True,
        },
    )
    proxmox_ep = nb.create(
        f"{PLUGIN}/endpoints/proxmox/",
        {
            "name": "mock-pve",
            "ip_address": ip,
            "port": 8006,
            "mode": "undefined",
            "username": "root@pam",
            "password": "mock-password",
            "verify_ssl": False,
            "enabled": True,
        },
    )
    for kind, pk in (("netbox", netbox_ep), ("proxmox", proxmox_ep)):
        approve(nb, kind, pk)
    cluster = precreate_cluster(nb, proxmox_ep)
    return {"netbox_endpoint": netbox_ep, "proxmox_endpoint": proxmox_ep, "cluster": cluster}


def approve(nb: NetBoxApi, kind: str, pk: int) -> None:
    """Step 1: without an approved target the job's preflight fails "approval is missing or stale"."""
    path = f"{PLUGIN}/endpoints/{kind}/{pk}/connection-authority/"
    fingerprint = nb.call("GET", path)["target_fingerprint"]
    answer = nb.call("PUT", path, {"target_fingerprint": fingerprint})
    if not answer.get("approved"):
        raise StackError(SERVICE, f"approving the {kind} endpoint failed: {answer}")


def precreate_cluster(nb: NetBoxApi, proxmox_ep: int) -> int:
    """Step 2: a site-scoped cluster plus the plugin's tracking row, which proxbox-api adopts."""
    cluster_type = nb.create("/api/virtualization/cluster-types/", {"name": "Cluster", "slug": "cluster"})
    site = nb.create(
        "/api/dcim/sites/",
        {
            "name": f"Proxmox Default Site - {CLUSTER}",
            "slug": f"proxmox-default-site-{CLUSTER}",
            "status": "active",
        },
    )
    cluster = nb.create(
        "/api/virtualization/clusters/",
        {
            "name": CLUSTER,
            "type": cluster_type,
            "status": "active",
            "scope_type": "dcim.site",
            "scope_id": site,
        },
    )
    nb.create(
        f"{PLUGIN}/proxmox-clusters/",
        {
            "name": CLUSTER,
            "endpoint": proxmox_ep,
            "netbox_cluster": cluster,
            "mode": "cluster",
        },
    )
    return cluster
