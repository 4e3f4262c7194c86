"""The entry point's early signal handling knows every subcommand, so only run/once defer a stop."""

from __future__ import annotations

import argparse

from proxbox_scheduler import __main__ as entry
from proxbox_scheduler.cli import build_parser


def test_the_entry_point_knows_exactly_the_clis_subcommands() -> None:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == entry.COMMANDS


def test_only_run_and_once_hold_a_stop_until_the_service_runs() -> None:
    assert entry._command(["ctl", "run", "vms"]) == "ctl"  # ctl's action is no command of its own
    assert entry._command(["--log-json", "once", "vms"]) == "once"
    assert entry._command([]) == "run"
    assert {entry._command([name]) for name in entry.COMMANDS} & set(entry.LONG_RUNNING) == {"run", "once"}
