"""The scheduler on proxbox-api's per-stage VM stream, against the real stack.

`proxbox-scheduler once` with the job's path and query parameters
(``PROXBOX_SYNC_PATH``/``PROXBOX_SYNC_PARAMS``, what a job file's ``path``/``params``
set for a job) runs ``/virtualization/virtual-machines/create/stream`` narrowed to
the stack's one Proxmox endpoint (id 1: one VM and one container). Faults are
cleared in a ``finally`` (``Stack.faulted``).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import OnceResult, Stack, run_once
from tests.e2e.helpers import is_event

pytestmark = pytest.mark.e2e

VM_STAGE = "/virtualization/virtual-machines/create/stream"


def once_on_the_vm_stage(stack: Stack, params: str) -> OnceResult:
    return run_once(stack, PROXBOX_SYNC_PATH=VM_STAGE, PROXBOX_SYNC_PARAMS=params)


def test_the_vm_stage_on_one_endpoint_succeeds_and_reports_its_vms(stack: Stack) -> None:
    since = stack.log_offset()
    result = once_on_the_vm_stage(stack, "endpoint_ids=1")
    assert result.returncode == 0, result.explain()
    (finished,) = result.events("run finished")
    assert finished["outcome"] == "success", result.explain()
    assert finished["reason"] == "Virtual machines sync completed."
    run = [r for r in result.records if r.get("run_id") == finished["run_id"]]
    (summary,) = [r for r in run if "counts" in r]
    assert summary["counts"] == {"virtual_machines": 2} and summary["degraded"] is False, summary
    stages = [(r["stage"], r["index"], r["total"]) for r in run if "stage" in r]
    assert stages == [("virtual-machines", 1, 1)] * 2, result.explain()  # started, completed: 1 of 1
    completed = next(r for r in run if is_event("stage virtual-machines completed (1/1): count=2")(r))
    assert completed["count"] == 2
    requests = [line for line in stack.access_lines(since) if f"GET {VM_STAGE}" in line]
    assert len(requests) == 1 and f'GET {VM_STAGE}?endpoint_ids=1 HTTP/1.1" 200' in requests[0], requests


def test_the_vm_stage_on_an_unknown_endpoint_succeeds_with_no_vms(stack: Stack) -> None:
    """proxbox-api treats an id it does not know as an empty selection, not as an error."""
    result = once_on_the_vm_stage(stack, "endpoint_ids=99")
    assert result.returncode == 0, result.explain()
    (summary,) = [r for r in result.records if "counts" in r]
    assert summary["counts"] == {"virtual_machines": 0}, result.explain()


def test_the_vm_stage_fails_with_proxbox_api_words_when_netbox_fails(stack: Stack) -> None:
    with stack.faulted("netbox-5xx", "--status", "500"):
        result = once_on_the_vm_stage(stack, "endpoint_ids=1")
    assert result.returncode == 1, result.explain()
    (finished,) = result.events("run finished")
    assert finished["outcome"] == "failure", result.explain()
    assert finished["reason"] == (
        "Error creating Virtual Machine dependent objects (cluster, device, tag and role) | "
        "e2e fault: NetBox answers 500; last stage: virtual-machines"
    ), finished


def test_a_bad_endpoint_ids_fails_before_the_stream_with_the_api_message(stack: Stack) -> None:
    result = once_on_the_vm_stage(stack, "endpoint_ids=abc")
    assert result.returncode == 1, result.explain()
    (finished,) = result.events("run finished")
    assert finished["reason"] == (
        "HTTP 400 from proxbox-api: Invalid Proxmox endpoint_ids query parameter: "
        "endpoint_ids must be a comma-separated list of integers."
    ), finished
