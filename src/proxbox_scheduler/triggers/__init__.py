"""Triggers: the ways one run is carried out (http stream, exec command)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from proxbox_scheduler.variables import name_of

if TYPE_CHECKING:
    from proxbox_scheduler.core.clock import Clock
    from proxbox_scheduler.core.trigger import Trigger
    from proxbox_scheduler.jobs import JobConfig


def make_trigger(config: JobConfig, clock: Clock, names: Callable[[str], str] = name_of) -> Trigger:
    """The trigger the configuration asks for (imported lazily: exec needs no HTTP stack);
    ``names`` names the job's settings in its reasons (default: the variables)."""
    if config.invoke == "exec":
        from proxbox_scheduler.triggers.exec import ExecTrigger

        return ExecTrigger(config)
    from proxbox_scheduler.triggers.http import HttpTrigger

    return HttpTrigger(config, clock, names)
