"""The one place secrets are hidden before anything is shown (logs, errors, status, page)."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?<=//)[^/?#@]*@")


def redact_url(url: str) -> str:
    """Hide user:password in a URL wherever it is shown (also in URLs that do not parse)."""
    return _USERINFO.sub("***@", url)
