"""The emulator's settings, each declared once: default, check and command-line flag.

The dataclass below is the table. Every field carries its flag's help (and, where
the command line differs, its flag name, argparse action or default) in its
metadata; ``add_arguments`` and ``settings_from_args`` walk the fields, so a new
setting is one line here and nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from proxbox_emulator.contract import REJECT_BODIES, STAGES


@dataclass(frozen=True)
class Accept:
    """What a setting accepts: a test and the reason shown when a value fails it."""

    test: Callable[[Any], bool]
    reason: str
    choices: tuple[Any, ...] | None = None  # also offered to argparse


def _one_of(values: tuple[Any, ...], reason: str | None = None) -> Accept:
    shown = ", ".join(map(str, values))
    return Accept(lambda v: v in values, reason or f"must be one of {shown}", values)


NON_NEGATIVE = Accept(lambda v: v >= 0, "must be >= 0")
POSITIVE = Accept(lambda v: v > 0, "must be > 0")
AT_LEAST_ONE = Accept(lambda v: v >= 1, "must be >= 1")
STAGE = _one_of(STAGES, f"unknown stage; stages are {', '.join(STAGES)}")
STAGE_DELAYS = Accept(
    lambda v: set(v) <= set(STAGES) and min(v.values(), default=0) >= 0,
    f"unknown stage or negative seconds; stages are {', '.join(STAGES)}",
)
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "str | None": str}


def _setting(
    default: Any,
    help: str | None = None,
    *,
    accept: Accept | None = None,
    flag: str | None = None,
    cli_default: Any = MISSING,
    from_cli: Callable[[Any], Any] | None = None,
    **argparse_options: Any,
) -> Any:
    """One row of the table; ``help=None`` keeps a setting off the command line."""
    meta = {
        "help": help,
        "accept": accept,
        "flag": flag,
        "cli_default": cli_default,
        "from_cli": from_cli,
        "argparse": argparse_options,
    }
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


class SettingError(ValueError):
    """A setting's value is not accepted; names the setting, the value and the reason."""

    def __init__(self, name: str, value: Any, reason: str) -> None:
        super().__init__(f"{name}={value!r}: {reason}")
        self.name, self.value, self.reason = name, value, reason


def _parse_slow_stage(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    if not sep or name not in STAGES:
        raise argparse.ArgumentTypeError(f"expected STAGE=SECONDS with STAGE one of {', '.join(STAGES)}")
    try:
        return name, float(seconds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad seconds in {text!r}") from exc


@dataclass
class EmulatorSettings:
    """Every knob of the emulator; the defaults are an instant, always-successful small cluster.

    Run numbering starts at 1 per emulator, full and per-stage runs alike. ``fail_every``/
    ``cut_every`` pick runs by that number (a run that qualifies for both is cut).
    ``fail_stage`` is the stage at which failing full runs fail and cut ones are cut, after
    the stage's delay; a per-stage run fails or is cut in its own stage.
    ``result_bytes`` is the approximate size of the final ``complete`` data line;
    the filler goes into ``result.journal_entries`` as NetBox-like records so the
    line stays one valid JSON document with realistic nesting.
    """

    host: str = _setting("127.0.0.1", "address to bind (default %(default)s)")
    port: int = _setting(
        0,
        "port to bind, 0 for any free one (default %(default)s, like proxbox-api)",
        accept=NON_NEGATIVE,
        cli_default=8800,
    )
    key: str | None = _setting(None, "API key required in X-Proxbox-API-Key (default: no key required)")
    stage_delay: float = _setting(
        0.0,
        "time each of the 12 stages takes (default %(default)s)",
        accept=NON_NEGATIVE,
        metavar="SECONDS",
    )
    # _setting turns a dict default into a default_factory field.
    slow_stages: dict[str, float] = _setting(  # noqa: RUF009
        {},
        "override the delay of one stage (repeatable)",
        accept=STAGE_DELAYS,
        flag="--slow-stage",
        cli_default=[],
        from_cli=dict,
        action="append",
        type=_parse_slow_stage,
        metavar="STAGE=SECONDS",
    )
    keepalive_interval: float = _setting(
        15.0,
        "send ': keepalive' after this much silence (default %(default)s)",
        accept=POSITIVE,
        flag="--keepalive",
        metavar="SECONDS",
    )
    first_byte_delay: float = _setting(
        0.0,
        "delay before the stream's response headers (real: 0.4-1.4 s)",
        accept=NON_NEGATIVE,
        metavar="SECONDS",
    )
    fail_every: int = _setting(
        0, "every Nth run fails with error + complete ok:false (0: never)", accept=NON_NEGATIVE, metavar="N"
    )
    fail_stage: str = _setting(
        "node-interfaces",
        "stage where failing full runs fail and cut ones are cut (default %(default)s)",
        accept=STAGE,
    )
    fail_error: str = _setting("NetBox REST request failed", "error string of failing runs")
    fail_detail: str | None = _setting(
        "Injected fault (500) by proxbox-api emulator", "detail string of failing runs"
    )
    cut_every: int = _setting(
        0,
        "every Nth run's stream is cut with no terminal event (0: never)",
        accept=NON_NEGATIVE,
        metavar="N",
    )
    # "abort": close without the last chunk; "clean": end the body.
    cut_mode: str = _setting(
        "abort",
        "abort: drop the connection mid-body; clean: end the body early",
        accept=_one_of(("abort", "clean")),
    )
    reject_every: int = _setting(
        0,
        "every Nth stream request is refused before the stream (0: never)",
        accept=NON_NEGATIVE,
        metavar="N",
    )
    reject_status: int = _setting(
        502,
        "status of refused stream requests: 400 no endpoint, 502 NetBox unreachable",
        accept=_one_of(tuple(sorted(REJECT_BODIES))),
    )
    degraded: bool = _setting(
        False, "runs succeed with phase_summary completed_with_errors and result.degraded"
    )
    empty_from: int = _setting(
        0,
        "from the Nth run on, runs succeed with every *_count at 0 (a sync that found nothing; 0: never)",
        accept=NON_NEGATIVE,
        metavar="N",
    )
    item_events: int = _setting(
        0, "extra item_progress events per run (throughput benchmarks)", accept=NON_NEGATIVE, metavar="N"
    )
    result_bytes: int = _setting(
        0, "pad the final complete data line to about this size", accept=NON_NEGATIVE, metavar="BYTES"
    )
    devices: int = _setting(1, "Proxmox nodes (default %(default)s)", accept=AT_LEAST_ONE)
    virtual_machines: int = _setting(2, "VMs and containers (default %(default)s)", accept=NON_NEGATIVE)
    storage: int = _setting(2, "storages (default %(default)s)", accept=NON_NEGATIVE)
    backups: int = _setting(1, "backups (default %(default)s)", accept=NON_NEGATIVE)
    backup_routines: int = _setting(1, "backup routines (default %(default)s)", accept=NON_NEGATIVE)
    lockout_after: int = _setting(
        5, "wrong-key attempts before the 429 lockout (default %(default)s)", accept=AT_LEAST_ONE
    )
    lockout_seconds: float = _setting(300.0, "lockout length (default %(default)s)", accept=NON_NEGATIVE)
    netbox_url: str = _setting("http://netbox.example.com")
    access_log: bool = _setting(
        False, "no access log on stderr", flag="--quiet", cli_default=True, action="store_false"
    )

    def __post_init__(self) -> None:
        for setting in fields(self):
            accept = setting.metadata["accept"]
            value = getattr(self, setting.name)
            if accept is not None and not accept.test(value):
                raise SettingError(setting.name, value, accept.reason)


def _on_cli(setting: Field[Any]) -> bool:
    return setting.metadata["help"] is not None


def flag_of(setting: Field[Any]) -> str:
    """The command-line flag of a setting: ``--<name-with-dashes>`` unless the table says otherwise."""
    return setting.metadata["flag"] or "--" + setting.name.replace("_", "-")


def _cli_default(setting: Field[Any]) -> Any:
    meta = setting.metadata
    if meta["cli_default"] is not MISSING:
        return meta["cli_default"]
    return setting.default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare one flag per setting on the command line, all derived from the table."""
    for setting in filter(_on_cli, fields(EmulatorSettings)):
        meta = setting.metadata
        options: dict[str, Any] = {
            "dest": setting.name,
            "help": meta["help"],
            "default": _cli_default(setting),
        }
        if setting.type == "bool":
            options["action"] = "store_true"
        else:
            if "type" not in meta["argparse"]:
                options["type"] = _TYPES[str(setting.type)]
            if meta["accept"] is not None and meta["accept"].choices is not None:
                options["choices"] = meta["accept"].choices
        options.update(meta["argparse"])
        parser.add_argument(flag_of(setting), **options)


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """The settings the parsed flags describe; raises SettingError naming the flag."""
    values: dict[str, Any] = {}
    for setting in filter(_on_cli, fields(EmulatorSettings)):
        value = getattr(args, setting.name)
        convert = setting.metadata["from_cli"]
        values[setting.name] = convert(value) if convert else value
    try:
        return EmulatorSettings(**values)
    except SettingError as exc:
        flag = flag_of(next(f for f in fields(EmulatorSettings) if f.name == exc.name))
        raise SettingError(flag, exc.value, exc.reason) from None
