"""Triggers: the ways one run is carried out (http stream, exec command)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxbox_scheduler.core.clock import Clock
    from proxbox_scheduler.core.trigger import Trigger
    from proxbox_scheduler.jobs import JobConfig


def make_trigger(config: JobConfig, clock: Clock) -> Trigger:
    """The trigger the configuration asks for (imported lazily: exec needs no HTTP stack)."""
    if config.invoke == "exec":
        from proxbox_scheduler.triggers.exec import ExecTrigger

        return ExecTrigger(config)
    from proxbox_scheduler.triggers.http import HttpTrigger

    return HttpTrigger(config, clock)
