"""The one place that decides what of a URL or a text may be shown.

Every URL the scheduler shows (startup line, ``target``, DEBUG lines,
``/status``, the page, error reasons) goes through ``redact_url``; every
text that may carry what a server or a command said goes through a
``Scrubber`` built from the configured secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
REDACTED = "<redacted>"
SECRET_PARAM_WORDS = ("token", "key", "pass", "pwd", "secret", "auth", "signature", "credential", "session")
"""A query parameter whose name contains one of these (case-insensitively) has its value masked."""
MIN_SECRET_CHARS = 3
"""Shorter secrets are not scrubbed from free text: replacing every "a" would garble it, not hide it."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(//)?")


def is_secret_param(name: str) -> bool:
    """True for query parameter names such as token, api_key, password or X-Auth."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAM_WORDS)


def mask_params(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Query parameters with the values of secret-looking names replaced by ``***``."""
    return [(name, MASK if is_secret_param(name) and value else value) for name, value in pairs]


def redact_query(query: str) -> str:
    """A query string fit to be shown; one that does not parse is hidden whole when it could hold a secret."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return MASK if any(is_secret_param(part) for part in re.split(r"[&;=]", query)) else query
    return urlencode(mask_params(pairs), safe="*")


def redact_url(url: str) -> str:
    """``url`` without the password of its userinfo and without secret query values.

    The userinfo ends at the last ``@`` of the authority, as ``urlsplit`` parses
    it, so a password holding ``@`` is hidden whole. A URL that does not parse
    as ``scheme://authority`` but holds an ``@`` is hidden up to its last ``@``:
    whatever it is, it is not shown.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 literal
        return _redact_malformed(url)
    if not parts.scheme or not parts.netloc or not url.lower().startswith(f"{parts.scheme.lower()}://"):
        return _redact_malformed(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    if "@" in url.partition(parts.netloc)[2]:  # http://user:pa/ss@host: the "path" holds the host
        return _redact_malformed(url)
    query = redact_query(parts.query) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_malformed(url: str) -> str:
    if "@" not in url:
        return url
    match = _SCHEME.match(url)
    head = match.group(0) if match else ""
    return head + MASK + "@" + url.rpartition("@")[2]


def url_secrets(url: str | None) -> list[str]:
    """The secrets a URL carries: its password (raw and decoded) and secret query values."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        password = userinfo.partition(":")[2]
        found += [password, unquote(password)]
    found += param_secrets(parse_qsl(parts.query, keep_blank_values=True))
    return found


def param_secrets(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The values of secret-looking query parameters, as given and as they go on the wire."""
    values = [value for name, value in pairs if is_secret_param(name) and value]
    return values + [quote(value, safe="") for value in values]


class Scrubber:
    """Replaces every configured secret in a text with ``<redacted>``.

    Longest first, so a secret that contains another is hidden whole. Secrets
    can be added later (a rotated key file): the old key is still hidden.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        fresh = {s for s in secrets if len(s) >= MIN_SECRET_CHARS} - set(self._secrets)
        if fresh:
            self._secrets = sorted({*self._secrets, *fresh}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
