"""`proxbox-scheduler demo`: the scheduler against the built-in proxbox-api emulator.

A newcomer sees runs succeed, now and then one fail and the backoff after
it, with the status page and metrics up, without owning a Proxmox cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from proxbox_emulator import Emulator, EmulatorSettings
from proxbox_scheduler.config import load, name_of
from proxbox_scheduler.ops.address import base_url
from proxbox_scheduler.service import Service
from proxbox_scheduler.telemetry.logs import setup_logging

DEMO_KEY = "demo-key-0123456789abcdef0123456789abcdef"
PREFERRED_PORT = 9750


def _free_port(preferred: int) -> int:
    """The preferred loopback port when it is free, else one the kernel picks."""
    for port in (preferred, 0):
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            probe.bind(("127.0.0.1", port))
            return int(probe.getsockname()[1])
    raise OSError("no free loopback port")


def run_demo(*, interval: float = 6.0, duration: float | None = None, json_logs: bool = False) -> int:
    """Run until Ctrl-C (or ``duration`` seconds); both the emulator and the scheduler stop cleanly."""
    emulator = Emulator(
        EmulatorSettings(key=DEMO_KEY, stage_delay=0.15, fail_every=4, keepalive_interval=1.0)
    )
    emulator.start()
    http_port = _free_port(PREFERRED_PORT)
    settings = {
        "mode": f"interval={interval:g}",
        "api_url": emulator.url,
        "api_key": DEMO_KEY,
        "run_on_start": "true",
        "backoff": f"{interval * 1.5:g}",
        "http_host": "127.0.0.1",
        "http_port": str(http_port),
        "log_json": "true" if json_logs else "false",
    }
    config = load({name_of(attr): value for attr, value in settings.items()})
    setup_logging(config.log_level, config.log_json)
    base = base_url(config.http_host, config.http_port)
    print(
        f"proxbox-scheduler demo: interval={interval:g}s against the proxbox-api emulator at {emulator.url}\n"
        f"  status page  {base}/\n  status JSON  {base}/status\n  metrics      {base}/metrics\n"
        "  every 4th run fails on purpose, to show the backoff. Ctrl-C stops.",
        flush=True,
    )
    service = Service(config)

    async def main() -> None:
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, service.request_stop)
        await service.serve()

    try:
        asyncio.run(main())
    finally:
        emulator.stop()
        logging.getLogger("proxbox_scheduler").info("demo finished")
    return 0
