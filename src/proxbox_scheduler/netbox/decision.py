"""What the scheduler does before a run, given what NetBox said: the decision table as data.

proxbox-api's own busy check (``GET /sync/active``, http invoke only) comes
after this table says PROCEED: it is the inner trigger's first step. So the
full picture (proxbox-api busy x NetBox busy x NetBox unreachable x invoke) is
this table followed by that check; README's "Coordination with NetBox-side
scheduling" spells it out for operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

ENQUEUE_ONCE_FLAG = "--enqueue-once"


class NetBoxState(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    UNREACHABLE = "unreachable"


class Policy(StrEnum):
    """What to do when NetBox cannot be asked: skip is the safe default (never run beside a sync)."""

    SKIP = "skip"
    RUN = "run"


class Action(StrEnum):
    PROCEED = "proceed"
    SKIP_BUSY = "skip_busy"
    SKIP_UNREACHABLE = "skip_unreachable"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Situation:
    """What is known before a run: NetBox's state, the policy, and whether the command would
    delete a recurring NetBox schedule (``--enqueue-once``) and such a schedule exists."""

    netbox: NetBoxState
    policy: Policy = Policy.SKIP
    enqueue_once: bool = False
    recurring: bool = False


@dataclass(frozen=True)
class Rule:
    """One row; ``None`` matches anything. The first matching row decides."""

    action: Action
    netbox: NetBoxState | None = None
    policy: Policy | None = None
    enqueue_once: bool | None = None
    recurring: bool | None = None

    def matches(self, s: Situation) -> bool:
        wanted = (
            (self.netbox, s.netbox),
            (self.policy, s.policy),
            (self.enqueue_once, s.enqueue_once),
            (self.recurring, s.recurring),
        )
        return all(rule is None or rule == actual for rule, actual in wanted)


RULES: tuple[Rule, ...] = (
    Rule(Action.SKIP_BUSY, netbox=NetBoxState.BUSY),
    Rule(Action.SKIP_UNREACHABLE, netbox=NetBoxState.UNREACHABLE, policy=Policy.SKIP),
    Rule(Action.PROCEED, netbox=NetBoxState.UNREACHABLE, policy=Policy.RUN),
    Rule(Action.REFUSE, netbox=NetBoxState.IDLE, enqueue_once=True, recurring=True),
    Rule(Action.PROCEED),
)


def decide(situation: Situation, rules: Sequence[Rule] = RULES) -> Action:
    return next(rule.action for rule in rules if rule.matches(situation))


def has_enqueue_once(argv: Sequence[str]) -> bool:
    """Does the command pass ``--enqueue-once`` (which deletes a recurring "Proxbox Sync" job)?"""
    return any(arg == ENQUEUE_ONCE_FLAG or arg.startswith(ENQUEUE_ONCE_FLAG + "=") for arg in argv)
