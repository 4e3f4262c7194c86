"""`proxbox-scheduler healthcheck`: the image's HEALTHCHECK without curl.

Asks the running scheduler's /livez on loopback; with ``max_age`` it is also
unhealthy when the last successful sync is older than that.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime

from proxbox_scheduler.config import name_of, read
from proxbox_scheduler.ops.address import base_url, local_address

TIMEOUT = 3.0


def fetch(request: str | urllib.request.Request, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """(status, body) of one request to the ops server, error statuses included (OSError: unreachable)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def local_url(env: Mapping[str, str], port: int | None = None) -> str:
    """The local scheduler's ops URL, from the same settings it listens on."""
    return base_url(local_address(read("http_host", env)), read("http_port", env) if port is None else port)


def check(env: Mapping[str, str], port: int | None = None, max_age: float | None = None) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    port = read("http_port", env) if port is None else port
    if not port:
        return False, f"the status server is off ({name_of('http_port')}=0)"
    base = local_url(env, port)
    try:
        code, body = fetch(base + "/livez")
        if code != 200:
            return False, f"/livez answered {code}: {body.decode(errors='replace').strip()}"
        if max_age is None:
            return True, "alive"
        code, body = fetch(base + "/status")
    except (OSError, urllib.error.URLError) as exc:
        return False, f"cannot reach {base}/livez: {getattr(exc, 'reason', exc)}"
    try:
        last = json.loads(body).get("last_success")
    except (ValueError, AttributeError):
        return False, f"{base}/status did not answer JSON"
    if not last:
        return False, "no successful sync yet"
    age = (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds()
    if age > max_age:
        return False, f"last successful sync {age:.0f} s ago, more than --max-age {max_age:g} s"
    return True, f"alive, last successful sync {age:.0f} s ago"
