"""Every environment variable in one table: name, Config attribute, default, parser, doc.

Adding a setting is one entry here plus one field where it lands (Config or JobConfig);
everything that names a setting to the operator takes the name from here (``name_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxbox_scheduler.netbox.settings import NETBOX_VARIABLES
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
    parse_replica,
    parse_state_path,
    parse_sync_path,
    parse_url,
    parse_zone,
)
from proxbox_scheduler.redact import REDACTED, redact_query, redact_url
from proxbox_scheduler.state import parse_state_url


def parse_api_url(raw: str) -> str | None:
    """proxbox-api's base URL; query parameters belong in their own setting."""
    return parse_url(raw, f"; put query parameters in {name_of('sync_params')}") if raw else None


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
        parse_api_url,
        "base URL of proxbox-api (a path prefix is kept; no query); required for `http` unless mode is off",
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
        "PROXBOX_SCHEDULER_CATCHUP",
        "catchup",
        "skip",
        parse_choice("skip", "latest"),
        "fires missed while the scheduler was down: `skip` them, or run the `latest` once at start",
    ),
    Variable(
        "PROXBOX_SCHEDULER_STARTING_DEADLINE_SECONDS",
        "starting_deadline",
        "3600",
        parse_positive_seconds(31 * 86400),
        "with `latest`: a missed fire older than this many seconds is skipped, not run",
    ),
    Variable(
        "PROXBOX_SCHEDULER_STATE_PATH",
        "state_path",
        "",
        parse_state_path,
        "SQLite file that keeps history, last success and backoff across restarts; `memory` for none "
        "(default `$XDG_STATE_HOME/proxbox-scheduler/state.db`)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_CONFIG",
        "config_file",
        "",
        parse_existing_file,
        "TOML file with several jobs and targets (see below); without it the variables make one job",
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
    Variable(
        "PROXBOX_SCHEDULER_STATE_URL",
        "state_url",
        "",
        parse_state_url,
        "`postgresql://…` or `redis://…`/`rediss://…` (Valkey too): a store shared by several replicas;"
        " turns on coordination (one leader, one run per fire)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_LEASE_SECONDS",
        "lease_seconds",
        "15",
        parse_number(1, 3600),
        "TTL of the leader's lease with a shared store, renewed every third of it (1-3600)",
    ),
    Variable(
        "PROXBOX_SCHEDULER_REPLICA",
        "replica",
        "",
        parse_replica,
        "this replica's name in run history, logs and /status (default: the host name, e.g. the pod)",
    ),
    *(Variable(*row) for row in NETBOX_VARIABLES),
)
BY_NAME = {v.name: v for v in VARIABLES}
BY_ATTR = {v.attr: v for v in VARIABLES}


def shown_raw(var: Variable, raw: str) -> str:
    """A rejected value as an error line may show it: secrets hidden, URL passwords and secret
    query values masked (the same for a variable and a job file's key)."""
    if var.secret:
        return REDACTED
    return redact_query(raw) if var.attr == "sync_params" else redact_url(raw)


def name_of(attr: str) -> str:
    """The variable that sets ``Config.<attr>``, for messages that tell the operator what to change."""
    return BY_ATTR[attr].name
