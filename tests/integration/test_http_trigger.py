"""HttpTrigger against a local SSE server: the fault matrix of the wire, TLS, busy check and cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import trustme

from proxbox_scheduler import __version__
from proxbox_scheduler.config import Config, load
from proxbox_scheduler.core.clock import Clock
from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.core.outcome import Progress as ProgressRecord
from proxbox_scheduler.core.trigger import RunContext
from proxbox_scheduler.triggers.http import HttpTrigger
from tests.support.sse_server import Pause, Reply, Signal, SSEServer, Stall, json_reply, sse

KEY = "k3y-Sup3rSecret-0123456789abcdef"
STREAM = "/full-update/stream"
GUARD_SECONDS = 30.0
"""Upper bound on any run here, so that a broken trigger fails a test instead of hanging it."""
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
LOGGER = logging.getLogger("test.http")


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


STARTED = frame("step", {"step": "devices", "status": "started"})
DONE = frame(
    "complete", {"ok": True, "message": "Full update sync completed.", "result": {"devices_count": 3}}
)


def config(url: str, **env: str) -> Config:
    values = {
        "PROXBOX_MODE": "continuous",
        "PROXBOX_API_URL": url,
        "PROXBOX_API_KEY": KEY,
        "PROXBOX_SCHEDULER_SKIP_IF_ACTIVE": "false",
    }
    values.update(env)
    return load(values)


class Progress:
    """A progress sink that records calls and lets a test await the first stage start."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.started: asyncio.Event | None = None

    def __call__(self, progress: ProgressRecord) -> None:
        self.calls.append((progress.kind, progress.fields()))
        if progress.kind == "stage_started" and self.started is not None:
            self.started.set()


def context(progress: Progress | None = None) -> RunContext:
    return RunContext("r1", logging.LoggerAdapter(LOGGER, {"run_id": "r1"}), progress or Progress())


def run(cfg: Config, progress: Progress | None = None) -> Outcome:
    trigger = HttpTrigger(cfg, Clock())

    async def go() -> Outcome:
        try:
            return await asyncio.wait_for(trigger.run(context(progress)), GUARD_SECONDS)
        finally:
            await trigger.aclose()

    return asyncio.run(go())


def serve(server: SSEServer, reply: Reply, **env: str) -> Outcome:
    server.route(STREAM, reply)
    return run(config(server.url, **env))


# ---------------------------------------------------------------- success and progress


def test_real_capture_over_the_wire(server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER.name)
    stream = (SAMPLES / "sample-stream-ok.txt").read_bytes()
    server.route(STREAM, sse(*(stream[i : i + 1000] for i in range(0, len(stream), 1000))))
    progress = Progress()
    outcome = run(config(server.url), progress)
    assert outcome.status is Status.SUCCESS and not outcome.degraded
    assert outcome.details["counts"]["devices"] == 1
    assert outcome.details["counts"]["virtual_machines"] == 2
    kinds = [kind for kind, _ in progress.calls]
    assert kinds == ["stream_started"] + ["stage_started", "stage_completed"] * 12
    assert progress.calls[2][1] == {
        "stage": "devices",
        "index": 1,
        "total": 12,
        "count": 1,
        "duration_s": 1.207,
    }
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "stage devices started (1/12)" in messages
    assert "stage virtual-machines completed (3/12): count=2 in 0.38 s" in messages
    assert messages[-1].startswith("sync succeeded: devices=1 storage=0 virtual_machines=2")
    assert len(server.requests) == 1


def test_item_events_are_logged_at_debug_only(server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, LOGGER.name)
    item = frame("item_progress", {"message": "Synced device 'pve01'"})
    outcome = serve(server, sse(STARTED, item, DONE))
    assert outcome.ok
    item_records = [r for r in caplog.records if "item_progress" in r.getMessage()]
    assert [r.levelno for r in item_records] == [logging.DEBUG]
    assert "Synced device 'pve01'" in item_records[0].getMessage()


def test_request_headers_path_prefix_and_query(server: SSEServer) -> None:
    server.route("/prefix/api" + STREAM, sse(DONE))
    params = "fetch_max_concurrency=4&dry_run=true&netbox_branch_schema_id=a b"
    outcome = run(config(server.url + "/prefix/api", PROXBOX_SYNC_PARAMS=params))
    assert outcome.ok
    [request] = server.requests
    assert request.method == "GET"
    assert request.path == "/prefix/api" + STREAM
    assert request.query == [
        ("fetch_max_concurrency", "4"),
        ("dry_run", "true"),
        ("netbox_branch_schema_id", "a b"),
    ]
    assert request.headers["x-proxbox-api-key"] == KEY
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["user-agent"] == f"proxbox-scheduler/{__version__}"


def test_no_key_header_without_a_key(server: SSEServer) -> None:
    server.route(STREAM, sse(DONE))
    assert run(config(server.url, PROXBOX_API_KEY="")).ok
    assert "x-proxbox-api-key" not in server.requests[0].headers


def test_custom_sync_path(server: SSEServer) -> None:
    server.route("/dcim/devices/create/stream", sse(DONE))
    assert run(config(server.url, PROXBOX_SYNC_PATH="/dcim/devices/create/stream")).ok


def test_url_credentials_go_as_basic_auth_and_are_never_shown(
    server: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.route(STREAM, json_reply(502, b'{"message":"bad"}'))
    url = server.url.replace("http://", "http://admin:pa55word@")
    cfg = config(url)
    assert cfg.target == f"http://***@127.0.0.1:{server.port}{STREAM}"
    outcome = run(cfg)
    assert server.requests[0].headers["authorization"] == "Basic YWRtaW46cGE1NXdvcmQ="
    assert "pa55word" not in outcome.reason
    assert not [r for r in caplog.records if "pa55word" in r.getMessage()]


def test_target_shows_the_query() -> None:
    cfg = config("http://proxbox-api:8000", PROXBOX_SYNC_PARAMS="dry_run=true")
    assert cfg.target == "http://proxbox-api:8000/full-update/stream?dry_run=true"


# ---------------------------------------------------------------- decoding over the wire

WIRE = (
    b"\xef\xbb\xbf: hello\r\n\r\n"
    b"event: step\r\n"
    b'data: {"step": "devices",\r\n'
    b'data:  "status": "started"}\r\n'
    b"\r\n"
    b"event: complete\r"
    b'data: {"ok": true,\r'
    b'data: "result": {"devices_count": 7}}\r'
    b"\r"
)


def test_bom_crlf_cr_and_multiline_data_over_the_wire(server: SSEServer) -> None:
    progress = Progress()
    server.route(STREAM, sse(WIRE))
    outcome = run(config(server.url), progress)
    assert outcome.ok and outcome.details == {"counts": {"devices": 7}}
    assert progress.calls == [("stage_started", {"stage": "devices", "index": 1, "total": 1})]


def test_frames_split_at_every_byte(server: SSEServer) -> None:
    server.route(STREAM, sse(*(WIRE[i : i + 1] for i in range(len(WIRE)))))
    outcome = run(config(server.url))
    assert outcome.ok and outcome.details == {"counts": {"devices": 7}}


def test_frames_split_at_every_boundary(server: SSEServer) -> None:
    cfg = config(server.url)
    trigger = HttpTrigger(cfg, Clock())

    async def every_split() -> list[Outcome]:
        outcomes = []
        for cut in range(1, len(WIRE)):
            server.route(STREAM, sse(WIRE[:cut], WIRE[cut:]))
            outcomes.append(await asyncio.wait_for(trigger.run(context()), GUARD_SECONDS))
        return outcomes

    outcomes = asyncio.run(every_split())
    assert all(o.ok and o.details == {"counts": {"devices": 7}} for o in outcomes)
    assert len(server.requests) == len(WIRE) - 1


def test_a_several_megabyte_event(server: SSEServer) -> None:
    records = [{"id": i, "name": f"vm-{i:06d}", "pad": "x" * 200} for i in range(25_000)]
    big = frame(
        "complete", {"ok": True, "result": {"virtual_machines": records, "virtual_machines_count": 25_000}}
    )
    assert len(big) > 5_000_000
    outcome = serve(server, sse(STARTED, *(big[i : i + 65536] for i in range(0, len(big), 65536))))
    assert outcome.ok and outcome.details == {"counts": {"virtual_machines": 25_000}}


def test_event_over_the_cap_fails_cleanly(server: SSEServer) -> None:
    outcome = serve(
        server, sse(STARTED, b"data: " + b"x" * 4096 + b"\n\n", DONE), PROXBOX_SSE_MAX_EVENT_BYTES="1024"
    )
    assert outcome.status is Status.FAILURE
    assert outcome.reason == (
        "an event from proxbox-api is larger than PROXBOX_SSE_MAX_EVENT_BYTES=1024; "
        "raise it if the cluster is that large; last stage: devices"
    )


# ---------------------------------------------------------------- verdicts from the stream


def test_complete_ok_false(server: SSEServer) -> None:
    bad = frame(
        "complete", {"ok": False, "message": "NetBox REST request failed", "errors": [{"detail": "500"}]}
    )
    outcome = serve(server, sse(STARTED, bad))
    assert outcome == Outcome.failure("NetBox REST request failed: 500; last stage: devices")


def test_error_event_decides_and_closes_without_waiting(server: SSEServer) -> None:
    error = frame("error", {"step": "full-update", "status": "failed", "error": "boom", "detail": None})
    outcome = serve(server, sse(STARTED, error, Stall()))
    assert outcome == Outcome.failure("boom; last stage: devices")
    assert server.disconnected.wait(5)


def test_degraded_success(server: SSEServer) -> None:
    summary = frame("phase_summary", {"status": "completed_with_errors", "result": {"failed": 2}})
    done = frame("complete", {"ok": True, "result": {"devices_count": 1, "warnings": ["w"]}})
    outcome = serve(server, sse(STARTED, summary, done))
    assert outcome.ok and outcome.degraded
    assert outcome.details == {"counts": {"devices": 1}, "warnings": 1, "failed_objects": 2}


def test_stream_cut_mid_body(server: SSEServer) -> None:
    outcome = serve(server, sse(STARTED, b"event: step\ndata: {", cut=True))
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith("the stream ended before proxbox-api reported a result (connection to ")
    assert outcome.reason.endswith("; last stage: devices")


def test_stream_closed_cleanly_without_terminal_event(server: SSEServer) -> None:
    outcome = serve(server, sse(STARTED, frame("step", {"step": "device"}), chunked=False))
    assert outcome == Outcome.failure(
        "the stream ended before proxbox-api reported a result; last stage: devices"
    )


# ---------------------------------------------------------------- timeouts


def test_idle_stall_fails_with_idle_timeout(server: SSEServer) -> None:
    began = time.monotonic()
    outcome = serve(server, sse(STARTED, Stall()), PROXBOX_API_IDLE_TIMEOUT="0.3")
    assert outcome == Outcome.failure("idle timeout: no data from proxbox-api for 0.3 s; last stage: devices")
    assert time.monotonic() - began < 10
    assert server.disconnected.wait(5)


def test_keepalives_reset_the_idle_timeout(server: SSEServer) -> None:
    """Keep-alives every 0.1 s for 1.5 s against a 0.6 s idle timeout: the run still succeeds."""
    body: list[Any] = [STARTED]
    for _ in range(15):
        body += [b": keepalive\n\n", Pause(0.1)]
    outcome = serve(server, sse(*body, DONE), PROXBOX_API_IDLE_TIMEOUT="0.6")
    assert outcome.ok


def test_keepalive_only_stream_is_left_to_the_total_timeout(server: SSEServer) -> None:
    body: list[Any] = [STARTED]
    for _ in range(100):
        body += [b": keepalive\n\n", Pause(0.1)]
    server.route(STREAM, sse(*body))
    trigger = HttpTrigger(config(server.url, PROXBOX_API_IDLE_TIMEOUT="0.6"), Clock())
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(trigger.run(context()), 2.0))


# ---------------------------------------------------------------- HTTP status answers


def test_401_is_an_auth_failure(server: SSEServer) -> None:
    outcome = serve(server, json_reply(401, b'{"detail":"Invalid API key. 4 attempts remaining."}'))
    assert outcome.status is Status.FAILURE and outcome.auth_rejected
    assert outcome.reason == "API key rejected (HTTP 401)"
    assert outcome.details["server_message"] == "Invalid API key. 4 attempts remaining."


def test_403_is_an_auth_failure(server: SSEServer) -> None:
    outcome = serve(server, json_reply(403, b"{}"))
    assert outcome.auth_rejected and outcome.reason == "API key rejected (HTTP 403)"


def test_429_retry_after_seconds(server: SSEServer) -> None:
    body = b'{"detail":"Too many failed authentication attempts. Please try again later."}'
    outcome = serve(server, json_reply(429, body, [("retry-after", "300")]))
    assert outcome.status is Status.FAILURE and outcome.min_wait == 300
    assert not outcome.auth_rejected


def test_503_retry_after_http_date(server: SSEServer) -> None:
    when = formatdate(time.time() + 120, usegmt=True)
    outcome = serve(server, json_reply(503, b"{}", [("Retry-After", when)]))
    assert outcome.min_wait is not None and 115 <= outcome.min_wait <= 121


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            400,
            b'{"message":"No NetBox endpoint found","detail":"Please add a NetBox endpoint in the database"}',
            "HTTP 400 from proxbox-api: No NetBox endpoint found: "
            "Please add a NetBox endpoint in the database",
        ),
        (
            502,
            b'{"message":"NetBox endpoint is not reachable","detail":{"cause":"ClientConnectorError"}}',
            'HTTP 502 from proxbox-api: NetBox endpoint is not reachable: {"cause":"ClientConnectorError"}',
        ),
    ],
)
def test_error_bodies_are_quoted(server: SSEServer, status: int, body: bytes, reason: str) -> None:
    outcome = serve(server, json_reply(status, body))
    assert outcome == Outcome.failure(reason, details={"http_status": status})


def test_huge_error_body_is_not_downloaded_whole(server: SSEServer) -> None:
    chunks = [b'{"message": "' + b"m" * 1000] + [b"x" * 65536] * 200
    outcome = serve(server, Reply(500, [("Content-Type", "application/json")], [*chunks, Stall()]))
    assert outcome.reason == "HTTP 500 from proxbox-api: " + '{"message": "' + "m" * 186 + "…"
    assert server.disconnected.wait(5)


def test_200_html_means_a_wrong_url(server: SSEServer) -> None:
    outcome = serve(server, Reply(200, [("Content-Type", "text/html")], [b"<html>NetBox</html>"]))
    assert outcome.status is Status.FAILURE
    assert outcome.reason == (
        f"{server.url}{STREAM} answered 200 with text/html instead of text/event-stream; "
        "the URL is probably wrong (check PROXBOX_API_URL and PROXBOX_SYNC_PATH)"
    )


def test_404_means_a_wrong_url(server: SSEServer) -> None:
    outcome = run(config(server.url, PROXBOX_SYNC_PATH="/nope"))
    assert "URL is probably wrong" in outcome.reason


def test_redirect_is_not_followed(server: SSEServer) -> None:
    outcome = serve(server, Reply(302, [("Location", "https://elsewhere/x"), ("Content-Length", "0")], []))
    assert outcome.reason.startswith("proxbox-api redirected (HTTP 302) to https://elsewhere/x")
    assert len(server.requests) == 1


# ---------------------------------------------------------------- TLS and connection errors


def test_tls_with_private_ca(tls_server: SSEServer, ca_file: Path) -> None:
    tls_server.route(STREAM, sse(DONE))
    assert run(config(tls_server.url, PROXBOX_API_CA_BUNDLE=str(ca_file))).ok


def test_tls_untrusted_certificate(tls_server: SSEServer) -> None:
    tls_server.route(STREAM, sse(DONE))
    outcome = run(config(tls_server.url))
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith("TLS certificate verification failed for 127.0.0.1: ")
    assert tls_server.requests == []


def test_tls_verification_off(tls_server: SSEServer) -> None:
    tls_server.route(STREAM, sse(DONE))
    assert run(config(tls_server.url, PROXBOX_API_VERIFY_SSL="false")).ok


def test_tls_against_a_plain_http_server(server: SSEServer, ca_file: Path) -> None:
    outcome = run(config(server.url.replace("http:", "https:"), PROXBOX_API_CA_BUNDLE=str(ca_file)))
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith(f"TLS handshake with https://127.0.0.1:{server.port} failed")


def test_ca_bundle_spoiled_after_startup_fails_the_run_cleanly(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    cfg = config("https://127.0.0.1:1", PROXBOX_API_CA_BUNDLE=str(bundle))  # valid at startup
    bundle.write_text("not a certificate")
    outcome = run(cfg)
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith(f"cannot load PROXBOX_API_CA_BUNDLE {bundle}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    port = free_port()
    outcome = run(config(f"http://127.0.0.1:{port}"))
    assert outcome == Outcome.failure(f"connection refused to http://127.0.0.1:{port}")


def test_unknown_host() -> None:
    outcome = run(config("http://proxbox-api.invalid:8000"))
    assert outcome == Outcome.failure("cannot resolve host proxbox-api.invalid")


# ---------------------------------------------------------------- busy check

IDLE = b'{"active":false,"started_at":null,"id":null,"kind":null,"runs":[]}'
BUSY = b'{"active":true,"id":"5ae9cfa8","kind":"full-update","runs":[]}'


def probed(server: SSEServer, probe: Reply) -> Outcome:
    server.route("/sync/active", probe)
    server.route(STREAM, sse(DONE))
    return run(config(server.url, PROXBOX_SCHEDULER_SKIP_IF_ACTIVE="true"))


def test_busy_probe_skips_without_a_stream_request(server: SSEServer) -> None:
    outcome = probed(server, json_reply(200, BUSY))
    assert outcome == Outcome.skipped("busy", "proxbox-api is already running a sync (id 5ae9cfa8)")
    assert server.paths() == ["/sync/active"]
    assert server.requests[0].headers["x-proxbox-api-key"] == KEY


def test_idle_probe_lets_the_run_go_ahead(server: SSEServer) -> None:
    assert probed(server, json_reply(200, IDLE)).ok
    assert server.paths() == ["/sync/active", STREAM]


def test_probe_404_lets_the_run_go_ahead(server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER.name)
    assert probed(server, json_reply(404, b'{"detail":"Not Found"}')).ok
    assert server.paths() == ["/sync/active", STREAM]
    assert any("no /sync/active" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


def test_broken_probe_lets_the_run_go_ahead(server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    assert probed(server, sse(b'{"act', cut=True)).ok
    assert server.paths() == ["/sync/active", STREAM]
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_unreachable_probe_does_not_block(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    outcome = run(config(f"http://127.0.0.1:{port}", PROXBOX_SCHEDULER_SKIP_IF_ACTIVE="true"))
    assert outcome.reason == f"connection refused to http://127.0.0.1:{port}"
    assert any("busy check failed" in r.getMessage() for r in caplog.records)


def test_probe_401_ends_the_run_without_a_second_request(server: SSEServer) -> None:
    outcome = probed(server, json_reply(401, b'{"detail":"Invalid API key. 4 attempts remaining."}'))
    assert outcome.auth_rejected and outcome.reason == "API key rejected (HTTP 401)"
    assert server.paths() == ["/sync/active"]


def test_probe_429_ends_the_run_with_its_wait(server: SSEServer) -> None:
    outcome = probed(server, json_reply(429, b"{}", [("Retry-After", "60")]))
    assert outcome.status is Status.FAILURE and outcome.min_wait == 60
    assert server.paths() == ["/sync/active"]


# ---------------------------------------------------------------- secrets and cancellation


def test_key_never_logged_nor_in_reasons(
    server: SSEServer, tls_server: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = json.dumps({"detail": f"bad key {KEY}"}).encode()
    outcomes = [
        probed(server, json_reply(200, IDLE)),
        serve(server, json_reply(401, echo)),
        serve(server, json_reply(500, echo)),
        serve(server, sse(STARTED, frame("error", {"error": f"rejected {KEY}"}))),
        run(config(tls_server.url, PROXBOX_SCHEDULER_SKIP_IF_ACTIVE="true")),
        run(config(f"http://127.0.0.1:{free_port()}")),
    ]
    assert server.requests and all(r.headers.get("x-proxbox-api-key") == KEY for r in server.requests)
    for outcome in outcomes:
        assert KEY not in outcome.reason and KEY not in repr(outcome)
    assert caplog.records
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.__dict__)


def test_cancellation_closes_the_connection_promptly(server: SSEServer) -> None:
    sent = threading.Event()
    server.route(STREAM, sse(STARTED, Signal(sent), Stall()))
    trigger = HttpTrigger(config(server.url), Clock())
    progress = Progress()

    async def cancel_mid_stream() -> float:
        progress.started = asyncio.Event()
        task = asyncio.create_task(trigger.run(context(progress)))
        await asyncio.wait_for(progress.started.wait(), GUARD_SECONDS)
        task.cancel()
        began = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - began

    assert asyncio.run(cancel_mid_stream()) < 1.0
    assert sent.is_set()
    assert server.disconnected.wait(2)
