"""Bring the whole stack up and down, report it, and inject faults into it."""

from __future__ import annotations

import json
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.e2e.stack import api, netbox, plugin, postgres, procs
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import HOST, Layout
from tests.e2e.stack.venvs import ensure_venv

PROXY = "netbox-proxy"
PROXY_SCRIPT = Path(__file__).resolve().parent / "proxy.py"
# stop order: clients first, the database last
SERVICES = (api.SERVICE, PROXY, netbox.WORKER, netbox.WEB, netbox.REDIS, postgres.SERVICE)


def say(message: str, started: float) -> None:
    print(f"[e2e stack +{time.monotonic() - started:.1f}s] {message}", file=sys.stderr, flush=True)


def load_state(lay: Layout) -> dict[str, Any] | None:
    try:
        return json.loads(lay.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def save_state(lay: Layout, state: dict[str, Any]) -> None:
    partial = lay.state_file.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.rename(lay.state_file)


def env_lines(lay: Layout, state: dict[str, Any]) -> list[str]:
    ports = state["ports"]
    return [
        f"PROXBOX_API_URL=http://{HOST}:{ports['api']}",
        f"PROXBOX_API_KEY={state['api_key']}",
        f"NETBOX_URL=http://{HOST}:{ports['netbox']}",
        f"NETBOX_TOKEN={state['netbox_token']}",
        f"NETBOX_CMD={netbox.command(lay, Path(state['venvs']['netbox']))}",
        f"STACK_DIR={lay.stack}",
    ]


def is_up(lay: Layout) -> bool:
    """Every service we started still runs (those a fault stopped excepted)."""
    state = load_state(lay)
    if state is None:
        return False
    stopped = set(state.get("stopped", []))
    return all(procs.alive(lay, name) is not None for name in SERVICES if name not in stopped)


def up(lay: Layout) -> list[str]:
    """Idempotent: the running stack's lines, or a fresh stack (DB restored from the template)."""
    if is_up(lay):
        return env_lines(lay, load_state(lay) or {})
    down(lay)
    started = time.monotonic()
    lay.logs.mkdir(parents=True, exist_ok=True)
    for old in lay.logs.glob("*.log"):
        if not old.name.startswith("pip-"):
            old.unlink()
    with ThreadPoolExecutor(2) as pool:
        nb_venv, api_venv = pool.map(lambda name: ensure_venv(lay, name), ("netbox", "api"))
    say(f"venvs ready ({nb_venv.name}, {api_venv.name})", started)
    state = _start_all(lay, nb_venv, api_venv, started)
    save_state(lay, state)
    say("stack up", started)
    return env_lines(lay, state)


def _start_all(lay: Layout, nb_venv: Path, api_venv: Path, started: float) -> dict[str, Any]:
    ports = {name: procs.free_port() for name in ("pg", "redis", "netbox", "proxy", "api")}
    state: dict[str, Any] = {
        "ports": ports,
        "api_key": secrets.token_hex(32),
        "netbox_token": secrets.token_hex(20),
        "venvs": {"netbox": str(nb_venv), "api": str(api_venv)},
        "stopped": [],
    }
    lay.run.mkdir(parents=True, exist_ok=True)
    api.spawn(lay, api_venv, ports["api"])  # its ~25 s start-up overlaps NetBox's
    postgres.start(lay, ports["pg"])
    netbox.start_redis(lay, ports["redis"])
    netbox.write_config(lay, ports["pg"], ports["redis"])
    say(f"postgres and redis up; NetBox database {netbox.prepare_db(lay, nb_venv, ports['pg'])}", started)
    netbox.bootstrap_users(lay, nb_venv, state["netbox_token"])
    netbox.start_web_and_worker(lay, nb_venv, ports["netbox"], state["netbox_token"])
    start_proxy(lay, ports)
    say("NetBox (gunicorn, rqworker, proxy) up", started)
    api.wait_ready(lay, ports["api"])
    api.register_key(lay, ports["api"], state["api_key"])
    nb = plugin.NetBoxApi(f"http://{HOST}:{ports['netbox']}", state["netbox_token"], lay)
    state["plugin"] = plugin.configure(nb, ports["api"], state["api_key"], ports["proxy"])
    check_pushed(lay, state)
    return state


def start_proxy(lay: Layout, ports: dict[str, int]) -> None:
    argv = [
        sys.executable,
        str(PROXY_SCRIPT),
        str(ports["proxy"]),
        str(ports["netbox"]),
        str(fault_file(lay)),
    ]
    procs.spawn(lay, PROXY, argv, {"PATH": "/usr/bin:/bin"}, lay.run, marker=str(PROXY_SCRIPT))
    url = f"http://{HOST}:{ports['proxy']}/api/status/"
    procs.wait_ready(lay, PROXY, lambda: procs.http_status(url) in (200, 403), timeout=30)


def check_pushed(lay: Layout, state: dict[str, Any]) -> None:
    """Approval makes the plugin push its endpoints to proxbox-api; a stack without them is broken."""
    port, key = state["ports"]["api"], state["api_key"]
    status, body = api.call(port, "GET", "/netbox/endpoint", key)
    if status != 200 or not body:
        raise StackError(
            api.SERVICE,
            f"the plugin did not push its NetBox endpoint ({status}: {body})",
            lay.log(api.SERVICE),
        )


def fault_file(lay: Layout) -> Path:
    return lay.run / "netbox-faults.json"


def down(lay: Layout) -> list[str]:
    """Stop, by pid, only what this harness started; the names of what was stopped."""
    stopped = [name for name in SERVICES[:-1] if procs.stop(lay, name)]
    stopped += [postgres.SERVICE] if postgres.stop(lay) else []
    lay.state_file.unlink(missing_ok=True)
    fault_file(lay).unlink(missing_ok=True)
    return stopped
