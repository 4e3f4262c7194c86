"""`proxbox-scheduler demo`: a newcomer sees a successful run and a live status page within seconds."""

from __future__ import annotations

import re
import signal
import time

from tests.support.http import http_get, metrics_samples
from tests.support.processes import CLI, base_env, event, poll, running

URL_LINE = re.compile(r"^\s*(status page|status JSON|metrics)\s+(http://127\.0\.0\.1:\d+/\S*)\s*$")


def banner_urls(proc: object) -> dict[str, str]:
    """The three URLs the demo prints first, by label."""
    urls: dict[str, str] = {}

    def match(line: str) -> bool:
        found = URL_LINE.match(line)
        if found:
            urls[found.group(1)] = found.group(2)
        return len(urls) == 3

    proc.out.wait_line(match, timeout=10)  # type: ignore[attr-defined]
    return urls


def test_demo_reaches_a_successful_run_serves_its_page_and_stops_on_sigint() -> None:
    with running([CLI, "demo", "--interval", "1"], base_env()) as proc:
        urls = banner_urls(proc)
        page_url, metrics_url = urls["status page"], urls["metrics"]
        assert page_url.endswith("/") and metrics_url == page_url + "metrics"
        proc.out.wait_line(
            lambda line: ("run finished" in line and "outcome=success" in line) or None, timeout=15
        )
        # the log line is written before the status store and metrics see the run: poll, do not race
        page = poll(lambda: (r := http_get(page_url)).status == 200 and "<svg" in r.text and r, 5, "a bar")
        assert "success" in page.text
        success = ("proxbox_scheduler_runs_total", frozenset({("job", "default"), ("outcome", "success")}))
        poll(
            lambda: metrics_samples(http_get(metrics_url).text).get(success, 0) >= 1, 5, "runs_total success"
        )
        proc.signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.err.text
        assert "demo finished" in proc.out.text
        assert "Traceback" not in proc.all_output()


def test_demo_with_a_duration_stops_by_itself_and_can_log_json() -> None:
    started = time.monotonic()
    with running([CLI, "demo", "--interval", "1", "--duration", "2.5", "--json"], base_env()) as proc:
        banner_urls(proc)
        finished = proc.wait_for(event("run finished"), timeout=10)
        assert finished["outcome"] == "success" and finished["run_id"]
        assert proc.wait(timeout=15) == 0, proc.err.text
        took = time.monotonic() - started
        proc.wait_for(event("demo finished"), timeout=0)
        assert "Traceback" not in proc.all_output()
    assert 2.5 <= took < 12, took
