"""The signals that stop the scheduler, and the handler that holds them until the service runs.

Imported by the entry point before anything heavy (it needs only ``signal``), so
a stop that arrives while the program starts is remembered instead of killing it.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
"""SIGHUP (a closed terminal) and SIGUSR1/2 stop like SIGTERM rather than kill silently."""


class EarlyStop:
    """Stand-in handler until the service installs its own; the service reads ``pending``."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.pending.append(signum)
