"""One job's settings: what to run, when, against which target (``JobConfig``).

Built from the variables (the single job ``default``) or from the job file; the
fields keep the variables' attribute names so triggers read either the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from proxbox_scheduler.core.loop import LoopSettings
from proxbox_scheduler.core.schedule import Mode
from proxbox_scheduler.redact import mask_params, param_secrets, redact_url, url_secrets

DEFAULT_JOB = "default"
UNFINISHED = {
    "http": "the sync did not finish; its stream was closed",
    "exec": "the command did not finish; its process group was terminated",
}
"""What a run cut off by its timeout left undone, by invoke, for the failure's reason."""
EXEC_LOCK = "netbox"
"""Concurrency group of exec jobs: they all drive the same NetBox unless a job names another."""


@dataclass(frozen=True)
class JobConfig:
    """One job: what to run, when, against which target; the single object a trigger reads.

    ``lock`` is the job's concurrency group: at most ``lock_slots`` of the jobs sharing it run
    at the same time (by default one group per proxbox-api target with its ``concurrency``,
    1 unless the target says more, and one group of 1 for all exec jobs).
    ``target_name`` is the ``[targets.NAME]`` the job uses, empty for the variables' target.
    """

    name: str
    mode: Mode
    invoke: str
    tz: ZoneInfo
    backoff: float
    backoff_max: float
    api_url: str | None
    api_key: str = field(repr=False)
    api_key_file: Path | None
    sync_path: str
    sync_params: tuple[tuple[str, str], ...]
    run_timeout: float
    connect_timeout: float
    idle_timeout: float
    verify_ssl: bool
    ca_bundle: Path | None
    max_event_bytes: int
    skip_if_active: bool
    exec_cmd: tuple[str, ...]
    exec_cwd: Path | None
    run_on_start: bool
    jitter: float
    ping_url: str | None
    catchup: str
    starting_deadline: float
    lock: str = ""
    lock_slots: int = 1
    target_name: str = ""

    @property
    def target(self) -> str:
        """What a run calls, fit to be shown: the redacted URL or the command line."""
        if self.invoke == "exec":
            return shlex.join(self.exec_cmd)
        query = urlencode(mask_params(self.sync_params), safe="*")
        return redact_url(self.api_url or "") + self.sync_path + (f"?{query}" if query else "")

    def secrets(self) -> list[str]:
        """Everything configured that must never be shown: the key, URL passwords, secret params."""
        found = [self.api_key] if self.api_key else []
        return (
            found + url_secrets(self.api_url) + url_secrets(self.ping_url) + param_secrets(self.sync_params)
        )

    def loop_settings(
        self, shutdown_grace: float, timeout_name: str, replica: str, phase: float = 0.0
    ) -> LoopSettings:
        """The loop's view of this job; ``timeout_name`` is the setting that holds ``run_timeout``,
        ``replica`` the name the run history records for this process."""
        return LoopSettings(
            mode=self.mode,
            tz=self.tz,
            backoff=self.backoff,
            backoff_max=self.backoff_max,
            run_timeout=self.run_timeout,
            jitter=self.jitter,
            shutdown_grace=shutdown_grace,
            run_on_start=self.run_on_start,
            timeout_name=timeout_name,
            replica=replica,
            phase=phase,
            unfinished=UNFINISHED[self.invoke],
            job=self.name,
            catchup=self.catchup,
            starting_deadline=self.starting_deadline,
        )


JOB_ATTRS = frozenset(JobConfig.__dataclass_fields__) - {"name", "lock", "lock_slots", "target_name"}


def job_config(
    name: str, values: Mapping[str, Any], target_name: str = "", lock: str = "", target_slots: int = 1
) -> JobConfig:
    """A job from parsed values; its concurrency group defaults to its target, with the target's
    ``target_slots`` (or to NetBox for exec); a group named by ``lock`` takes one job at a time."""
    slots = 1
    if not lock and values["invoke"] == "exec":
        lock = EXEC_LOCK
    elif not lock:
        lock, slots = f"target:{target_name or redact_url(values['api_url'] or '')}", target_slots
    fields = {attr: values[attr] for attr in JOB_ATTRS}
    return JobConfig(name=name, target_name=target_name, lock=lock, lock_slots=slots, **fields)
