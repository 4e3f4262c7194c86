"""Value parsers for settings: each takes the trimmed raw string and returns the value,
or raises ValueError whose message says what is accepted (the caller names the setting)."""

from __future__ import annotations

import shlex
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxbox_scheduler.core.schedule import Mode, ModeError, parse_mode

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_EXEC_CMD = "python manage.py proxbox_sync --wait"


class ConfigError(Exception):
    """A setting holds a value we cannot accept; str() is the one line shown to the operator."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        self.name, self.value, self.accepted = name, value, accepted
        super().__init__(f"{name}={value!r} is invalid: {accepted}")


def parse_bool(raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("expected true/false, 1/0, yes/no or on/off")


def parse_number(low: float, high: float, *, integer: bool = False) -> Callable[[str], float]:
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


def parse_positive_seconds(high: float) -> Callable[[str], float]:
    parse_range = parse_number(0, high)

    def parse(raw: str) -> float:
        value = parse_range(raw)
        if value <= 0:
            raise ValueError(f"expected a number of seconds greater than 0 and at most {high:g}")
        return value

    return parse


def parse_choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        word = raw.lower()
        if word not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return word

    return parse


def parse_log_level(raw: str) -> str:
    level = raw.upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return level


def parse_zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as UTC or Europe/Berlin") from None


def parse_mode_setting(raw: str) -> Mode:
    try:
        return parse_mode(raw)
    except ModeError as exc:
        raise ValueError(str(exc)) from None


def parse_url(raw: str, query_hint: str = "") -> str:
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


def parse_optional_url(raw: str) -> str | None:
    return parse_url(raw) if raw else None


def parse_sync_path(raw: str) -> str:
    if not raw.startswith("/") or any(c in raw for c in "?# "):
        raise ValueError("expected a URL path starting with /, without query or spaces")
    return raw


def parse_positive_int_param(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


# The query parameters proxbox-api's stream endpoint types (others pass through unchecked).
SYNC_PARAM_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "fetch_max_concurrency": (parse_positive_int_param, "a whole number >= 1"),
    "dry_run": (lambda v: v.lower() in TRUE_WORDS | FALSE_WORDS, "true or false"),
}


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
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


def parse_command(raw: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"expected a command line with balanced quotes ({exc})") from None
    if not argv:
        raise ValueError("expected a command line, e.g. " + DEFAULT_EXEC_CMD)
    return argv


def _existing(is_kind: Callable[[Path], bool], accepted: str) -> Callable[[str], Path | None]:
    """A parser of an optional path that must already exist as a file or a directory."""

    def parse(raw: str) -> Path | None:
        if not raw:
            return None
        path = Path(raw)
        try:
            found = is_kind(path)
        except OSError as exc:  # a component over 255 characters, a directory we may not search
            raise ValueError(f"{accepted} ({exc.strerror or type(exc).__name__})") from None
        if not found:
            raise ValueError(accepted)
        return path

    return parse


parse_existing_file = _existing(Path.is_file, "expected the path of a readable file")
parse_existing_dir = _existing(Path.is_dir, "expected the path of an existing directory")


def parse_api_key(raw: str) -> str:
    """The key travels as an HTTP header value: printable ASCII without spaces."""
    if raw and not (raw.isascii() and raw.isprintable() and not any(c.isspace() for c in raw)):
        raise ValueError("expected printable ASCII characters without spaces")
    return raw


def parse_ca_bundle(raw: str) -> Path | None:
    path = parse_existing_file(raw)
    if path is not None:
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError):
            raise ValueError("expected a PEM file holding CA certificates") from None
    return path


def parse_host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("expected an address to listen on, e.g. 0.0.0.0 or 127.0.0.1")
    return raw


def parse_state_path(raw: str) -> str:
    """``memory``, a file path, or empty for the per-user default (resolved by the state package)."""
    if "\x00" in raw or raw.endswith("/"):
        raise ValueError("expected `memory` or the path of a file (not a directory)")
    return raw


def parse_replica(text: str) -> str:
    """A replica name (1-48 printable characters, no spaces); empty means the host name."""
    name = text or socket.gethostname()
    if len(name) > 48 or not name.isprintable() or any(c.isspace() for c in name):
        raise ValueError("expected 1-48 printable characters without spaces, e.g. the pod name")
    return name


CONTROL_TOKEN_MIN = 16
"""Shortest control token accepted: guessing it over HTTP must be hopeless."""


def read_secret_file(path: Path) -> str:
    """A secret file's text; ValueError (never the content) when it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"expected a readable UTF-8 file ({type(exc).__name__})") from None


def read_token_file(path: Path) -> str:
    """The one token in ``path`` (surrounding whitespace stripped); ValueError saying what is accepted."""
    token = read_secret_file(path).strip()
    printable = token.isascii() and all(c.isprintable() and not c.isspace() for c in token)
    if len(token) < CONTROL_TOKEN_MIN or not printable:
        raise ValueError(f"expected one token of at least {CONTROL_TOKEN_MIN} printable ASCII characters")
    return token
