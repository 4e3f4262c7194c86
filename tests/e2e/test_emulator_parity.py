"""The emulator against the real thing: the same scenario gives the same event sequence.

Both streams are read raw from GET /full-update/stream (or the VM stage's own
stream): the real proxbox-api on the stack, and `proxbox-scheduler emulate-api`
(its CLI, so the test does not depend on the emulator's module path). Compared: the set of event names, the
order in which stages start, and the terminal event's name and payload keys.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import STAGES, Stream, capture_stream

pytestmark = pytest.mark.e2e

Emulator = Callable[..., tuple[str, str]]
FAIL_STAGE = "node-interfaces"  # where a 404 on /nodes/pve01/network fails the real run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Start `proxbox-scheduler emulate-api ARGS...`; returns (url, key). Stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[str, str]:
        port, key = _free_port(), secrets.token_hex(32)
        argv = [sys.executable, "-m", "proxbox_scheduler", "emulate-api", "--port", str(port), "--key", key]
        proc = subprocess.Popen([*argv, "--quiet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(proc)
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not listen within 20 s"
            time.sleep(0.1)
        return f"http://127.0.0.1:{port}", key

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def assert_same_shape(real: Stream, emulated: Stream) -> None:
    assert emulated.names == real.names, (sorted(real.names), sorted(emulated.names))
    assert emulated.started_stages == real.started_stages
    assert emulated.terminal == real.terminal


def test_a_successful_run_matches_the_emulator(stack: Stack, emulator: Emulator) -> None:
    real = capture_stream(stack.api_url, stack.api_key)
    assert real.started_stages == list(STAGES), real.started_stages
    url, key = emulator()
    assert_same_shape(real, capture_stream(url, key))


def test_a_failed_run_matches_the_emulator(stack: Stack, emulator: Emulator) -> None:
    with stack.faulted("proxmox-404", "/nodes/pve01/network"):
        real = capture_stream(stack.api_url, stack.api_key)
    assert real.started_stages[-1] == FAIL_STAGE, real.started_stages
    url, key = emulator("--fail-every", "1", "--fail-stage", FAIL_STAGE)
    emulated = capture_stream(url, key)
    assert_same_shape(real, emulated)
    assert emulated.keys_of("error") == real.keys_of("error")


VM_STAGE = "/virtualization/virtual-machines/create/stream"


@pytest.mark.parametrize(("endpoint_ids", "count"), [("1", 2), ("99", 0)])
def test_the_vm_stage_stream_matches_the_emulator(
    stack: Stack, emulator: Emulator, endpoint_ids: str, count: int
) -> None:
    """The VM stage alone, on the stack's one endpoint (1 VM + 1 container) and on an unknown id."""
    params = {"endpoint_ids": endpoint_ids}
    real = capture_stream(stack.api_url, stack.api_key, path=VM_STAGE, params=params)
    assert real.started_stages == ["virtual-machines"], real.started_stages
    assert real.events[-1] == ("complete", {"ok": True, "message": "Virtual machines sync completed.",
                                            "result": {"count": count}})  # fmt: skip
    url, key = emulator()
    emulated = capture_stream(url, key, path=VM_STAGE, params=params)
    assert_same_shape(real, emulated)
    assert emulated.events[-1] == real.events[-1]
