"""The job file (``PROXBOX_SCHEDULER_CONFIG``): shared defaults, named targets and several jobs, in TOML.

Every value goes through the same parser as the variable that sets it today,
so a value means the same in the file and in the environment. Precedence, per
job setting: the job's key, then ``[defaults]``, then the job's target (for
url, key, key_file, ca_bundle, verify_ssl), then the variable, then the built-in
default. Process settings (``state_path``, ``log_level``, ...) sit at the top of
the file, and a variable that is set wins over them (a container can override
its logging or port without editing the file). Any error is one ConfigError
naming the file, the job (or table) and the key.
"""

from __future__ import annotations

import difflib
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from proxbox_scheduler.crosscheck import Blame, resolve_key
from proxbox_scheduler.jobs import JobConfig, job_config
from proxbox_scheduler.parsers import ConfigError, parse_number
from proxbox_scheduler.variables import BY_ATTR, name_of, shown_raw

JOB_KEYS = {
    "mode": "mode",
    "tz": "tz",
    "invoke": "invoke",
    "path": "sync_path",
    "params": "sync_params",
    "command": "exec_cmd",
    "cwd": "exec_cwd",
    "timeout": "run_timeout",
    "connect_timeout": "connect_timeout",
    "idle_timeout": "idle_timeout",
    "backoff": "backoff",
    "backoff_max": "backoff_max",
    "jitter": "jitter",
    "run_on_start": "run_on_start",
    "skip_if_active": "skip_if_active",
    "ping_url": "ping_url",
    "catchup": "catchup",
    "starting_deadline": "starting_deadline",
    "max_event_bytes": "max_event_bytes",
}
"""Job key -> the Config attribute (and so the variable and parser) it sets."""
TARGET_KEYS = {
    "url": "api_url",
    "key": "api_key",
    "key_file": "api_key_file",
    "ca_bundle": "ca_bundle",
    "verify_ssl": "verify_ssl",
}
PROCESS_KEYS = ("state_path", "log_level", "log_json", "http_host", "http_port", "shutdown_grace")
"""Process settings the file may set (by their attribute names)."""
JOB_ONLY = ("name", "target", "lock")
CONCURRENCY = "concurrency"
"""The target-only key: how many of our jobs may run on it at once (not a variable)."""
MAX_CONCURRENCY = 16
_PARSE_CONCURRENCY = parse_number(1, MAX_CONCURRENCY, integer=True)
TOP_KEYS = ("defaults", "targets", "jobs", *PROCESS_KEYS)
NAME = re.compile(r"[a-z0-9_-]{1,64}")
KEY_OF = {attr: key for key, attr in {**JOB_KEYS, **TARGET_KEYS}.items()}
TARGET_ATTRS = frozenset(TARGET_KEYS.values())


def blame(path: Path, job: str, target: str = "") -> Blame:
    """Names a job's setting in messages where an operator would change it: ``<file>: job <name>:
    <key>``, ``<file>: [targets.<target>]: <key>`` for what its target sets, and the variable for
    a target setting of a job without a target (only the environment sets it then)."""

    def name(attr: str) -> str:
        if attr in TARGET_ATTRS:
            return f"{path}: [targets.{target}]: {KEY_OF[attr]}" if target else name_of(attr)
        return f"{path}: job {job}: {KEY_OF.get(attr, attr)}"

    return name


def load_file(path: Path, values: dict[str, Any], env: Mapping[str, str]) -> tuple[JobConfig, ...]:
    """The file's jobs; ``values`` (parsed variables) are their base and take its process keys."""
    doc = _read_toml(path)
    _check_keys(doc, TOP_KEYS, f"{path}: top level")
    for attr in PROCESS_KEYS:
        if attr in doc and name_of(attr) not in env:
            values[attr] = _parse(attr, doc[attr], f"{path}: {attr}")
    defaults = _table(doc, "defaults", path)
    _check_keys(defaults, (*JOB_KEYS, "target", "lock"), f"{path}: [defaults]")
    tables = _table(doc, "targets", path).items()
    targets = {name: _target(path, name, table) for name, table in tables}
    slots = {name: _concurrency(table, f"{path}: [targets.{name}]") for name, table in tables}
    jobs = doc.get("jobs")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise ConfigError(f"{path}: jobs", str(jobs or ""), "expected one or more [[jobs]] tables")
    built: list[JobConfig] = []
    for index, table in enumerate(jobs):
        job = _job(path, index, {**defaults, **table}, values, targets, slots)
        if any(job.name == other.name for other in built):
            raise ConfigError(f"{path}: job {job.name}: name", job.name, "expected a name no other job has")
        built.append(job)
    return tuple(built)


def _read_toml(path: Path) -> dict[str, Any]:
    where = name_of("config_file")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, str(path), f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, str(path), f"expected a readable file ({type(exc).__name__})") from None


def _table(doc: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    table = doc.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {key}", str(table), f"expected a [{key}] table")
    return table


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"{where}: {key}", str(table[key]), "unknown key" + hint)


def _target(path: Path, name: str, table: Any) -> dict[str, Any]:
    where = f"{path}: [targets.{name}]"
    _check_name(name, f"{where} name")
    if not isinstance(table, dict):
        raise ConfigError(where, str(table), "expected a table of url, key, key_file, ca_bundle, verify_ssl")
    _check_keys(table, (*TARGET_KEYS, CONCURRENCY), where)
    if "url" not in table:
        raise ConfigError(f"{where}: url", "", "required, e.g. http://proxbox-api:8000")
    values = {attr: BY_ATTR[attr].parse(BY_ATTR[attr].default) for attr in TARGET_KEYS.values()}
    for key, attr in TARGET_KEYS.items():
        if key in table:
            values[attr] = _parse(attr, table[key], f"{where}: {key}")
    resolve_key(values, lambda attr: f"{where}: {KEY_OF[attr]}")
    return values


def _job(
    path: Path,
    index: int,
    table: dict[str, Any],
    base: dict[str, Any],
    targets: dict[str, dict[str, Any]],
    slots: dict[str, int],
) -> JobConfig:
    name = table.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{path}: jobs[{index}]: name", str(name or ""), 'required, e.g. name = "vms"')
    _check_name(name, f"{path}: job {name}: name")
    where = blame(path, name)
    _check_keys(table, (*JOB_KEYS, *JOB_ONLY), f"{path}: job {name}")
    values = dict(base)
    target = table.get("target", "")
    if target:
        if target not in targets:
            known = ", ".join(sorted(targets)) or "none defined"
            raise ConfigError(
                where("target"), str(target), f"expected a [targets.NAME] of this file ({known})"
            )
        values.update(targets[target])
    for key, attr in JOB_KEYS.items():
        if key in table:
            values[attr] = _parse(attr, table[key], where(attr))
    lock = table.get("lock", "")
    if lock:
        _check_name(lock, where("lock"))
    return job_config(name, values, str(target), str(lock), slots.get(target, 1))


def _concurrency(table: dict[str, Any], where: str) -> int:
    """A target's ``concurrency``: 1 (one of our jobs at a time) unless it says more."""
    value = table.get(CONCURRENCY, 1)
    try:
        return int(_PARSE_CONCURRENCY(_scalar(value)))
    except ValueError as exc:
        raise ConfigError(f"{where}: {CONCURRENCY}", str(value), str(exc)) from None


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(where, str(name), "expected 1-64 of a-z, 0-9, _ and -")


def _parse(attr: str, value: Any, where: str) -> Any:
    """A TOML value through the variable's own parser (tables and lists become its text form)."""
    var = BY_ATTR[attr]
    try:
        return var.parse(_as_text(attr, value).strip())
    except ValueError as exc:
        raise ConfigError(where, shown_raw(var, str(value)), str(exc)) from None


def _as_text(attr: str, value: Any) -> str:
    """The variable's text form of a TOML value: params may be a table, command a list."""
    if attr == "sync_params" and isinstance(value, dict):
        return urlencode([(str(k), _scalar(x)) for k, x in value.items()])
    if attr == "exec_cmd" and isinstance(value, list):
        return shlex.join(_scalar(x) for x in value)
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError("expected a string, a number or true/false")
