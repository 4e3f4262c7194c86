"""Issue 10 against a hostile local server: encodings, unbounded kinds, wrong URLs, caps, keys."""

from __future__ import annotations

import gzip
import json
import ssl
from pathlib import Path

import trustme

from tests.support.hostile import DONE, KEY, STREAM, frame, http_env
from tests.support.http import http_get
from tests.support.processes import CLI, event, free_port, run_cli, running
from tests.support.sse_server import Reply, Request, SSEServer, json_reply, sse

SSE_HEADERS = [("Content-Type", "text/event-stream")]


def test_a_compressed_stream_is_refused_not_decompressed(server: SSEServer) -> None:
    bomb = gzip.compress(gzip.compress(DONE + b": " + b"0" * 5_000_000 + b"\n\n"))
    headers = [*SSE_HEADERS, ("Content-Encoding", "gzip, gzip"), ("Content-Length", str(len(bomb)))]
    server.route(STREAM, Reply(200, headers, [bomb], chunked=False))
    done = run_cli(["once"], http_env(server.url))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Content-Encoding 'gzip, gzip'" in done.stderr
    assert "only identity is accepted" in done.stderr


def test_thousands_of_count_kinds_keep_metrics_and_status_small(server: SSEServer) -> None:
    result = {f"kind_{i}_count": i for i in range(20_000)} | {"devices_count": 3}
    server.route(STREAM, sse(frame("complete", {"ok": True, "result": result})))
    port = free_port()
    env = http_env(server.url, PROXBOX_MODE="continuous", PROXBOX_SCHEDULER_HTTP_PORT=str(port))
    with running([CLI, "run"], env) as proc:
        for _ in range(3):
            proc.wait_for(event("run finished", outcome="success"), timeout=30, since=proc.out.mark())
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        status = http_get(f"http://127.0.0.1:{port}/status")
    assert len(metrics.body) < 32_000, len(metrics.body)
    assert len(status.body) < 64_000, len(status.body)
    assert 'proxbox_scheduler_last_sync_objects{job="default",kind="devices"} 3.0' in metrics.text
    assert json.loads(status.body)["runs"][0]["counts"]["devices"] == 3


def test_a_404_html_page_leads_with_the_wrong_url_and_quotes_little(server: SSEServer) -> None:
    page = (
        b"<html><head><title>404 Not Found</title></head><body>" + b"<p>nginx</p>" * 500 + b"</body></html>"
    )
    server.route(
        STREAM,
        Reply(
            404, [("Content-Type", "text/html"), ("Content-Length", str(len(page)))], [page], chunked=False
        ),
    )
    done = run_cli(["once"], http_env(server.url))
    assert done.returncode == 1
    reason = done.stderr.strip().removeprefix("proxbox-scheduler: run failed: ")
    assert reason.startswith("HTTP 404 from proxbox-api: the URL is probably wrong"), reason
    assert "404 Not Found" in reason and "<" not in reason
    assert len(reason) < 250, reason


def test_a_capped_retry_after_says_the_real_wait(server: SSEServer) -> None:
    server.route(STREAM, json_reply(429, b'{"detail":"locked"}', [("Retry-After", "100000000000")]))
    env = http_env(
        server.url, PROXBOX_SCHEDULER_RUN_ON_START="true", PROXBOX_SCHEDULER_BACKOFF_MAX_SECONDS="3600"
    )
    with running([CLI, "run"], env) as proc:
        end = proc.wait_for(event("run finished"), timeout=15)
    assert end["backoff_s"] == 3600
    assert "waiting 3600 s" in end["reason"] and "e+" not in end["reason"], end["reason"]


def test_a_rejected_key_waits_the_floor_even_with_backoff_0(server: SSEServer) -> None:
    server.route(STREAM, json_reply(401, b'{"detail":"Invalid API key"}'))
    env = http_env(server.url, PROXBOX_MODE="continuous", PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS="0")
    with running([CLI, "run"], env) as proc:
        end = proc.wait_for(event("run finished"), timeout=15)
        proc.wait_for(event("waiting for the next run"), timeout=15, since=proc.out.mark() - 1)
        attempts = len(server.requests)
    assert end.get("backoff_s", 0) >= 30, end
    assert attempts == 1, attempts


def test_a_rotated_key_file_is_used_on_the_next_run(server: SSEServer, tmp_path: Path) -> None:
    accepted = {"key": "first-key-0001"}

    def answer(request: Request) -> Reply:
        if request.headers.get("x-proxbox-api-key") == accepted["key"]:
            return sse(DONE)
        return json_reply(401, b'{"detail":"Invalid API key"}')

    server.route(STREAM, answer)
    key_file = tmp_path / "key"
    key_file.write_text("first-key-0001\n")
    env = http_env(server.url, PROXBOX_MODE="interval=0.5", PROXBOX_API_KEY_FILE=str(key_file))
    del env["PROXBOX_API_KEY"]
    with running([CLI, "run"], env) as proc:
        proc.wait_for(event("run finished", outcome="success"), timeout=15)
        rotated = tmp_path / "key.new"
        rotated.write_text("second-key-0002\n")
        rotated.replace(key_file)  # as Kubernetes swaps a mounted Secret: a new file in place
        accepted["key"] = "second-key-0002"
        mark = proc.out.mark()
        end = proc.wait_for(event("run finished"), timeout=15, since=mark)
    assert end["outcome"] == "success", end
    assert "second-key-0002" not in proc.all_output()
    assert KEY not in proc.all_output()


def test_a_rotated_ca_bundle_is_used_on_the_next_run(tmp_path: Path) -> None:
    first, second = trustme.CA(), trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    first.issue_cert("127.0.0.1").configure_cert(context)
    server = SSEServer(tls=context).start()
    try:
        server.route(STREAM, sse(DONE))
        bundle = tmp_path / "ca.pem"
        first.cert_pem.write_to_path(str(bundle))
        env = http_env(server.url, PROXBOX_MODE="interval=0.5", PROXBOX_API_CA_BUNDLE=str(bundle))
        env["PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS"] = (
            "0"  # a run caught between the swaps retries at once
        )
        with running([CLI, "run"], env) as proc:
            proc.wait_for(event("run finished", outcome="success"), timeout=15)
            second.issue_cert("127.0.0.1").configure_cert(context)  # the server's new certificate
            rotated = tmp_path / "ca.new"
            second.cert_pem.write_to_path(str(rotated))
            rotated.replace(bundle)
            end = proc.wait_for(event("run finished"), timeout=15, since=proc.out.mark())
            if end["outcome"] != "success":  # a run may have started between the two swaps
                end = proc.wait_for(event("run finished"), timeout=15, since=proc.out.mark())
        assert end["outcome"] == "success", end
    finally:
        server.stop()
