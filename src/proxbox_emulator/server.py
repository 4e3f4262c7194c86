"""The HTTP side: a threading server, the request handler, and the Emulator that owns both.

Standard library only (``ThreadingHTTPServer``, one daemon thread per
connection) so it runs anywhere the scheduler runs. The handler holds no state:
it answers from the Emulator's settings, key check, inventory and ledger.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from proxbox_emulator.auth import KeyCheck
from proxbox_emulator.contract import (
    DEFAULT_FETCH_CONCURRENCY,
    EMULATED_ENDPOINT_ID,
    ENDPOINT_ID_PARAMS,
    INVALID_ENDPOINT_IDS_BODY,
    KEY_HEADER,
    METHOD_NOT_ALLOWED_BODY,
    NOT_FOUND_BODY,
    OPEN_PATHS,
    REJECT_BODIES,
    RUN_KIND,
    SECURITY_HEADERS,
    SERVER_HEADER,
    STAGE_PATHS,
    STREAM_HEADERS,
    STREAM_PATH,
    SYNC_ACTIVE_PATH,
    validation_error,
)
from proxbox_emulator.frames import Frames
from proxbox_emulator.inventory import Inventory
from proxbox_emulator.ledger import TERMINAL, Ledger, Outcome, RequestRecord, RunRecord, RunStart
from proxbox_emulator.script import Script
from proxbox_emulator.settings import EmulatorSettings
from proxbox_emulator.sse import ClientGone, SseWriter, await_peer
from proxbox_emulator.stage_stream import StageScript

Settle = Callable[[Outcome], None]
Play = Callable[[Frames, RunStart, Settle], Outcome]


def endpoint_ids(query: dict[str, list[str]]) -> tuple[int, ...] | None:
    """The Proxmox endpoints a stream's query narrows it to (None: all), as proxbox-api reads them.

    Raises ValueError for a value that is not a comma-separated list of integers.
    """
    raw = next((query[name][-1] for name in ENDPOINT_ID_PARAMS if query.get(name, [""])[-1].strip()), None)
    if raw is None:
        return None
    return tuple(int(part) for part in raw.split(",") if part.strip())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a scheduler stopping mid-request) is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    """Routes one connection's requests; the state lives on the Emulator."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.settings.access_log:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def setup(self) -> None:
        super().setup()
        self.server.emulator.ledger.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.emulator.ledger.track(self.connection, add=False)
        super().finish()

    def send_response(self, code: int, message: str | None = None) -> None:
        self.server.emulator.ledger.count_status(code)
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        key = self.headers.get(KEY_HEADER) or None
        emulator.ledger.record(
            RequestRecord(
                method=method,
                path=parts.path,
                query=parts.query,
                key_present=key is not None,
                user_agent=self.headers.get("User-Agent"),
                accept=self.headers.get("Accept"),
                client=self.client_address[0],
            )
        )
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if parts.path not in OPEN_PATHS:
            denial = emulator.key_check.check(self.client_address[0], key)
            if denial is not None:
                self._json(denial.status, denial.body, denial.headers, middleware=True)
                return
        self._route(method, parts.path, parts.query)

    def _route(self, method: str, path: str, query: str) -> None:
        routes: dict[str, Callable[[], None]] = {
            "/": lambda: self._json(200, {"message": "proxbox-api emulator", "emulator": True}),
            "/health": lambda: self._json(200, {"status": "ok"}),
            STREAM_PATH: lambda: self._full_update(parse_qs(query)),
            SYNC_ACTIVE_PATH: lambda: self._json(200, self.server.emulator.ledger.sync_active()),
        }
        stage = STAGE_PATHS.get(path)
        answer = routes.get(path) if stage is None else lambda: self._stage_stream(stage, parse_qs(query))
        if answer is None:
            self._json(404, NOT_FOUND_BODY)
        elif method != "GET":
            self._json(405, METHOD_NOT_ALLOWED_BODY)
        else:
            answer()

    def _json(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        middleware: bool = False,
    ) -> None:
        """Plain JSON like FastAPI; the auth middleware's own replies carry no security headers."""
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.send_header("content-type", "application/json")
        if not middleware:
            for name, value in SECURITY_HEADERS:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _fetch_concurrency(self, query: dict[str, list[str]]) -> int | None:
        """The run's ``fetch_max_concurrency``; None once a 422 has answered a bad one."""
        fetch = query.get("fetch_max_concurrency", [DEFAULT_FETCH_CONCURRENCY])[-1]
        try:
            value = int(fetch)
        except ValueError:
            self._json(422, validation_error("int_parsing", fetch))
            return None
        if value < 1:
            self._json(422, validation_error("greater_than_equal", fetch))
            return None
        return value

    def _rejected(self) -> bool:
        """Refuse every ``reject_every``-th stream request before the stream, as a broken NetBox does."""
        emulator = self.server.emulator
        every, status = emulator.settings.reject_every, emulator.settings.reject_status
        if every and emulator.ledger.next_stream_request() % every == 0:
            self._json(status, REJECT_BODIES[status])
            return True
        return False

    def _hold_first_byte(self, seconds: float) -> bool:
        """Hold the headers back as proxbox-api does while it resolves its sessions; False: client left."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            try:
                await_peer(selector, self.connection, seconds)
            except ClientGone:
                self.close_connection = True
                return False
        return True

    def _stream_headers(self) -> bool:
        """Send the 200 and the stream headers; True when the body is chunked (HTTP/1.1)."""
        self.send_response(200)
        for name, value in (*STREAM_HEADERS, *SECURITY_HEADERS):
            self.send_header(name, value)
        chunked = self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.close_connection = True
        self.end_headers()
        return chunked

    def _full_update(self, query: dict[str, list[str]]) -> None:
        fetch_concurrency = self._fetch_concurrency(query)
        if fetch_concurrency is None:
            return

        def play(frames: Frames, start: RunStart, settle: Settle) -> Outcome:
            return Script(frames, start.run.id, start.fate, settle).play()

        self._stream(play, fetch_concurrency)

    def _stage_stream(self, stage: str, query: dict[str, list[str]]) -> None:
        """A per-stage stream: one stage, narrowed by ``endpoint_ids`` like the real one."""
        try:
            selection = endpoint_ids(query)
        except ValueError:
            self._json(400, INVALID_ENDPOINT_IDS_BODY)
            return
        chosen = selection is None or EMULATED_ENDPOINT_ID in selection

        def play(frames: Frames, start: RunStart, settle: Settle) -> Outcome:
            selected = chosen and not frames.empty
            return StageScript(frames, stage, start.fate, settle, selected=selected).play()

        self._stream(play, int(DEFAULT_FETCH_CONCURRENCY), kind=stage, selection=selection)

    def _stream(
        self,
        play: Play,
        fetch_concurrency: int,
        *,
        kind: str = RUN_KIND,
        selection: tuple[int, ...] | None = None,
    ) -> None:
        """One stream run of any kind: refusals, the held first byte, the ledger, the outcome."""
        emulator = self.server.emulator
        settings = emulator.settings
        if self._rejected():
            return
        if settings.first_byte_delay and not self._hold_first_byte(settings.first_byte_delay):
            return
        start = emulator.ledger.begin_run(
            cut_every=settings.cut_every, fail_every=settings.fail_every, kind=kind, endpoint_ids=selection
        )
        outcome = Outcome.ERROR  # only kept if the emulator itself raised
        writer: SseWriter | None = None
        try:
            chunked = self._stream_headers()
            writer = SseWriter(self.connection, self.wfile, settings.keepalive_interval, chunked=chunked)
            empty = 0 < settings.empty_from <= start.run.number
            frames = Frames(
                writer,
                emulator.inventory,
                settings,
                first=start.first,
                fetch_concurrency=fetch_concurrency,
                empty=empty,
            )
            outcome = play(frames, start, lambda o: emulator.ledger.end_run(start.run, o))
        except (ClientGone, OSError):
            outcome = Outcome.STOPPED if emulator.stopping else Outcome.DISCONNECTED
        finally:
            if writer is not None:
                writer.close()
            if outcome not in TERMINAL:
                self.close_connection = True
            emulator.ledger.end_run(start.run, outcome)
            emulator.ledger.stream_closed()


class Emulator:
    """A running proxbox-api stand-in plus thread-safe counters of what it saw.

    ``start()`` serves from a background thread (tests, demo); ``serve_forever()``
    blocks the caller until ``stop()`` (CLI). ``wait_until()`` lets tests wait for
    a state change without sleeping. ``inventory`` is the cluster every run
    reports; ``ledger`` holds the requests and runs seen.
    """

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self.inventory = Inventory(self.settings)
        self.ledger = Ledger()
        self.key_check = KeyCheck(
            self.settings.key, self.settings.lockout_after, self.settings.lockout_seconds
        )
        self.port = 0
        self.url = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """``stop()`` has begun cutting connections: a run ending now was stopped."""
        return self._stopping.is_set()

    def start(self) -> Emulator:
        """Bind and serve from a daemon thread; sets ``port`` and ``url``. Idempotent."""
        with self._lock:
            if self._server is not None:
                return self
            host = self.settings.host
            server = (_Server6 if ":" in host else _Server)((host, self.settings.port), Handler)
            server.emulator = self
            self._server = server
            self.port = server.server_address[1]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{self.port}"
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"proxbox-api-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Start if needed, then block the calling thread until ``stop()`` has run."""
        self.start()
        self._stopped.wait()

    def stop(self, grace: float = 0.0) -> None:
        """Stop accepting, give active runs ``grace`` seconds, then cut every connection.

        A run cut here ends like one on a restarted proxbox-api: no terminal event.
        """
        with self._lock:
            server, thread = self._server, self._thread
        if server is None or self._stopping.is_set():
            return
        server.shutdown()
        if grace > 0:
            self.ledger.wait_until(self.ledger.quiet, timeout=grace)
        self._stopping.set()
        for conn in self.ledger.connections():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.ledger.wait_until(self.ledger.quiet, timeout=5.0)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        self._stopped.set()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observations, read from the ledger ------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        return self.ledger.wait_until(predicate, timeout)

    def sync_active(self) -> dict[str, Any]:
        return self.ledger.sync_active()

    @property
    def requests_per_path(self) -> dict[str, int]:
        return self.ledger.requests_per_path

    @property
    def request_log(self) -> list[RequestRecord]:
        return self.ledger.request_log

    @property
    def status_counts(self) -> dict[int, int]:
        return self.ledger.status_counts

    @property
    def runs(self) -> list[RunRecord]:
        return self.ledger.runs

    @property
    def runs_started(self) -> int:
        return self.ledger.runs_started

    @property
    def runs_completed(self) -> int:
        return self.ledger.runs_completed

    @property
    def active_runs(self) -> int:
        return self.ledger.active_runs
