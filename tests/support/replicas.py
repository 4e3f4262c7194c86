"""Several real ``proxbox-scheduler run`` processes sharing one store, and a server that counts their runs.

``CountingServer`` answers the sync stream with an immediate success and keeps
the arrival time of every request, so the chaos tests can compare what the
server saw with what the replicas claimed. ``Fleet`` starts, kills, stops and
continues replicas by their own pids and asks each one's /status who leads.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.processes import CLI, Proc, base_env, free_port, spawn
from tests.support.sse_server import Reply, Request, SSEServer, json_reply, sse

COMPLETE = b'event: complete\ndata: {"ok": true, "result": {"devices_count": 1}}\n\n'


class CountingServer:
    """The sync stream, answered at once with a success; ``times`` holds each request's arrival."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.server = SSEServer()
        self.server.route("/full-update/stream", self._stream)
        self.server.route("/sync/active", json_reply(200, b'{"active": false}'))

    def _stream(self, request: Request) -> Reply:
        with self._lock:
            self.times.append(time.time())
        return sse(COMPLETE)

    @property
    def url(self) -> str:
        return self.server.url

    def count(self) -> int:
        with self._lock:
            return len(self.times)

    def arrivals(self) -> list[float]:
        with self._lock:
            return list(self.times)


@dataclass
class Replica:
    name: str
    port: int
    proc: Proc
    stopped: bool = False

    def status(self) -> dict[str, Any] | None:
        """/status, or None when the replica does not answer (stopped, dead, starting)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=1) as answer:
                return json.loads(answer.read())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def ready(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def leading(self) -> bool:
        doc = self.status()
        return bool(doc and doc.get("replica", {}).get("leading"))

    def alive(self) -> bool:
        return self.proc.popen.poll() is None


class Fleet:
    """Replicas of the real CLI against ``target`` with the shared store at ``state_url``."""

    def __init__(self, target: str, state_url: str, lease_s: float, interval: float = 1.0) -> None:
        self.target, self.state_url, self.lease_s = target, state_url, lease_s
        self.mode = f"interval={interval:g}"
        self.replicas: list[Replica] = []
        self.retired: list[Replica] = []
        self._made = 0

    def start(self, name: str | None = None) -> Replica:
        self._made += 1
        name = name or f"replica-{self._made}"
        port = free_port()
        env = base_env(
            PROXBOX_MODE=self.mode,
            PROXBOX_API_URL=self.target,
            PROXBOX_SCHEDULER_SKIP_IF_ACTIVE="false",
            PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS="0",
            PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
            PROXBOX_SCHEDULER_HTTP_PORT=str(port),
            PROXBOX_SCHEDULER_STATE_URL=self.state_url,
            PROXBOX_SCHEDULER_LEASE_SECONDS=f"{self.lease_s:g}",
            PROXBOX_SCHEDULER_REPLICA=name,
            PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS="5",
        )
        replica = Replica(name, port, spawn([CLI, "run"], env))
        self.replicas.append(replica)
        return replica

    def leaders(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive() and not r.stopped and r.leading()]

    def kill(self, replica: Replica) -> None:
        replica.proc.signal(signal.SIGKILL)
        replica.proc.wait(10)
        self._retire(replica)

    def terminate(self, replica: Replica) -> int:
        replica.proc.signal(signal.SIGTERM)
        code = replica.proc.wait(30)
        self._retire(replica)
        return code

    def pause(self, replica: Replica) -> None:
        replica.proc.signal(signal.SIGSTOP)
        replica.stopped = True

    def resume(self, replica: Replica) -> None:
        replica.proc.signal(signal.SIGCONT)
        replica.stopped = False

    def _retire(self, replica: Replica) -> None:
        self.replicas.remove(replica)
        self.retired.append(replica)

    def everyone(self) -> list[Replica]:
        return [*self.retired, *self.replicas]

    def claims(self) -> list[dict[str, Any]]:
        """Every "slot claimed" line of every replica, dead or alive, with the replica's name."""
        found = []
        for replica in self.everyone():
            for doc in replica.proc.out.json_lines():
                if doc.get("event") == "slot claimed":
                    found.append({**doc, "name": replica.name})
        return found

    def stop_all(self) -> None:
        for replica in list(self.replicas):
            if replica.stopped:
                self.resume(replica)
            replica.proc.stop()
            self._retire(replica)


@contextlib.contextmanager
def fleet(target: str, state_url: str, lease_s: float, count: int) -> Iterator[Fleet]:
    group = Fleet(target, state_url, lease_s)
    try:
        for _ in range(count):
            group.start()
        yield group
    finally:
        group.stop_all()
