"""How to reach NetBox: the part of the configuration the NetBox client reads (no I/O, no httpx)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxbox_scheduler.netbox.decision import ENQUEUE_ONCE_FLAG, has_enqueue_once
from proxbox_scheduler.parsers import (
    parse_api_key,
    parse_bool,
    parse_ca_bundle,
    parse_choice,
    parse_existing_file,
    parse_optional_url,
    parse_positive_seconds,
)

NameOf = Callable[[str], str]
"""``config.name_of``: the variable that sets an attribute, for messages."""

NETBOX_VARIABLES: tuple[tuple[Any, ...], ...] = (
    (
        "PROXBOX_SCHEDULER_NETBOX_URL",
        "netbox_url",
        "",
        parse_optional_url,
        "NetBox's base URL: turns NetBox awareness on (its Jobs API is asked before every run)",
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_TOKEN",
        "netbox_token",
        "",
        parse_api_key,
        "NetBox API token (v1 as `Token`, `nbt_...` v2 as `Bearer`); never logged",
        True,
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_TOKEN_FILE",
        "netbox_token_file",
        "",
        parse_existing_file,
        "file holding the NetBox token; not with PROXBOX_SCHEDULER_NETBOX_TOKEN",
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_VERIFY_SSL",
        "netbox_verify_ssl",
        "true",
        parse_bool,
        "verify NetBox's TLS certificate; false logs a warning at startup",
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_CA_BUNDLE",
        "netbox_ca_bundle",
        "",
        parse_ca_bundle,
        "PEM file of a private CA to verify NetBox's certificate with",
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_TIMEOUT",
        "netbox_timeout",
        "10",
        parse_positive_seconds(300),
        "bound in seconds on one question to NetBox's Jobs API, connection included",
    ),
    (
        "PROXBOX_SCHEDULER_NETBOX_UNREACHABLE",
        "netbox_unreachable",
        "skip",
        parse_choice("skip", "run"),
        "when NetBox cannot be asked (down, 401/403, timeout): `skip` the run (safe) or `run` anyway",
    ),
)
"""NetBox awareness's rows of ``config.VARIABLES`` (name, attr, default, parser, doc[, secret]),
kept here so the configuration module stays one screenful of table per concern."""


@dataclass(frozen=True)
class NetBoxSettings:
    """Where NetBox is and how to ask it (``Config.netbox``); the names are the settings' for messages."""

    url: str
    token: str
    verify_ssl: bool
    ca_bundle: Path | None
    timeout: float
    url_name: str
    token_name: str

    @classmethod
    def of(cls, config: Any, name_of: NameOf) -> NetBoxSettings:
        """From a Config whose ``netbox_url`` is set."""
        return cls(
            url=config.netbox_url,
            token=config.netbox_token,
            verify_ssl=config.netbox_verify_ssl,
            ca_bundle=config.netbox_ca_bundle,
            timeout=config.netbox_timeout,
            url_name=name_of("netbox_url"),
            token_name=name_of("netbox_token"),
        )


def check_netbox(
    values: Mapping[str, Any],
    env: Mapping[str, str],
    name_of: NameOf,
    error: Callable[[str, str, str], Exception],
) -> None:
    """NetBox awareness needs both the URL and a token; either one alone is a mistake worth naming."""
    if values["netbox_url"] and not values["netbox_token"]:
        raise error(
            name_of("netbox_token"),
            "",
            f"required with {name_of('netbox_url')} (or {name_of('netbox_token_file')}): "
            "a NetBox API token that may read jobs",
        )
    if values["netbox_token"] and not values["netbox_url"]:
        raise error(
            name_of("netbox_url"),
            env.get(name_of("netbox_url"), ""),
            f"required with {name_of('netbox_token')}, e.g. https://netbox.example.com",
        )


def netbox_warnings(values: Mapping[str, Any], name_of: NameOf) -> list[str]:
    """Startup warnings: NetBox TLS unverified, and an explicit ``--enqueue-once`` in the exec command."""
    found = []
    if values["netbox_url"] and not values["netbox_verify_ssl"]:
        found.append(f"{name_of('netbox_verify_ssl')}=false: NetBox's TLS certificate is not verified")
    if values["invoke"] == "exec" and has_enqueue_once(values["exec_cmd"]):
        refusal = "the scheduler refuses to run it while such a schedule exists"
        guard = refusal if values["netbox_url"] else f"set {name_of('netbox_url')} so that {refusal}"
        found.append(
            f"{name_of('exec_cmd')} passes {ENQUEUE_ONCE_FLAG}: NetBox's enqueue_once deletes a recurring "
            "'Proxbox Sync' schedule (and fails its run if it is running) and does not deduplicate; "
            f"remove it ({guard})"
        )
    return found
