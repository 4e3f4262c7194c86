"""Dead-man's switch pings in the healthchecks.io style.

``{url}/start`` when a run starts, ``{url}`` on success, ``{url}/fail`` on
failure and ``{url}/log`` for a skipped run, each with ``rid=<run id>``. They
go out from one worker thread in order, with short timeouts; a failing ping
is logged and never touches a run or the schedule.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime

import httpx

from proxbox_scheduler import __version__
from proxbox_scheduler.core.observer import Observer
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.redact import redact_url

log = logging.getLogger("proxbox_scheduler.ping")
PING_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
SHUTDOWN_WAIT_SECONDS = 1.0
"""The most shutdown waits for pings still queued or in flight (a hanging endpoint)."""
SUFFIX = {Status.SUCCESS: "", Status.FAILURE: "/fail", Status.SKIPPED: "/log"}


class Pinger(Observer):
    """Sends pings for run starts and ends without ever blocking the loop."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="ping", daemon=True)
        self._thread.start()

    def on_run_start(self, run_id: str, started: datetime) -> None:
        self._queue.put(("/start", run_id))

    def on_run_end(self, run_id: str, outcome: Outcome, duration: float, next_wait: float) -> None:
        self._queue.put((SUFFIX[outcome.status], run_id))

    def on_stop(self) -> None:
        self.close()

    def close(self, timeout: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Give queued pings a short chance to go out, then let the daemon worker go."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "pings still pending at shutdown; not waiting longer than %g s for %s",
                timeout,
                redact_url(self.url),
            )

    def _work(self) -> None:
        headers = {"User-Agent": f"proxbox-scheduler/{__version__}"}
        with httpx.Client(timeout=PING_TIMEOUT, headers=headers, follow_redirects=True) as client:
            while (item := self._queue.get()) is not None:
                suffix, run_id = item
                try:
                    response = client.get(self.url + suffix, params={"rid": run_id})
                    if response.status_code >= 400:
                        log.warning("ping %s answered HTTP %s", suffix or "/", response.status_code)
                except httpx.HTTPError as exc:
                    log.warning(
                        "ping %s to %s failed: %s", suffix or "/", redact_url(self.url), type(exc).__name__
                    )
