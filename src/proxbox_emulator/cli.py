"""The emulator's command line: ``proxbox-emulator``, ``python -m proxbox_emulator``, and
``proxbox-scheduler emulate-api`` (which hands its arguments to ``main``).

Serves until SIGTERM/SIGINT, then exits 0; a bad flag value exits 2 with one line
naming the flag, the value and what is accepted; a port that cannot be bound exits 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from proxbox_emulator.server import Emulator
from proxbox_emulator.settings import SettingError, add_arguments, settings_from_args


class _Shutdown(Exception):
    """Raised from the signal handler to unwind the main thread out of its wait."""


def _on_signal(signum: int, frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # a second signal must not interrupt the stop
    raise _Shutdown(signum)


def build_parser(prog: str = "proxbox-emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="A proxbox-api emulator faithful to its wire contract."
    )
    add_arguments(parser)
    return parser


def run_cli(args: argparse.Namespace, prog: str = "emulate-api") -> int:
    """Serve the emulator the parsed flags describe until SIGTERM/SIGINT."""
    try:
        settings = settings_from_args(args)
    except SettingError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(settings)
    try:
        emulator.start()
    except OSError as exc:
        print(f"{prog}: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        required = "yes" if settings.key is not None else "no"
        print(f"proxbox-api emulator listening on {emulator.url} (key required: {required})", flush=True)
        emulator.serve_forever()
    except _Shutdown:
        pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "proxbox-emulator") -> int:
    return run_cli(build_parser(prog).parse_args(argv), prog)
