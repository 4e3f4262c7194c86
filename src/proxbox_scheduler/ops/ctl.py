"""`proxbox-scheduler ctl run|pause|resume JOB`: the control endpoints from a shell.

The token is read from a file (the same one the scheduler reads, by default),
never from the command line, where `ps` would show it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from proxbox_scheduler.config import ConfigError, control_token, name_of, read
from proxbox_scheduler.ops.healthcheck import fetch

TIMEOUT = 10.0


def read_token(token_file: str | None, env: Mapping[str, str]) -> str:
    """The token from ``--token-file`` or the scheduler's own token file; ConfigError when there is none."""
    if token_file:
        path: Path | None = Path(token_file)
        source = "--token-file"
    else:
        path, source = read("control_token_file", env), name_of("control_token_file")
    if path is None:
        raise ConfigError(source, "", "expected a file holding the control token (or --token-file FILE)")
    return control_token(path, source)


def send(url: str, action: str, job: str, token: str) -> tuple[bool, str]:
    """POST the action; (accepted, one line saying what happened)."""
    target = f"{url.rstrip('/')}/jobs/{quote(job, safe='')}/{action}"
    request = urllib.request.Request(target, method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        code, body = fetch(request, TIMEOUT)
    except (OSError, urllib.error.URLError) as exc:
        return False, f"cannot reach {url}: {getattr(exc, 'reason', exc)}"
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    if 200 <= code < 300:
        return True, f"{job}: {answer.get('result', action)}"
    return (
        False,
        f"{job}: {action} refused (HTTP {code}): {answer.get('error', body.decode(errors='replace'))}",
    )
