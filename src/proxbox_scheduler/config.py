"""Configuration: every variable, its default, its parser and its doc, in one table.

Everything is parsed and validated up front (``load``) so that a bad value
stops the process before any work, with one line naming the variable, the
value and what is accepted. Adding a variable is one entry in ``VARIABLES``
plus one field in ``Config``.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from proxbox_scheduler.core.loop import LoopSettings
from proxbox_scheduler.core.schedule import Mode, ModeKind
from proxbox_scheduler.parsers import (
    DEFAULT_EXEC_CMD,
    parse_api_key,
    parse_bool,
    parse_ca_bundle,
    parse_choice,
    parse_command,
    parse_existing_dir,
    parse_existing_file,
    parse_host,
    parse_log_level,
    parse_mode_setting,
    parse_number,
    parse_optional_url,
    parse_positive_seconds,
    parse_query,
    parse_sync_path,
    parse_zone,
    read_token_file,
)
from proxbox_scheduler.redact import redact_url


class ConfigError(Exception):
    """A variable holds a value we cannot accept; str() is the one line shown to the operator."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        self.name, self.value, self.accepted = name, value, accepted
        super().__init__(f"{name}={value!r} is invalid: {accepted}")


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it lands in Config and how it is read."""

    name: str
    attr: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False


GiB = 1024**3
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "PROXBOX_MODE",
        "mode",
        "off",
        parse_mode_setting,
        "`off`, `continuous`, `interval=<seconds>` or `cron=<5-field expression or @alias>`",
    ),
    Variable(
        "PROXBOX_SCHEDULER_INVOKE",
        "invoke",
        "http",
        parse_choice("http", "exec"),
        "`http` (call proxbox-api's SSE stream) or `exec` (run a command)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_TZ",
        "tz",
        "UTC",
        parse_zone,
        "IANA time zone in which cron expressions are evaluated and times are shown",
    ),
    Variable(
        "PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS",
        "backoff",
        "30",
        parse_number(0, 86400),
        "wait after a failed run before the next attempt, in every mode (0-86400)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_BACKOFF_MAX_SECONDS",
        "backoff_max",
        "3600",
        parse_number(0, 604800),
        "cap of the doubling wait after consecutive rejected API keys (0-604800)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_LOG_LEVEL",
        "log_level",
        "INFO",
        parse_log_level,
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    ),
    Variable(
        "PROXBOX_SCHEDULER_LOG_JSON",
        "log_json",
        "true",
        parse_bool,
        "JSON lines on stdout when true, one readable line per record when false",
    ),
    Variable(
        "PROXBOX_API_URL",
        "api_url",
        "",
        parse_optional_url,
        "base URL of proxbox-api (a path prefix is kept); required for `http` unless the mode is off",
    ),
    Variable(
        "PROXBOX_API_KEY",
        "api_key",
        "",
        parse_api_key,
        "sent as `X-Proxbox-API-Key`; never logged",
        secret=True,
    ),
    Variable(
        "PROXBOX_API_KEY_FILE",
        "api_key_file",
        "",
        parse_existing_file,
        "file holding the key, e.g. a Docker/Kubernetes secret; not with PROXBOX_API_KEY",
    ),
    Variable(
        "PROXBOX_SYNC_PATH",
        "sync_path",
        "/full-update/stream",
        parse_sync_path,
        "path of the stream endpoint, appended to `PROXBOX_API_URL`",
    ),
    Variable(
        "PROXBOX_SYNC_PARAMS",
        "sync_params",
        "",
        parse_query,
        "query string passed through, e.g. `fetch_max_concurrency=4&dry_run=true`",
    ),
    Variable(
        "PROXBOX_API_TIMEOUT",
        "run_timeout",
        "7200",
        parse_positive_seconds(604800),
        "hard limit in seconds on one run's total duration, for both invokes",
    ),
    Variable(
        "PROXBOX_API_CONNECT_TIMEOUT",
        "connect_timeout",
        "10",
        parse_positive_seconds(3600),
        "seconds to establish the connection to proxbox-api",
    ),
    Variable(
        "PROXBOX_API_IDLE_TIMEOUT",
        "idle_timeout",
        "120",
        parse_positive_seconds(86400),
        "seconds without a single byte (keep-alives included) after which a run fails",
    ),
    Variable(
        "PROXBOX_API_VERIFY_SSL",
        "verify_ssl",
        "true",
        parse_bool,
        "verify proxbox-api's TLS certificate; false logs a warning at startup",
    ),
    Variable(
        "PROXBOX_API_CA_BUNDLE",
        "ca_bundle",
        "",
        parse_ca_bundle,
        "PEM file of a private CA to verify proxbox-api's certificate with",
    ),
    Variable(
        "PROXBOX_SSE_MAX_EVENT_BYTES",
        "max_event_bytes",
        str(256 * 1024 * 1024),
        parse_number(1024, 4 * GiB, integer=True),
        "cap on one SSE event's data; a larger event fails the run instead of exhausting memory",
    ),
    Variable(
        "PROXBOX_SCHEDULER_SKIP_IF_ACTIVE",
        "skip_if_active",
        "true",
        parse_bool,
        "ask `GET /sync/active` first and skip the run while another sync is running",
    ),
    Variable(
        "PROXBOX_SCHEDULER_EXEC_CMD",
        "exec_cmd",
        DEFAULT_EXEC_CMD,
        parse_command,
        "command for `exec`, split like a shell would and run without one",
    ),
    Variable(
        "PROXBOX_SCHEDULER_EXEC_CWD",
        "exec_cwd",
        "",
        parse_existing_dir,
        "working directory of the `exec` command (default: the scheduler's)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_RUN_ON_START",
        "run_on_start",
        "false",
        parse_bool,
        "run once at start, then follow the schedule",
    ),
    Variable(
        "PROXBOX_SCHEDULER_JITTER_SECONDS",
        "jitter",
        "0",
        parse_number(0, 86400),
        "random delay in [0, J] seconds before each scheduled fire, to spread many schedulers",
    ),
    Variable(
        "PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS",
        "shutdown_grace",
        "25",
        parse_number(0, 3600),
        "how long a run in flight may finish after SIGTERM before it is cancelled",
    ),
    Variable(
        "PROXBOX_SCHEDULER_HTTP_HOST",
        "http_host",
        "0.0.0.0",
        parse_host,
        "address of the health/metrics/status server",
    ),
    Variable(
        "PROXBOX_SCHEDULER_HTTP_PORT",
        "http_port",
        "9750",
        parse_number(0, 65535, integer=True),
        "port of the health/metrics/status server; 0 turns it off",
    ),
    Variable(
        "PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE",
        "control_token_file",
        "",
        parse_existing_file,
        "file holding the token that turns on run-now/pause/resume on the ops port (`Authorization: Bearer`)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_STALE_AFTER_SECONDS",
        "stale_after",
        "86400",
        parse_positive_seconds(31 * 86400),
        "the page highlights a last success older than this",
    ),
    Variable(
        "PROXBOX_SCHEDULER_PING_URL",
        "ping_url",
        "",
        parse_optional_url,
        "dead-man's switch (healthchecks.io style): `/start`, success and `/fail` pings",
    ),
)
BY_NAME = {v.name: v for v in VARIABLES}
BY_ATTR = {v.attr: v for v in VARIABLES}


def name_of(attr: str) -> str:
    """The variable that sets ``Config.<attr>``, for messages that tell the operator what to change."""
    return BY_ATTR[attr].name


@dataclass(frozen=True)
class Config:
    """The validated settings; the single object the rest of the program reads."""

    mode: Mode
    invoke: str
    tz: ZoneInfo
    backoff: float
    backoff_max: float
    log_level: str
    log_json: bool
    api_url: str | None
    api_key: str = field(repr=False)
    api_key_file: Path | None
    sync_path: str
    sync_params: tuple[tuple[str, str], ...]
    run_timeout: float
    connect_timeout: float
    idle_timeout: float
    verify_ssl: bool
    ca_bundle: Path | None
    max_event_bytes: int
    skip_if_active: bool
    exec_cmd: tuple[str, ...]
    exec_cwd: Path | None
    run_on_start: bool
    jitter: float
    shutdown_grace: float
    http_host: str
    http_port: int
    control_token_file: Path | None
    stale_after: float
    ping_url: str | None
    warnings: tuple[str, ...] = ()
    control_token: str = field(default="", repr=False)

    @property
    def target(self) -> str:
        """What a run calls, fit to be shown: the redacted URL or the command line."""
        if self.invoke == "exec":
            return shlex.join(self.exec_cmd)
        query = urlencode(self.sync_params)
        return redact_url(self.api_url or "") + self.sync_path + (f"?{query}" if query else "")

    def loop_settings(self) -> LoopSettings:
        """The loop's view of this configuration."""
        return LoopSettings(
            mode=self.mode,
            tz=self.tz,
            backoff=self.backoff,
            backoff_max=self.backoff_max,
            run_timeout=self.run_timeout,
            jitter=self.jitter,
            shutdown_grace=self.shutdown_grace,
            run_on_start=self.run_on_start,
            timeout_name=name_of("run_timeout"),
        )

    def public(self) -> dict[str, Any]:
        """The effective configuration with secrets redacted, for the startup log line."""
        shown: dict[str, Any] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if var.secret:
                value = "<set>" if value else ""
            elif var.parse is parse_optional_url and value:
                value = redact_url(value)
            elif isinstance(value, (Mode, ZoneInfo, Path)):
                value = str(value)
            elif var.attr == "exec_cmd":
                value = shlex.join(value)
            elif var.attr == "sync_params":
                value = "&".join(f"{k}={v}" for k, v in value)
            shown[var.name] = value
        return shown


def _read(var: Variable, env: Mapping[str, str]) -> Any:
    raw = env.get(var.name)
    if raw is None:
        raw = var.default
    raw = raw.strip()
    try:
        return var.parse(raw)
    except ValueError as exc:
        shown = "<redacted>" if var.secret else redact_url(raw)
        raise ConfigError(var.name, shown, str(exc)) from None


def read(attr: str, env: Mapping[str, str]) -> Any:
    """One setting parsed on its own (for commands that need only a few, like healthcheck)."""
    return _read(BY_ATTR[attr], env)


def read_or_default(attr: str, env: Mapping[str, str]) -> Any:
    """One setting, its default when the value is invalid (logging set up before validation)."""
    try:
        return read(attr, env)
    except ConfigError:
        return read(attr, {})


def unknown_variable_warnings(env: Mapping[str, str]) -> tuple[str, ...]:
    """One warning per unknown PROXBOX_SCHEDULER_* variable, naming the closest known one."""
    out = []
    for name in sorted(env):
        if name.startswith("PROXBOX_SCHEDULER_") and name not in BY_NAME:
            close = closest_variable(name)
            hint = f"; did you mean {close}?" if close else ""
            out.append(f"unknown variable {name} is ignored{hint}")
    return tuple(out)


def closest_variable(name: str) -> str | None:
    """The known variable a misspelt name most likely meant (prefix matches first)."""
    known = [v.name for v in VARIABLES]
    by_prefix = [k for k in known if k.startswith(name) or name.startswith(k)]
    if by_prefix:
        return min(by_prefix, key=lambda k: abs(len(k) - len(name)))

    def stem(var: str) -> str:  # compare what differs, not the shared prefix
        return var.removeprefix("PROXBOX_SCHEDULER_").removeprefix("PROXBOX_")

    def score(var: str) -> float:
        return difflib.SequenceMatcher(None, stem(name), stem(var)).ratio()

    best = max(known, key=score)
    return best if score(best) >= 0.6 else None


def load(env: Mapping[str, str] | None = None, *, need_target: bool | None = None) -> Config:
    """Parse and cross-check every variable; raise ConfigError on the first bad one.

    ``need_target`` (default: unless the mode is off) demands what the invoke
    needs to run: the URL for http, an executable for exec. ``once`` runs
    whatever the mode says, so it always needs one.
    """
    env = os.environ if env is None else env
    values = {var.attr: _read(var, env) for var in VARIABLES}
    _resolve_key(values, env)
    values["control_token"] = _control_token(values["control_token_file"])
    if need_target or (need_target is None and values["mode"].kind is not ModeKind.OFF):
        _check_invoke(values, env)
    return Config(**values, warnings=_warnings(values, env))


def _resolve_key(values: dict[str, Any], env: Mapping[str, str]) -> None:
    key_file: Path | None = values["api_key_file"]
    if key_file is None:
        return
    if values["api_key"]:
        raise ConfigError(
            name_of("api_key_file"),
            str(key_file),
            f"set either {name_of('api_key')} or {name_of('api_key_file')}, not both",
        )
    try:
        key = key_file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            name_of("api_key_file"), str(key_file), f"expected a readable UTF-8 file ({type(exc).__name__})"
        ) from None
    if not key.strip():
        raise ConfigError(name_of("api_key_file"), str(key_file), "expected a file holding the API key")
    try:
        values["api_key"] = parse_api_key(key)
    except ValueError as exc:
        raise ConfigError(
            name_of("api_key_file"), str(key_file), f"the key in it is invalid: {exc}"
        ) from None


def _control_token(path: Path | None) -> str:
    """The token in the control token file ('' when control is off); never shown, only its file."""
    try:
        return read_token_file(path) if path else ""
    except ValueError as exc:
        raise ConfigError(name_of("control_token_file"), str(path), str(exc)) from None


def _check_invoke(values: dict[str, Any], env: Mapping[str, str]) -> None:
    if values["invoke"] == "http":
        if not values["api_url"]:
            raise ConfigError(
                name_of("api_url"),
                env.get(name_of("api_url"), ""),
                f"required with {name_of('invoke')}=http, e.g. http://proxbox-api:8000",
            )
        return
    argv: tuple[str, ...] = values["exec_cmd"]
    cwd: Path | None = values["exec_cwd"]
    if not _executable_exists(argv[0], cwd):
        raise ConfigError(
            name_of("exec_cmd"),
            shlex.join(argv),
            f"executable {argv[0]!r} not found on PATH or not executable",
        )


def _executable_exists(program: str, cwd: Path | None) -> bool:
    if os.sep in program:
        path = Path(program) if cwd is None else cwd / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program) is not None


def _warnings(values: dict[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    found = list(unknown_variable_warnings(env))
    if values["invoke"] == "http" and not values["verify_ssl"]:
        found.append(f"{name_of('verify_ssl')}=false: proxbox-api's TLS certificate is not verified")
    return tuple(found)
