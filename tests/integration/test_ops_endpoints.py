"""The operations server of a running `run` process: health, metrics, status JSON and page, healthcheck."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib.metadata import version
from typing import Any

import httpx
import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.http import http_get, metrics_samples
from tests.support.http import metric as any_metric
from tests.support.processes import CLI, Proc, base_env, event, free_port, poll, run_cli, running

KEY = "ops-test-key-9b2e41d7c3"
USER, PASSWORD = "scrapeuser", "url-pa55-7x1"
DEVICES, VMS = 3, 2
METRICS = (
    "proxbox_scheduler_runs_total",
    "proxbox_scheduler_skips_total",
    "proxbox_scheduler_run_duration_seconds_bucket",
    "proxbox_scheduler_run_duration_seconds_count",
    "proxbox_scheduler_run_duration_seconds_sum",
    "proxbox_scheduler_run_in_progress",
    "proxbox_scheduler_last_run_timestamp_seconds",
    "proxbox_scheduler_last_success_timestamp_seconds",
    "proxbox_scheduler_next_run_timestamp_seconds",
    "proxbox_scheduler_consecutive_failures",
    "proxbox_scheduler_build_info",
)


def metric(samples: Any, name: str, **labels: str) -> float:
    """A sample of the one job these processes run (every per-run metric has the ``job`` label)."""
    job = {} if name == "proxbox_scheduler_build_info" else {"job": "default"}
    return any_metric(samples, name, **job, **labels)


@dataclass
class Scheduler:
    proc: Proc
    base: str
    port: int
    emulator: Emulator

    def get(self, path: str) -> Any:
        return http_get(self.base + path)

    def status(self) -> dict[str, Any]:
        reply = self.get("/status")
        assert reply.status == 200
        return reply.json()

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        reply = self.get("/metrics")
        assert reply.status == 200
        return metrics_samples(reply.text)

    def wait_runs(self, count: int, timeout: float = 10.0) -> dict[str, Any]:
        """Poll /status until it lists ``count`` runs (it learns of a run after the log line)."""
        return poll(
            lambda: len((s := self.status())["runs"]) >= count and s, timeout, f"{count} runs in /status"
        )

    def wait_metric(self, name: str, at_least: float, timeout: float = 10.0, **labels: str) -> Any:
        """Poll /metrics until ``name{labels} >= at_least``; the samples that satisfied it."""

        def probe() -> Any:
            samples = self.samples()
            key = (name, frozenset({"job": "default", **labels}.items()))
            return samples if samples.get(key, float("-inf")) >= at_least else None

        return poll(probe, timeout, f"{name}{labels} >= {at_least}")


@contextmanager
def scheduler(emu: Emulator, *, api_url: str | None = None, **variables: str) -> Iterator[Scheduler]:
    """A `run` process against ``emu`` with its status server on a free loopback port."""
    port = free_port()
    env = base_env(
        PROXBOX_MODE="interval=1",
        PROXBOX_API_URL=api_url or emu.url,
        PROXBOX_API_KEY=KEY,
        PROXBOX_SCHEDULER_RUN_ON_START="true",
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
        PROXBOX_SCHEDULER_HTTP_PORT=str(port),
    )
    env.update(variables)
    with running([CLI, "run"], env) as proc:
        listening = proc.wait_for(event("status server listening"), timeout=10)
        assert listening["url"] == f"http://127.0.0.1:{port}/"
        yield Scheduler(proc, f"http://127.0.0.1:{port}", port, emu)


@pytest.fixture(scope="module")
def healthy() -> Iterator[Scheduler]:
    """Successful runs every second; the API URL carries user:password to check redaction."""
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.005, devices=DEVICES, virtual_machines=VMS))
    emu.start()
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{emu.port}"
    try:
        with scheduler(emu, api_url=url) as sched:
            sched.proc.wait_for(event("run finished", outcome="success"), timeout=10)
            sched.wait_runs(1)
            yield sched
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def failing() -> Iterator[Scheduler]:
    """Every run fails (the emulator's fail_every=1); never a success."""
    emu = Emulator(EmulatorSettings(key=KEY, fail_every=1)).start()
    try:
        with scheduler(emu, PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS="0.5") as sched:
            sched.proc.wait_for(event("run finished", outcome="failure"), timeout=10)
            sched.wait_runs(1)
            yield sched
    finally:
        emu.stop()


# ---------------------------------------------------------------- health


def test_livez_and_readyz_answer_200_while_scheduling(healthy: Scheduler) -> None:
    live, ready = healthy.get("/livez"), healthy.get("/readyz")
    assert live.status == 200 and ready.status == 200
    assert ready.text.strip() in ("waiting", "running")
    assert live.headers["Content-Type"].startswith("text/plain")


def test_readyz_is_200_once_waiting_for_the_first_fire() -> None:
    emu = Emulator(EmulatorSettings(key=KEY)).start()
    try:
        with scheduler(emu, PROXBOX_MODE="interval=3600", PROXBOX_SCHEDULER_RUN_ON_START="false") as sched:
            sched.proc.wait_for(event("waiting for the next run"), timeout=10)
            ready = poll(lambda: (r := sched.get("/readyz")).status == 200 and r, 5, "/readyz 200")
            assert ready.text.strip() == "waiting"
            assert sched.status()["next_fire"] is not None
            assert sched.status()["runs"] == []
    finally:
        emu.stop()


def test_unknown_paths_are_404(healthy: Scheduler) -> None:
    for path in ("/nope", "/metricsx", "/status/extra", "/livez/"):
        assert healthy.get(path).status == 404, path


# ---------------------------------------------------------------- metrics


def test_metrics_after_a_success_have_every_family_and_the_right_values(healthy: Scheduler) -> None:
    samples = healthy.wait_metric("proxbox_scheduler_runs_total", 1, outcome="success")
    names = {name for name, _ in samples}
    for name in METRICS:
        assert name in names, name
    assert metric(samples, "proxbox_scheduler_last_sync_objects", kind="devices") == DEVICES
    assert metric(samples, "proxbox_scheduler_last_sync_objects", kind="virtual_machines") == VMS
    assert metric(samples, "proxbox_scheduler_consecutive_failures") == 0
    assert metric(samples, "proxbox_scheduler_runs_total", outcome="failure") == 0
    assert metric(samples, "proxbox_scheduler_run_duration_seconds_count") >= 1
    assert metric(samples, "proxbox_scheduler_run_in_progress") in (0, 1)
    for reason in ("overrun", "busy", "backoff"):
        metric(samples, "proxbox_scheduler_skips_total", reason=reason)
    now = time.time()
    last_success = metric(samples, "proxbox_scheduler_last_success_timestamp_seconds")
    assert now - 60 < last_success <= now
    assert metric(samples, "proxbox_scheduler_last_run_timestamp_seconds") >= last_success
    assert metric(samples, "proxbox_scheduler_next_run_timestamp_seconds") > now - 60
    build = metric(
        samples,
        "proxbox_scheduler_build_info",
        version=version("proxbox-scheduler"),
        mode="interval=1",
        invoke="http",
    )
    assert build == 1


def test_metrics_and_status_never_show_the_key_or_url_credentials(healthy: Scheduler) -> None:
    healthy.wait_metric("proxbox_scheduler_runs_total", 1, outcome="success")
    for path in ("/metrics", "/status", "/"):
        text = healthy.get(path).text
        for secret in (KEY, PASSWORD, USER):
            assert secret not in text, (path, secret)
    for secret in (KEY, PASSWORD):
        assert secret not in healthy.proc.all_output()


def test_metrics_after_failures(failing: Scheduler) -> None:
    samples = failing.wait_metric("proxbox_scheduler_runs_total", 1, outcome="failure")
    assert metric(samples, "proxbox_scheduler_consecutive_failures") >= 1
    assert metric(samples, "proxbox_scheduler_runs_total", outcome="success") == 0
    assert metric(samples, "proxbox_scheduler_last_success_timestamp_seconds") == 0
    assert metric(samples, "proxbox_scheduler_last_run_timestamp_seconds") > 0
    status = failing.status()
    assert status["last_success"] is None
    assert status["runs"] and all(run["outcome"] == "failure" and run["reason"] for run in status["runs"])


def test_metrics_after_a_degraded_run() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, degraded=True)).start()
    try:
        with scheduler(emu, PROXBOX_MODE="interval=3600") as sched:
            sched.proc.wait_for(event("run finished"), timeout=10)
            samples = sched.wait_metric("proxbox_scheduler_runs_total", 1, outcome="degraded")
            assert metric(samples, "proxbox_scheduler_runs_total", outcome="success") == 0
            assert metric(samples, "proxbox_scheduler_runs_total", outcome="failure") == 0
            assert metric(samples, "proxbox_scheduler_consecutive_failures") == 0
            assert metric(samples, "proxbox_scheduler_last_success_timestamp_seconds") > 0
            assert sched.wait_runs(1)["runs"][0]["outcome"] == "degraded"
    finally:
        emu.stop()


def test_busy_skip_then_a_slow_run_that_the_ops_server_reports_without_blocking() -> None:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.25, keepalive_interval=1.0)).start()
    try:
        with (
            httpx.Client(base_url=emu.url, headers={"X-Proxbox-API-Key": KEY}, timeout=10) as client,
            client.stream("GET", "/full-update/stream") as other,
        ):
            assert other.status_code == 200
            assert client.get("/sync/active").json()["active"] is True
            with scheduler(emu) as sched:
                skipped = sched.proc.wait_for(event("run finished"), timeout=10)
                assert skipped["outcome"] == "skipped"
                samples = sched.wait_metric("proxbox_scheduler_skips_total", 1, reason="busy")
                assert metric(samples, "proxbox_scheduler_runs_total", outcome="success") == 0
                other.close()
                assert emu.wait_until(lambda: emu.active_runs == 0, timeout=5)
                _check_a_run_in_flight(sched)
    finally:
        emu.stop()


def _check_a_run_in_flight(sched: Scheduler) -> None:
    emu = sched.emulator
    assert emu.wait_until(lambda: emu.active_runs == 1, timeout=10), sched.proc.all_output()
    status = poll(lambda: (s := sched.status())["state"] == "running" and s, 5, 'state "running"')
    assert emu.active_runs == 1, "the run ended before it was observed; make the emulator slower"
    current = status["current_run"]
    assert current and current["id"] and current["start"]
    assert status["next_fire"] is None
    for path in ("/livez", "/readyz", "/metrics", "/status", "/"):
        reply = sched.get(path)
        assert reply.status == 200, path
        assert reply.elapsed < 0.5, (path, reply.elapsed)
    samples = sched.samples()
    assert metric(samples, "proxbox_scheduler_run_in_progress") == 1
    page = sched.get("/").text
    assert "running" in page and current["id"] in page
    finished = sched.proc.wait_for(event("run finished", run_id=current["id"]), timeout=10)
    assert finished["outcome"] == "success"


# ---------------------------------------------------------------- status JSON and page


RUN_KEYS = {"id", "start", "duration_s", "outcome", "reason", "counts"}


def test_status_json_describes_the_scheduler_and_its_runs(healthy: Scheduler) -> None:
    status = healthy.status()
    for key in ("version", "mode", "zone", "invoke", "target", "state", "next_fire", "current_run", "runs"):
        assert key in status, key
    assert status["version"] == version("proxbox-scheduler")
    assert (status["mode"], status["zone"], status["invoke"]) == ("interval=1", "UTC", "http")
    assert status["target"] == f"http://***@127.0.0.1:{healthy.emulator.port}/full-update/stream"
    assert status["state"] in ("waiting", "running")
    assert 1 <= len(status["runs"]) <= 20
    for run in status["runs"]:
        assert set(run) >= RUN_KEYS, run
        assert run["outcome"] == "success"
        assert isinstance(run["duration_s"], float) and run["duration_s"] >= 0
        assert run["counts"]["devices"] == DEVICES
        assert run["counts"]["virtual_machines"] == VMS
        datetime.fromisoformat(run["start"])
    starts = [datetime.fromisoformat(run["start"]) for run in status["runs"]]
    assert starts == sorted(starts, reverse=True), "newest run first"
    assert datetime.fromisoformat(status["last_success"]) == starts[0]
    assert datetime.now(UTC) - starts[0] < timedelta(seconds=60)


class PageParser(HTMLParser):
    """Counts what the status page must contain and checks tags are balanced where it matters."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input", "rect", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.svgs = self.rects = self.body_rows = self.head_rows = 0
        self.refresh: str | None = None
        self.codes: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            self.refresh = values.get("content")
        if tag == "svg":
            self.svgs += 1
        elif tag == "rect":
            self.rects += 1
        elif tag == "tr":
            if "tbody" in self.stack:
                self.body_rows += 1
            elif "thead" in self.stack:
                self.head_rows += 1
        self._in_code = tag == "code" and "tbody" in self.stack
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.codes.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_code = False
        if tag in self.VOID and tag != "rect":
            return
        if tag == "rect":
            # <rect ...><title/></rect>: the start tag was not pushed; its title closes on its own
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def stable_page(sched: Scheduler) -> tuple[dict[str, Any], str]:
    """/status and / taken with no run finishing in between (retried until so)."""

    def probe() -> tuple[dict[str, Any], str] | None:
        before = sched.status()
        page = sched.get("/")
        after = sched.status()
        same = [r["id"] for r in before["runs"]] == [r["id"] for r in after["runs"]]
        return (after, page.text) if page.status == 200 and same else None

    return poll(probe, 10, "a stable status snapshot")


def test_status_page_has_a_bar_and_a_row_per_run(healthy: Scheduler) -> None:
    healthy.wait_runs(2)
    status, html = stable_page(healthy)
    reply = healthy.get("/")
    assert reply.headers["Content-Type"].startswith("text/html")
    page = parse_page(html)
    runs = status["jobs"][0]["runs"]
    assert len(runs) >= 2
    assert page.rects == len(runs)  # one timeline bar per run in the window
    assert html.count('<g class="run ') == len(runs)
    assert page.codes == [run["id"][:8] for run in runs[:20]]  # the runs table, newest first
    assert page.refresh is None  # the page's script polls /status instead of reloading
    assert page.problems == [] and page.stack == [], (page.problems, page.stack)


def test_history_is_capped_at_20_runs() -> None:
    emu = Emulator(EmulatorSettings(key=KEY)).start()
    try:
        with scheduler(emu, PROXBOX_MODE="continuous", PROXBOX_SCHEDULER_RUN_ON_START="false") as sched:
            poll(lambda: emu.runs_completed >= 22, 30, "22 runs")
            status, html = stable_page(sched)
            assert len(status["runs"]) == 20  # the top-level list; jobs[].runs keep more for the timeline
            assert len(status["jobs"][0]["runs"]) > 20
            page = parse_page(html)
            assert len(page.codes) == 20  # the runs table
            samples = sched.samples()
            assert metric(samples, "proxbox_scheduler_runs_total", outcome="success") >= 21
    finally:
        emu.stop()


# ---------------------------------------------------------------- healthcheck


def test_healthcheck_is_0_against_the_live_process(healthy: Scheduler) -> None:
    done = run_cli(["healthcheck", "--port", str(healthy.port)], base_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("healthy")


def test_healthcheck_with_a_generous_max_age_is_0(healthy: Scheduler) -> None:
    done = run_cli(["healthcheck", "--port", str(healthy.port), "--max-age", "3600"], base_env())
    assert done.returncode == 0, done.stderr
    assert "last successful sync" in done.stdout


def test_healthcheck_with_a_tiny_max_age_is_1(healthy: Scheduler) -> None:
    # the last success started before its run finished, so it is older than a millisecond by now
    done = run_cli(["healthcheck", "--port", str(healthy.port), "--max-age", "0.001"], base_env())
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("unhealthy") and "--max-age" in done.stderr


def test_healthcheck_is_1_when_nothing_listens() -> None:
    done = run_cli(["healthcheck", "--port", str(free_port())], base_env())
    assert done.returncode == 1
    assert done.stderr.startswith("unhealthy")


def test_healthcheck_reads_the_port_from_the_environment(healthy: Scheduler) -> None:
    env = base_env(PROXBOX_SCHEDULER_HTTP_PORT=str(healthy.port), PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1")
    assert run_cli(["healthcheck"], env).returncode == 0


def test_healthcheck_without_any_success(failing: Scheduler) -> None:
    alive = run_cli(["healthcheck", "--port", str(failing.port)], base_env())
    assert alive.returncode == 0, alive.stderr
    done = run_cli(["healthcheck", "--port", str(failing.port), "--max-age", "3600"], base_env())
    assert done.returncode == 1
    assert "no successful sync yet" in done.stderr


def test_a_second_process_on_the_same_port_exits_2(healthy: Scheduler) -> None:
    env = base_env(
        PROXBOX_MODE="interval=3600",
        PROXBOX_API_URL=healthy.emulator.url,
        PROXBOX_SCHEDULER_HTTP_HOST="127.0.0.1",
        PROXBOX_SCHEDULER_HTTP_PORT=str(healthy.port),
    )
    done = run_cli(["run"], env, timeout=15)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PROXBOX_SCHEDULER_HTTP_PORT" in lines[0] and str(healthy.port) in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert healthy.get("/livez").status == 200, "the first process keeps serving"
