"""Faults for tests: a Proxmox path answering 404, NetBox failing, slow, stopped; the worker stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.stack import api, netbox, procs, stack
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import Layout


def _running_state(lay: Layout) -> dict[str, Any]:
    state = stack.load_state(lay)
    if state is None or not stack.is_up(lay):
        raise StackError("e2e stack", "not up (run `up` first)")
    return state


def _edit_rule(lay: Layout, **changes: Any) -> None:
    path = stack.fault_file(lay)
    rule = json.loads(path.read_text()) if path.exists() else {}
    rule.update(changes)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(rule))
    partial.rename(path)


def proxmox_404(lay: Layout, path: str) -> None:
    state = _running_state(lay)
    api.seed(lay, Path(state["venvs"]["api"]), "--delete", path)


def netbox_status(lay: Layout, status: int, method: str, path: str, times: int | None) -> None:
    """NetBox (as proxbox-api sees it, through the proxy) answers ``status`` for matching requests."""
    _running_state(lay)
    _edit_rule(lay, status=status, method=method, path=path, times=times)


def netbox_latency(lay: Layout, delay_ms: int) -> None:
    _running_state(lay)
    _edit_rule(lay, delay_ms=delay_ms)


def stop_service(lay: Layout, name: str) -> None:
    """Stop NetBox's web server or its RQ worker; ``clear`` starts it again."""
    state = _running_state(lay)
    procs.stop(lay, name)
    state["stopped"] = sorted({*state.get("stopped", []), name})
    stack.save_state(lay, state)


def clear(lay: Layout) -> None:
    """No NetBox faults, the Proxmox mock re-seeded, stopped services running again."""
    state = _running_state(lay)
    stack.fault_file(lay).unlink(missing_ok=True)
    api.seed(lay, Path(state["venvs"]["api"]))
    venv = Path(state["venvs"]["netbox"])
    if netbox.WEB in state.get("stopped", []):
        netbox.start_web(lay, venv, state["ports"]["netbox"], state["netbox_token"])
    if netbox.WORKER in state.get("stopped", []):
        netbox.start_worker(lay, venv)
    state["stopped"] = []
    stack.save_state(lay, state)
