"""What every HTTP client of the scheduler shares (proxbox-api, NetBox, the probe): the chain of
causes under a transport error, and TLS verification built from the settings."""

from __future__ import annotations

import ssl
from pathlib import Path


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, innermost last (httpx wraps the OS error)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def tls_verify(verify: bool, ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """httpx's ``verify``: off, the system store (True), or a context on a private CA."""
    if verify and ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return verify
