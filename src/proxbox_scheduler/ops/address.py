"""How this machine reaches the ops server, whatever address it is bound to."""

from __future__ import annotations


def local_address(bind_host: str) -> str:
    """The address to reach a server bound to ``bind_host`` from this machine."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)


def base_url(host: str, port: int) -> str:
    """``http://host:port`` with an IPv6 literal in brackets."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
