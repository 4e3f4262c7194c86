"""Issue 10, the ops server under a real slow-connection flood on 127.0.0.1, HEAD, and its URL for ::1."""

from __future__ import annotations

import http.client
import select
import socket

from tests.support.hostile import open_fds, proc_status
from tests.support.http import http_get
from tests.support.processes import CLI, base_env, event, free_port, poll, running

FLOOD = 200
"""Slow connections opened at once: well past the cap (32), bounded so the test stays small."""


def ops_env(port: int, **variables: str) -> dict[str, str]:
    env = base_env(
        PROXBOX_MODE="interval=0.5",
        PROXBOX_SCHEDULER_INVOKE="exec",
        PROXBOX_SCHEDULER_EXEC_CMD="true",
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
    )
    env.update(variables)
    return env


def _slow_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: flood\r\n")  # headers never finished
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def test_a_slow_connection_flood_is_capped_and_timed_out_while_runs_go_on() -> None:
    port = free_port()
    with running([CLI, "run"], ops_env(port)) as proc:
        proc.wait_for(event("status server listening"), timeout=15)
        flood = [_slow_connection(port) for _ in range(FLOOD)]
        try:
            # excess connections are closed at once, not queued behind the slow ones
            poll(lambda: sum(map(_closed_by_server, flood)) >= FLOOD - 40, 10, "excess connections closed")
            threads, fds = proc_status(proc.pid, "Threads"), open_fds(proc.pid)
            assert threads < 50, threads
            assert fds < 80, fds
            mark = proc.out.mark()
            proc.wait_for(event("run finished", outcome="success"), timeout=15, since=mark)
            # the slow ones are dropped after the read timeout, and /livez answers again
            poll(lambda: all(_closed_by_server(s) or s.fileno() < 0 for s in flood), 15, "read timeouts")
            assert poll(
                lambda: http_get(f"http://127.0.0.1:{port}/livez", timeout=2).status == 200, 10, "livez"
            )
        finally:
            for sock in flood:
                sock.close()


def test_head_answers_like_get_without_a_body() -> None:
    port = free_port()
    with running([CLI, "run"], ops_env(port, PROXBOX_MODE="interval=3600")) as proc:
        proc.wait_for(event("status server listening"), timeout=15)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("HEAD", "/livez")
        response = conn.getresponse()
        body = response.read()
        conn.close()
    assert response.status == 200
    assert int(response.getheader("Content-Length", "0")) > 0
    assert body == b""


def test_the_ops_url_for_ipv6_loopback_has_brackets() -> None:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    env = ops_env(port, PROXBOX_MODE="interval=3600", PROXBOX_SCHEDULER_HTTP_HOST="::1")
    with running([CLI, "run"], env) as proc:
        line = proc.wait_for(event("status server listening"), timeout=15)
        assert http_get(f"http://[::1]:{port}/livez").status == 200
    assert line["url"] == f"http://[::1]:{port}/"
