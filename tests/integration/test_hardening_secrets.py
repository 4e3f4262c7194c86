"""Issue 10, secrets: URL passwords with '@', malformed URLs, exec output and environment, query secrets."""

from __future__ import annotations

import pytest

from tests.support.hostile import DONE, KEY, STREAM, http_env
from tests.support.http import http_get
from tests.support.processes import CLI, base_env, event, free_port, log_docs, run_cli, running
from tests.support.sse_server import SSEServer, sse

PASSWORD = "Tr0ub@dor-PW"
TOKEN = "tok-5ecret-value-91"


def test_a_password_holding_at_signs_is_hidden_whole_everywhere() -> None:
    url = f"http://admin:{PASSWORD}@127.0.0.1:9"
    check = run_cli(["check", "--mode", "interval=60", "--api-url", url, "--count", "1"], base_env())
    assert check.returncode == 0, check.stderr
    assert "target http://***@127.0.0.1:9/full-update/stream" in check.stderr
    port = free_port()
    env = base_env(PROXBOX_MODE="interval=3600", PROXBOX_API_URL=url, PROXBOX_SCHEDULER_HTTP_PORT=str(port))
    with running([CLI, "run"], env) as proc:
        proc.wait_for(event("status server listening"), timeout=15)
        status = http_get(f"http://127.0.0.1:{port}/status").text
        page = http_get(f"http://127.0.0.1:{port}/").text
    shown = proc.all_output() + status + page + check.stderr + check.stdout
    for part in ("dor-PW", "Tr0ub", PASSWORD):
        assert part not in shown


@pytest.mark.parametrize(
    "url",
    [
        "http:admin:PW-s3cr3t@h",
        "http://admin:PW-s3cr3t/x@h",
        "http://admin:PW-s3cr3t#x@h",
        "http://admin:PW-s3cr3t@h:0",
    ],
)
def test_a_malformed_url_never_echoes_its_password(url: str) -> None:
    done = run_cli(["check", "--mode", "interval=60", "--api-url", url], base_env())
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxbox-scheduler: PROXBOX_API_URL="), done.stderr
    assert "PW-s3cr3t" not in done.stderr


def test_exec_output_is_scrubbed_and_the_child_does_not_get_the_key() -> None:
    command = 'sh -c \'echo "env:$PROXBOX_API_KEY"; echo "leak:$LEAK" >&2; exit 1\''
    env = base_env(
        PROXBOX_SCHEDULER_INVOKE="exec",
        PROXBOX_SCHEDULER_EXEC_CMD=command,
        PROXBOX_API_KEY=KEY,
        LEAK=KEY,
        PROXBOX_SCHEDULER_HTTP_PORT="0",
    )
    done = run_cli(["once"], env)
    assert done.returncode == 1
    assert KEY not in done.stdout + done.stderr
    lines = [doc["event"] for doc in log_docs(done.stdout) if doc.get("stream")]
    assert "env:" in lines, lines
    assert "leak:<redacted>" in lines, lines
    assert "last stderr: leak:<redacted>" in done.stderr


def test_secret_query_parameters_are_masked_wherever_a_url_is_shown(server: SSEServer) -> None:
    server.route(STREAM, sse(DONE))
    params = f"token={TOKEN}&dry_run=true"
    check = run_cli(
        ["check", "--api-url", server.url, "--mode", "interval=60", "--count", "1"],
        base_env(PROXBOX_SYNC_PARAMS=params),
    )
    assert f"{STREAM}?token=***&dry_run=true" in check.stderr, check.stderr
    once = run_cli(
        ["once"], http_env(server.url, PROXBOX_SYNC_PARAMS=params, PROXBOX_SCHEDULER_LOG_LEVEL="DEBUG")
    )
    assert once.returncode == 0, once.stderr
    assert ("token", TOKEN) in server.requests[-1].query  # it still goes to proxbox-api
    assert any(str(doc["event"]).startswith("requesting ") for doc in log_docs(once.stdout))
    assert TOKEN not in once.stdout + once.stderr + check.stderr + check.stdout
