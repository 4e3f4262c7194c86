"""A loopback server that answers like NetBox's Jobs API (``GET /api/core/jobs/``), for tests.

The scenario is mutable while it serves: the jobs it lists, a status to answer
instead (401, 500...), or hanging without answering. It filters by ``status``
and ``name__isw`` as NetBox does, and records each request's query and
Authorization header so tests can check what the scheduler sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http import LoopbackServer

JOBS_PATH = "/api/core/jobs/"


def job(ident: int, name: str, status: str, **fields: Any) -> dict[str, Any]:
    """A job row shaped like NetBox 4.7's REST API (status as a value/label choice)."""
    row: dict[str, Any] = {
        "id": ident,
        "url": f"http://netbox.test/api/core/jobs/{ident}/",
        "name": name,
        "status": {"value": status, "label": status.title()},
        "interval": None,
        "scheduled": None,
        "started": None,
        "created": "2026-12-01T12:00:00.000000Z",
        "job_id": f"00000000-0000-0000-0000-{ident:012d}",
    }
    row.update(fields)
    return row


@dataclass
class Seen:
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class Scenario:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hang: bool = False
    body: bytes | None = None  # answer this instead of the jobs JSON


class FakeNetBox(LoopbackServer):
    """``with FakeNetBox() as nb:`` serves on 127.0.0.1; set ``nb.scenario`` fields at any time."""

    def __init__(self) -> None:
        self.scenario = Scenario()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def _answer(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        s = self.scenario
        if s.status != 200:
            return s.status, b'{"detail": "Invalid token"}' if s.status in (
                401,
                403,
            ) else b"<h1>Server Error</h1>"
        if s.body is not None:
            return 200, s.body
        statuses = set(query.get("status", []))
        prefix = query.get("name__isw", [""])[0].lower()
        rows = [
            row
            for row in s.jobs
            if (not statuses or row["status"]["value"] in statuses) and row["name"].lower().startswith(prefix)
        ]
        return 200, json.dumps({"count": len(rows), "next": None, "previous": None, "results": rows}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with fake._lock:
                    fake.seen.append(Seen(query, self.headers.get("Authorization")))
                if fake.scenario.hang:
                    fake._release.wait(60)
                    return
                status, body = (404, b"{}") if parts.path != JOBS_PATH else fake._answer(query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
