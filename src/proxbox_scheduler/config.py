"""Configuration: the validated settings of the process and its jobs (``Config``, ``load``).

Everything is parsed and validated up front (``load``) so that a bad value
stops the process before any work, with one line naming the variable (or the
job file's key), the value and what is accepted. The variables themselves are
one table in ``variables.py`` (adding one is an entry there plus a field in
``Config`` or ``JobConfig``); the job file is read by ``jobfile.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from proxbox_scheduler.core.loop import LoopSettings
from proxbox_scheduler.core.schedule import Mode, ModeKind
from proxbox_scheduler.crosscheck import check_invoke, resolve_key, resolve_secret_file
from proxbox_scheduler.jobfile import blame, load_file
from proxbox_scheduler.jobs import DEFAULT_JOB, JOB_ATTRS, JobConfig, job_config
from proxbox_scheduler.netbox.settings import NetBoxSettings, check_netbox, netbox_warnings
from proxbox_scheduler.parsers import ConfigError, read_token_file
from proxbox_scheduler.redact import mask_params, redact_url
from proxbox_scheduler.variables import BY_ATTR, BY_NAME, VARIABLES, Variable, name_of, shown_raw

PROCESS_ATTRS = frozenset(BY_ATTR) - JOB_ATTRS
"""Settings of the process; every other variable is a job setting (the default of every job)."""


@dataclass(frozen=True)
class Config:
    """The validated settings of the process and its jobs (at least one; the first is the default).

    Job settings read on the Config itself (``config.mode``, ``config.api_url``) are the
    first job's, so single-job callers keep working unchanged.
    """

    log_level: str
    log_json: bool
    shutdown_grace: float
    http_host: str
    http_port: int
    state_path: str
    config_file: Path | None
    jobs: tuple[JobConfig, ...]
    netbox_url: str | None
    netbox_token: str = field(repr=False)
    netbox_token_file: Path | None
    netbox_verify_ssl: bool
    netbox_ca_bundle: Path | None
    netbox_timeout: float
    netbox_unreachable: str
    state_url: str = field(repr=False)
    lease_seconds: float
    replica: str
    control_token_file: Path | None
    stale_after: float
    warnings: tuple[str, ...] = ()
    control_token: str = field(default="", repr=False)

    @functools.cached_property
    def netbox(self) -> NetBoxSettings | None:
        """How to ask NetBox's Jobs API, or None while NetBox awareness is off."""
        return NetBoxSettings.of(self, name_of) if self.netbox_url else None

    def __getattr__(self, name: str) -> Any:
        if name in JOB_ATTRS or name in ("target", "secrets"):
            return getattr(self.jobs[0], name)
        raise AttributeError(name)

    def job(self, name: str | None = None) -> JobConfig:
        """The named job (KeyError when unknown), or the first one."""
        if name is None:
            return self.jobs[0]
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    def loop_settings(self, name: str | None = None) -> LoopSettings:
        """The loop's view of one job (the first by default)."""
        job = self.job(name)
        timeout_name = self.names(job.name)("run_timeout")
        return job.loop_settings(self.shutdown_grace, timeout_name, self.replica, self._phase(job))

    def names(self, name: str | None = None) -> Callable[[str], str]:
        """How messages about one job name its settings: the variables, or the file's job and target."""
        return _names(self.config_file, self.job(name))

    def _phase(self, job: JobConfig) -> float:
        """Interval jobs spread their grids over one interval (the first starts at once), so that
        many jobs of one process do not all fire in the same instant."""
        spread = [j.name for j in self.jobs if j.mode.kind is ModeKind.INTERVAL]
        if job.name not in spread:
            return 0.0
        return spread.index(job.name) * job.mode.interval / len(spread)

    def public(self) -> dict[str, Any]:
        """The effective configuration with secrets redacted, for the startup log line."""
        shown: dict[str, Any] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if var.secret:
                value = "<set>" if value else ""
            elif isinstance(value, str) and value:
                value = redact_url(value)  # every text setting: a URL's password never shows
            elif isinstance(value, (Mode, ZoneInfo, Path)):
                value = str(value)
            elif var.attr == "exec_cmd":
                value = shlex.join(value)
            elif var.attr == "sync_params":
                value = "&".join(f"{k}={v}" for k, v in mask_params(value))
            shown[var.name] = value
        if self.config_file is not None:
            shown["jobs"] = {job.name: f"{job.mode} {job.target}" for job in self.jobs}
        return shown


def _read(var: Variable, env: Mapping[str, str]) -> Any:
    raw = env.get(var.name)
    if raw is None:
        raw = var.default
    raw = raw.strip()
    try:
        return var.parse(raw)
    except ValueError as exc:
        shown = shown_raw(var, raw)
        raise ConfigError(var.name, shown, str(exc)) from None


def read(attr: str, env: Mapping[str, str]) -> Any:
    """One setting parsed on its own (for commands that need only a few, like healthcheck)."""
    return _read(BY_ATTR[attr], env)


def read_or_default(attr: str, env: Mapping[str, str]) -> Any:
    """One setting, its default when the value is invalid (logging set up before validation)."""
    try:
        return read(attr, env)
    except ConfigError:
        return read(attr, {})


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
    """Parse and cross-check every variable and the job file; raise ConfigError on the first bad one.

    ``need_target`` (default: unless the job's mode is off) demands what the invoke
    needs to run: the URL for http, an executable for exec. ``once`` runs
    whatever the mode says, so it always needs one.
    """
    env = os.environ if env is None else env
    values = {var.attr: _read(var, env) for var in VARIABLES}
    warnings = list(unknown_variable_warnings(env))
    resolve_secret_file(values, "netbox_token", "netbox_token_file", "the NetBox token", name_of)
    check_netbox(values, env, name_of, ConfigError)
    warnings += netbox_warnings(values, name_of)
    if values["config_file"] is None:
        resolve_key(values, name_of)
        jobs: tuple[JobConfig, ...] = (job_config(DEFAULT_JOB, values),)
    else:
        jobs = _with_variables_key(load_file(values["config_file"], values, env), values)
    for job in jobs:
        if need_target or (need_target is None and job.mode.kind is not ModeKind.OFF):
            check_invoke(job, _names(values["config_file"], job), env)
        if job.invoke == "http" and not job.verify_ssl:
            where = _names(values["config_file"], job)("verify_ssl")
            warnings.append(f"{where}=false: proxbox-api's TLS certificate is not verified")
    process = {attr: values[attr] for attr in PROCESS_ATTRS}
    token = control_token(values["control_token_file"])
    return Config(**process, jobs=jobs, warnings=tuple(warnings), control_token=token)


def _with_variables_key(jobs: tuple[JobConfig, ...], values: dict[str, Any]) -> tuple[JobConfig, ...]:
    """File jobs without a target call the variables' proxbox-api: its key (file) is checked and read
    when, and only when, such an http job exists (a file can set no key outside its targets)."""
    if not any(job.invoke == "http" and not job.target_name for job in jobs):
        return jobs
    resolve_key(values, name_of)
    return tuple(
        dataclasses.replace(job, api_key=values["api_key"]) if not job.target_name else job for job in jobs
    )


def _names(config_file: Path | None, job: JobConfig) -> Callable[[str], str]:
    """Names the setting behind a job's value: the variable, or the file's job (or target) and key."""
    return name_of if config_file is None else blame(config_file, job.name, job.target_name)


def control_token(path: Path | None, source: str | None = None) -> str:
    """The token in the control token file ('' when control is off); never shown, only its file,
    named by ``source`` in an error (default: the variable)."""
    try:
        return read_token_file(path) if path else ""
    except ValueError as exc:
        raise ConfigError(source or name_of("control_token_file"), str(path), str(exc)) from None
