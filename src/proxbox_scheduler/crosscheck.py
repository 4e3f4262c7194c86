"""Cross-checks of one job's parsed values: the key file read, the target or executable present.

``blame`` maps a setting's attribute to the name shown in the error: the
variable (``PROXBOX_API_URL``) or the file, job and key (``jobs.toml: job vms: url``).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxbox_scheduler.parsers import ConfigError, parse_api_key, read_secret_file

if TYPE_CHECKING:
    from proxbox_scheduler.jobs import JobConfig

Blame = Callable[[str], str]


def resolve_key(values: dict[str, Any], blame: Blame) -> None:
    """Replace ``api_key`` with the content of ``api_key_file`` when one is set."""
    resolve_secret_file(values, "api_key", "api_key_file", "the API key", blame)


def resolve_secret_file(values: dict[str, Any], attr: str, file_attr: str, what: str, blame: Blame) -> None:
    """A secret given as a file (Docker/Kubernetes secrets) lands in ``values[attr]``."""
    path: Path | None = values[file_attr]
    if path is None:
        return
    where = blame(file_attr)
    if values[attr]:
        raise ConfigError(where, str(path), f"set either {blame(attr)} or {where}, not both")
    try:
        values[attr] = read_key_file(path, what)
    except ValueError as exc:
        raise ConfigError(where, str(path), str(exc)) from None


def read_key_file(path: Path, what: str = "the API key") -> str:
    """The secret a file holds; ValueError says what is wrong (read at startup and before each run)."""
    key = read_secret_file(path).rstrip("\r\n")
    if not key.strip():
        raise ValueError(f"expected a file holding {what}")
    try:
        return parse_api_key(key)
    except ValueError as exc:
        raise ValueError(f"{what} in it is invalid: {exc}") from None


def check_invoke(job: JobConfig, blame: Blame, env: Mapping[str, str]) -> None:
    """What the job's invoke needs to run: the URL for http, an executable for exec."""
    if job.invoke == "http":
        if not job.api_url:
            raise ConfigError(
                blame("api_url"),
                env.get(blame("api_url"), ""),
                f"required with {blame('invoke')}=http, e.g. http://proxbox-api:8000",
            )
        return
    argv = job.exec_cmd
    if not _executable_exists(argv[0], job.exec_cwd):
        raise ConfigError(
            blame("exec_cmd"),
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
