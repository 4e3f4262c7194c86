"""HTTP helpers for tests: GET with a short timeout, Prometheus samples, a ping receiver."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = 5.0) -> Reply:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return Reply(response.status, dict(response.headers), body, time.monotonic() - start)
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read(), time.monotonic() - start)


def metrics_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, keyed by (sample name, labels)."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"metric {name}{labels or ''} missing; have {sorted({k[0] for k in samples})}"
    return samples[key]


# ---------------------------------------------------------------- a ping receiver


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 in its own thread, used as a context manager.

    ``_release`` lets a handler that holds a request back (a slow peer) go at exit.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class PingServer(LoopbackServer):
    """A healthchecks.io stand-in: records GET path + query; can answer an error or stall."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.hits: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                with owner._cond:
                    owner.hits.append((path, query))
                    owner._cond.notify_all()
                if owner.delay:
                    owner._release.wait(owner.delay)
                body = b"OK"
                with contextlib.suppress(OSError):
                    self.send_response(owner.status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/ping/abc"

    def wait_hits(self, count: int, timeout: float) -> list[tuple[str, str]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.hits) >= count, timeout):
                raise AssertionError(f"expected {count} pings in {timeout} s, got {self.hits}")
            return list(self.hits)
