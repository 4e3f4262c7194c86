"""proxbox-api on proxmox-sdk's mock Proxmox, with a fresh database and a registered key."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.stack import procs
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import HOST, Layout

SERVICE = "proxbox-api"
SEEDER = Path(__file__).resolve().parent / "seed_proxmox.py"
READY_TIMEOUT = 240.0


def seed(lay: Layout, venv: Path, *extra: str) -> None:
    """Re-seed the mock Proxmox (or, with ``--delete PATH``, make one path answer 404)."""
    argv = [str(venv / "bin" / "python"), str(SEEDER), str(lay.mock_state), *extra]
    procs.run_logged(argv, lay.log("proxmox-seed"), "mock Proxmox (seed)")


def _env(lay: Layout) -> dict[str, str]:
    state = lay.api_state
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()  # a Fernet key
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBOX_", "PROXMOX_"))}
    env.update(
        PROXMOX_API_MODE="mock",
        PROXMOX_MOCK_STATE_PATH=str(lay.mock_state),
        PROXBOX_DATABASE_PATH=str(state / "proxbox.db"),
        PROXBOX_ENCRYPTION_KEY=key,
        PROXBOX_GENERATED_DIR=str(state / "generated"),
        XDG_CONFIG_HOME=str(state / "xdg-config"),
        XDG_DATA_HOME=str(state / "xdg-data"),
    )
    return env


def spawn(lay: Layout, venv: Path, port: int) -> None:
    """Start it on a fresh state directory; readiness is awaited later (start-up takes ~25 s)."""
    shutil.rmtree(lay.api_state, ignore_errors=True)
    lay.api_state.mkdir(parents=True)
    seed(lay, venv)
    argv = [
        str(venv / "bin" / "python"),
        "-m",
        "uvicorn",
        "proxbox_api.main:app",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    procs.spawn(lay, SERVICE, argv, _env(lay), lay.api_state, marker="proxbox_api.main:app")


def wait_ready(lay: Layout, port: int) -> None:
    url = f"http://{HOST}:{port}/"
    procs.wait_ready(lay, SERVICE, lambda: procs.http_status(url) == 200, READY_TIMEOUT)


def call(port: int, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    """One JSON request to proxbox-api with the key header."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=data,
        method=method,
        headers={"X-Proxbox-API-Key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def register_key(lay: Layout, port: int, key: str) -> None:
    status, body = call(port, "POST", "/auth/register-key", key, {"api_key": key})
    if status != 201:
        raise StackError(SERVICE, f"POST /auth/register-key answered {status}: {body}", lay.log(SERVICE))
