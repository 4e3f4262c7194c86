"""`python -m proxbox_scheduler` is the same as the console script (both enter at ``main``).

The stop signals are caught here, before the first heavy import: a SIGTERM
in the ~100 ms the imports and the configuration take is remembered and
honoured as soon as the service runs (exit 0), instead of killing the
process with 143.
"""

import signal
import sys

from proxbox_scheduler.signals import STOP_SIGNALS, EarlyStop

LONG_RUNNING = ("run", "once")

COMMANDS = frozenset({"run", "once", "check", "healthcheck", "ctl", "emulate-api", "demo"})
"""Every subcommand of the CLI (a test keeps them equal): ``ctl run JOB`` is ``ctl``, not ``run``."""


def _command(argv: list[str]) -> str:
    return next((arg for arg in argv if arg in COMMANDS), "run")


def main() -> int:
    if _command(sys.argv[1:]) in LONG_RUNNING:
        early = EarlyStop()
        for sig in STOP_SIGNALS:
            signal.signal(sig, early)
    from proxbox_scheduler.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
