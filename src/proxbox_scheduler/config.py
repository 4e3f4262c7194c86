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
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxbox_scheduler.redact import mask_params, param_secrets, redact_query, redact_url, url_secrets
from proxbox_scheduler.schedule import Mode, ModeError, parse_mode

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_EXEC_CMD = "python manage.py proxbox_sync --wait --enqueue-once"


class ConfigError(Exception):
    """A variable holds a value we cannot accept; str() is the one line shown to the operator."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        self.name, self.value, self.accepted = name, value, accepted
        super().__init__(f"{name}={value!r} is invalid: {accepted}")


# ---------------------------------------------------------------- value parsers
# Each takes the trimmed raw string and returns the value, or raises ValueError
# whose message says what is accepted.


def _bool(raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("expected true/false, 1/0, yes/no or on/off")


def _number(low: float, high: float, *, integer: bool = False) -> Callable[[str], float]:
    kind = "a whole number" if integer else "a number"

    def parse(raw: str) -> float:
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise ValueError(f"expected {kind} from {low:g} to {high:g}") from None
        if not low <= value <= high or value != value:
            raise ValueError(f"expected {kind} from {low:g} to {high:g}")
        return value

    return parse


def _positive_seconds(high: float) -> Callable[[str], float]:
    parse_range = _number(0, high)

    def parse(raw: str) -> float:
        value = parse_range(raw)
        if value <= 0:
            raise ValueError(f"expected a number of seconds greater than 0 and at most {high:g}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        word = raw.lower()
        if word not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return word

    return parse


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return level


def _zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as UTC or Europe/Berlin") from None


def _mode(raw: str) -> Mode:
    try:
        return parse_mode(raw)
    except ModeError as exc:
        raise ValueError(str(exc)) from None


def _url(raw: str, query_hint: str = "") -> str:
    """An http(s) URL with a host and a usable port; a query or fragment would end up before the path."""
    accepted = "expected an http:// or https:// URL with a host, e.g. http://proxbox-api:8000"
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed [IPv6 literal
        raise ValueError(accepted) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(accepted)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("expected a port number from 1 to 65535 in the URL")
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise ValueError("expected a URL without a query or fragment" + query_hint)
    return raw.rstrip("/")


def _optional_url(raw: str) -> str | None:
    return _url(raw) if raw else None


def _api_url(raw: str) -> str | None:
    return _url(raw, "; put query parameters in PROXBOX_SYNC_PARAMS") if raw else None


def _sync_path(raw: str) -> str:
    if not raw.startswith("/") or any(c in raw for c in "?# "):
        raise ValueError("expected a URL path starting with /, without query or spaces")
    return raw


def _positive_int_param(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


# The query parameters proxbox-api's stream endpoint types (others pass through unchecked).
SYNC_PARAM_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "fetch_max_concurrency": (_positive_int_param, "a whole number >= 1"),
    "dry_run": (lambda v: v.lower() in TRUE_WORDS | FALSE_WORDS, "true or false"),
}


def _query(raw: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    try:
        pairs = parse_qsl(raw.lstrip("?"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("expected a query string such as fetch_max_concurrency=4&dry_run=true") from None
    for name, value in pairs:
        check, accepted = SYNC_PARAM_CHECKS.get(name, (None, ""))
        if check is not None and not check(value):
            raise ValueError(f"{name} expects {accepted}")
    return tuple(pairs)


def _command(raw: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"expected a command line with balanced quotes ({exc})") from None
    if not argv:
        raise ValueError("expected a command line, e.g. " + DEFAULT_EXEC_CMD)
    return argv


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _existing_file(raw: str) -> Path | None:
    if not raw:
        return None
    path = Path(raw)
    try:
        found = path.is_file()
    except OSError as exc:  # a component over 255 characters, a directory we may not search
        raise ValueError(f"expected the path of a readable file ({_os_reason(exc)})") from None
    if not found:
        raise ValueError("expected the path of a readable file")
    return path


def _existing_dir(raw: str) -> Path | None:
    if not raw:
        return None
    path = Path(raw)
    try:
        found = path.is_dir()
    except OSError as exc:
        raise ValueError(f"expected the path of an existing directory ({_os_reason(exc)})") from None
    if not found:
        raise ValueError("expected the path of an existing directory")
    return path


def _api_key(raw: str) -> str:
    """The key travels as an HTTP header value: printable ASCII without spaces."""
    if raw and not (raw.isascii() and raw.isprintable() and not any(c.isspace() for c in raw)):
        raise ValueError("expected printable ASCII characters without spaces")
    return raw


def _ca_bundle(raw: str) -> Path | None:
    path = _existing_file(raw)
    if path is not None:
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError):
            raise ValueError("expected a PEM file holding CA certificates") from None
    return path


def _host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("expected an address to listen on, e.g. 0.0.0.0 or 127.0.0.1")
    return raw


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
    trim: bool = True


GiB = 1024**3
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "PROXBOX_MODE",
        "mode",
        "off",
        _mode,
        "`off`, `continuous`, `interval=<seconds>` or `cron=<5-field expression or @alias>`",
    ),
    Variable(
        "PROXBOX_SCHEDULER_INVOKE",
        "invoke",
        "http",
        _choice("http", "exec"),
        "`http` (call proxbox-api's SSE stream) or `exec` (run a command)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_TZ",
        "tz",
        "UTC",
        _zone,
        "IANA time zone in which cron expressions are evaluated and times are shown",
    ),
    Variable(
        "PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS",
        "backoff",
        "30",
        _number(0, 86400),
        "wait after a failed run before the next attempt, in every mode (0-86400)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_BACKOFF_MAX_SECONDS",
        "backoff_max",
        "3600",
        _number(0, 604800),
        "cap of the doubling wait after consecutive rejected API keys (0-604800)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_LOG_LEVEL",
        "log_level",
        "INFO",
        _log_level,
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    ),
    Variable(
        "PROXBOX_SCHEDULER_LOG_JSON",
        "log_json",
        "true",
        _bool,
        "JSON lines on stdout when true, one readable line per record when false",
    ),
    Variable(
        "PROXBOX_API_URL",
        "api_url",
        "",
        _api_url,
        "base URL of proxbox-api (a path prefix is kept; no query); required for `http` unless mode is off",
    ),
    Variable(
        "PROXBOX_API_KEY", "api_key", "", _api_key, "sent as `X-Proxbox-API-Key`; never logged", secret=True
    ),
    Variable(
        "PROXBOX_API_KEY_FILE",
        "api_key_file",
        "",
        _existing_file,
        "file holding the key, e.g. a Docker/Kubernetes secret; not with PROXBOX_API_KEY",
    ),
    Variable(
        "PROXBOX_SYNC_PATH",
        "sync_path",
        "/full-update/stream",
        _sync_path,
        "path of the stream endpoint, appended to `PROXBOX_API_URL`",
    ),
    Variable(
        "PROXBOX_SYNC_PARAMS",
        "sync_params",
        "",
        _query,
        "query string passed through, e.g. `fetch_max_concurrency=4&dry_run=true`",
    ),
    Variable(
        "PROXBOX_API_TIMEOUT",
        "run_timeout",
        "7200",
        _positive_seconds(604800),
        "hard limit in seconds on one run's total duration, for both invokes",
    ),
    Variable(
        "PROXBOX_API_CONNECT_TIMEOUT",
        "connect_timeout",
        "10",
        _positive_seconds(3600),
        "seconds to establish the connection to proxbox-api",
    ),
    Variable(
        "PROXBOX_API_IDLE_TIMEOUT",
        "idle_timeout",
        "120",
        _positive_seconds(86400),
        "seconds without a single byte (keep-alives included) after which a run fails",
    ),
    Variable(
        "PROXBOX_API_VERIFY_SSL",
        "verify_ssl",
        "true",
        _bool,
        "verify proxbox-api's TLS certificate; false logs a warning at startup",
    ),
    Variable(
        "PROXBOX_API_CA_BUNDLE",
        "ca_bundle",
        "",
        _ca_bundle,
        "PEM file of a private CA to verify proxbox-api's certificate with",
    ),
    Variable(
        "PROXBOX_SSE_MAX_EVENT_BYTES",
        "max_event_bytes",
        str(256 * 1024 * 1024),
        _number(1024, 4 * GiB, integer=True),
        "cap on one SSE event's data; a larger event fails the run instead of exhausting memory",
    ),
    Variable(
        "PROXBOX_SCHEDULER_SKIP_IF_ACTIVE",
        "skip_if_active",
        "true",
        _bool,
        "ask `GET /sync/active` first and skip the run while another sync is running",
    ),
    Variable(
        "PROXBOX_SCHEDULER_EXEC_CMD",
        "exec_cmd",
        DEFAULT_EXEC_CMD,
        _command,
        "command for `exec`, split like a shell would and run without one",
    ),
    Variable(
        "PROXBOX_SCHEDULER_EXEC_CWD",
        "exec_cwd",
        "",
        _existing_dir,
        "working directory of the `exec` command (default: the scheduler's)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_RUN_ON_START",
        "run_on_start",
        "false",
        _bool,
        "run once at start, then follow the schedule",
    ),
    Variable(
        "PROXBOX_SCHEDULER_JITTER_SECONDS",
        "jitter",
        "0",
        _number(0, 86400),
        "random delay in [0, J] seconds before each scheduled fire, to spread many schedulers",
    ),
    Variable(
        "PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS",
        "shutdown_grace",
        "25",
        _number(0, 3600),
        "how long a run in flight may finish after SIGTERM before it is cancelled",
    ),
    Variable(
        "PROXBOX_SCHEDULER_HTTP_HOST",
        "http_host",
        "0.0.0.0",
        _host,
        "address of the health/metrics/status server",
    ),
    Variable(
        "PROXBOX_SCHEDULER_HTTP_PORT",
        "http_port",
        "9750",
        _number(0, 65535, integer=True),
        "port of the health/metrics/status server; 0 turns it off",
    ),
    Variable(
        "PROXBOX_SCHEDULER_PING_URL",
        "ping_url",
        "",
        _optional_url,
        "dead-man's switch (healthchecks.io style): `/start`, success and `/fail` pings",
    ),
)
BY_NAME = {v.name: v for v in VARIABLES}


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
    ping_url: str | None
    warnings: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """What a run calls, fit to be shown: the redacted URL or the command line."""
        if self.invoke == "exec":
            return shlex.join(self.exec_cmd)
        query = urlencode(mask_params(self.sync_params), safe="*")
        return redact_url(self.api_url or "") + self.sync_path + (f"?{query}" if query else "")

    def secrets(self) -> list[str]:
        """Everything configured that must never be shown: the key, URL passwords, secret params."""
        found = [self.api_key] if self.api_key else []
        return (
            found + url_secrets(self.api_url) + url_secrets(self.ping_url) + param_secrets(self.sync_params)
        )

    def public(self) -> dict[str, Any]:
        """The effective configuration with secrets redacted, for the startup log line."""
        shown: dict[str, Any] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if var.secret:
                value = "<set>" if value else ""
            elif var.name in ("PROXBOX_API_URL", "PROXBOX_SCHEDULER_PING_URL") and value:
                value = redact_url(value)
            elif isinstance(value, (Mode, ZoneInfo, Path)):
                value = str(value)
            elif var.attr == "exec_cmd":
                value = shlex.join(value)
            elif var.attr == "sync_params":
                value = "&".join(f"{k}={v}" for k, v in mask_params(value))
            shown[var.name] = value
        return shown


def local_address(bind_host: str) -> str:
    """The address to reach a server bound to ``bind_host`` from this machine."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)


def _read(var: Variable, env: Mapping[str, str]) -> Any:
    raw = env.get(var.name)
    if raw is None:
        raw = var.default
    if var.trim:
        raw = raw.strip()
    try:
        return var.parse(raw)
    except ValueError as exc:
        shown = _shown_raw(var, raw)
        raise ConfigError(var.name, shown, str(exc)) from None


def _shown_raw(var: Variable, raw: str) -> str:
    """A rejected value as the error line may show it."""
    if var.secret:
        return "<redacted>"
    return redact_query(raw) if var.attr == "sync_params" else redact_url(raw)


def read_variable(name: str, env: Mapping[str, str]) -> Any:
    """One variable parsed on its own (for commands that need only a few, like healthcheck)."""
    return _read(BY_NAME[name], env)


def mode_is_off(env: Mapping[str, str]) -> bool:
    """True when scheduling is disabled; checked before anything else is validated."""
    return env.get("PROXBOX_MODE", "").strip().lower() in ("", "off")


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
    if need_target or (need_target is None and values["mode"].kind != "off"):
        _check_invoke(values, env)
    return Config(**values, warnings=_warnings(values, env))


def _resolve_key(values: dict[str, Any], env: Mapping[str, str]) -> None:
    key_file: Path | None = values["api_key_file"]
    if key_file is None:
        return
    if values["api_key"]:
        raise ConfigError(
            "PROXBOX_API_KEY_FILE",
            str(key_file),
            "set either PROXBOX_API_KEY or PROXBOX_API_KEY_FILE, not both",
        )
    try:
        values["api_key"] = read_key_file(key_file)
    except ValueError as exc:
        raise ConfigError("PROXBOX_API_KEY_FILE", str(key_file), str(exc)) from None


def read_key_file(path: Path) -> str:
    """The key a file holds; ValueError says what is wrong (read at startup and before each run)."""
    try:
        key = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"expected a readable UTF-8 file ({type(exc).__name__})") from None
    if not key.strip():
        raise ValueError("expected a file holding the API key")
    try:
        return _api_key(key)
    except ValueError as exc:
        raise ValueError(f"the key in it is invalid: {exc}") from None


def _check_invoke(values: dict[str, Any], env: Mapping[str, str]) -> None:
    if values["invoke"] == "http":
        if not values["api_url"]:
            raise ConfigError(
                "PROXBOX_API_URL",
                env.get("PROXBOX_API_URL", ""),
                "required with PROXBOX_SCHEDULER_INVOKE=http, e.g. http://proxbox-api:8000",
            )
        return
    argv: tuple[str, ...] = values["exec_cmd"]
    cwd: Path | None = values["exec_cwd"]
    if not _executable_exists(argv[0], cwd):
        raise ConfigError(
            "PROXBOX_SCHEDULER_EXEC_CMD",
            shlex.join(argv),
            f"executable {argv[0]!r} not found on PATH or not executable",
        )


def _executable_exists(program: str, cwd: Path | None) -> bool:
    try:
        if os.sep in program:
            path = Path(program) if cwd is None else cwd / program
            return path.is_file() and os.access(path, os.X_OK)
        return shutil.which(program) is not None
    except OSError:  # a name over 255 characters, a directory we may not search
        return False


def _warnings(values: dict[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    found = list(unknown_variable_warnings(env))
    if values["invoke"] == "http" and not values["verify_ssl"]:
        found.append("PROXBOX_API_VERIFY_SSL=false: proxbox-api's TLS certificate is not verified")
    return tuple(found)
