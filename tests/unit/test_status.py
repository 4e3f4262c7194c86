"""Status store (liveness, readiness, history), the HTML page and the metrics, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from prometheus_client.parser import text_string_to_metric_families

from proxbox_scheduler.core.outcome import Outcome, Progress, ProgressKind
from proxbox_scheduler.ops.page import View, render
from proxbox_scheduler.telemetry.metrics import Metrics
from proxbox_scheduler.telemetry.status import HISTORY, LOOP_ANSWER_SECONDS, StatusStore

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(ticker: Ticker) -> StatusStore:
    return StatusStore({"version": "1", "mode": "continuous"}, hard_limit=100.0, monotonic=ticker)


def test_ready_only_once_scheduling_and_not_after_stop() -> None:
    store = _store(Ticker())
    assert store.ready() == (False, "starting")
    store.job("default").on_waiting(T0, 5)
    assert store.ready()[0] is True
    store.job("default").on_stop()
    assert store.ready() == (False, "stopping")


def test_live_fails_when_the_event_loop_does_not_answer() -> None:
    asked: list[float] = []
    answers = [True, False]

    def probe(timeout: float) -> bool:
        asked.append(timeout)
        return answers[len(asked) - 1]

    store = StatusStore({}, hard_limit=100.0, monotonic=Ticker(), loop_probe=probe)
    assert store.live() == (True, "starting")
    ok, why = store.live()
    assert not ok and "not answered" in why
    assert asked == [LOOP_ANSWER_SECONDS, LOOP_ANSWER_SECONDS]


def test_live_fails_when_a_run_outlives_timeout_plus_grace() -> None:
    ticker = Ticker()
    store = _store(ticker)
    store.job("default").on_run_start("r1", T0)
    ticker.now = 99.0
    assert store.live()[0] is True
    ticker.now = 101.0
    ok, why = store.live()
    assert not ok and "r1" in why and "its run timeout" in why


def test_each_job_is_held_to_its_own_limit_and_named_by_its_own_setting() -> None:
    ticker = Ticker()
    limits = {"full": (3600.0, "PROXBOX_API_TIMEOUT"), "vms": (100.0, "jobs.toml: job vms: timeout")}
    jobs = [{"name": "full"}, {"name": "vms"}]
    store = StatusStore({}, hard_limit=3600.0, monotonic=ticker, jobs=jobs, limits=limits)
    store.job("full").on_run_start("r1", T0)
    store.job("vms").on_run_start("r2", T0)
    ticker.now = 101.0  # vms is wedged long before the longest limit of the process
    assert store.live() == (False, "run r2 of job vms is past jobs.toml: job vms: timeout plus the grace")


def test_history_keeps_the_last_twenty_newest_first_with_counts() -> None:
    store = _store(Ticker())
    for i in range(HISTORY + 5):
        store.job("default").on_run_start(f"r{i}", T0)
        store.job("default").on_run_end(f"r{i}", Outcome.success(details={"counts": {"devices": i}}), 1.5, 0)
    snap = store.snapshot()
    assert len(snap["runs"]) == HISTORY
    assert snap["runs"][0]["id"] == f"r{HISTORY + 4}" and snap["runs"][0]["counts"] == {
        "devices": HISTORY + 4
    }
    assert snap["last_success"] == T0.isoformat(timespec="milliseconds")


def test_current_run_follows_stage_progress() -> None:
    store = _store(Ticker())
    store.job("default").on_run_start("r1", T0)
    store.job("default").on_progress("r1", Progress(ProgressKind.STAGE_STARTED, stage="devices", total=12))
    store.job("default").on_progress("r1", Progress(ProgressKind.STAGE_COMPLETED, stage="devices"))
    store.job("default").on_progress("other", Progress(ProgressKind.STAGE_STARTED, stage="ignored"))
    current = store.snapshot()["current_run"]
    assert current["stage"] == "devices" and current["stages_done"] == 1 and current["stages_total"] == 12
    assert store.snapshot()["state"] == "running"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.scripts += tag == "script"


def test_page_escapes_reasons_and_draws_one_bar_per_run() -> None:
    store = _store(Ticker())
    store.job("default").on_run_start("a", T0)
    store.job("default").on_run_end("a", Outcome.failure("<script>alert(1)</script>"), 3.0, 30)
    store.job("default").on_run_start("b", T0)
    store.job("default").on_run_end("b", Outcome.success(degraded=True), 1.0, 0)
    page = render(store.snapshot(), View(now=T0 + timedelta(minutes=5)))
    parser = _Collector()
    parser.feed(page)
    assert parser.scripts == 1 and "&lt;script&gt;" in page and "<script>alert" not in page  # only /page.js
    assert parser.tags.count("rect") == 2 and parser.tags.count("tr") == 3  # header + two runs
    assert 'http-equiv="refresh"' not in page  # the script polls instead of reloading
    assert "o-failure" in page and "o-degraded" in page


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_follow_runs_skips_and_counts() -> None:
    registry = Metrics(version="1.2.3", mode="interval=60", invoke="http")
    metrics = registry.job("default")
    metrics.on_waiting(T0, 60)
    metrics.on_run_start("a", T0)
    metrics.on_run_end(
        "a", Outcome.success(details={"counts": {"devices": 3, "virtual_machines": 7}}), 2.0, 0
    )
    metrics.on_run_start("b", T0)
    metrics.on_run_end("b", Outcome.failure("x"), 1.0, 30)
    metrics.on_run_start("c", T0)
    metrics.on_run_end("c", Outcome.skipped("busy", "busy"), 0.1, 0)
    metrics.on_skip("overrun", 2, "")
    s = _samples(registry)
    assert (
        s[
            (
                "proxbox_scheduler_runs_total",
                (
                    ("job", "default"),
                    ("outcome", "success"),
                ),
            )
        ]
        == 1
    )
    assert (
        s[
            (
                "proxbox_scheduler_runs_total",
                (
                    ("job", "default"),
                    ("outcome", "failure"),
                ),
            )
        ]
        == 1
    )
    assert (
        s[
            (
                "proxbox_scheduler_runs_total",
                (
                    ("job", "default"),
                    ("outcome", "degraded"),
                ),
            )
        ]
        == 0
    )
    assert (
        s[
            (
                "proxbox_scheduler_skips_total",
                (
                    ("job", "default"),
                    ("reason", "busy"),
                ),
            )
        ]
        == 1
    )
    assert (
        s[
            (
                "proxbox_scheduler_skips_total",
                (
                    ("job", "default"),
                    ("reason", "overrun"),
                ),
            )
        ]
        == 2
    )
    assert s[("proxbox_scheduler_run_duration_seconds_count", (("job", "default"),))] == 2
    assert s[("proxbox_scheduler_consecutive_failures", (("job", "default"),))] == 1
    assert (
        s[
            (
                "proxbox_scheduler_last_sync_objects",
                (
                    ("job", "default"),
                    ("kind", "virtual_machines"),
                ),
            )
        ]
        == 7
    )
    assert s[("proxbox_scheduler_last_success_timestamp_seconds", (("job", "default"),))] == T0.timestamp()
    assert s[("proxbox_scheduler_next_run_timestamp_seconds", (("job", "default"),))] == T0.timestamp()
    assert s[("proxbox_scheduler_run_in_progress", (("job", "default"),))] == 0
    build = (
        "proxbox_scheduler_build_info",
        (("invoke", "http"), ("mode", "interval=60"), ("version", "1.2.3")),
    )
    assert s[build] == 1


def test_loop_probe_tells_a_turning_loop_from_a_stuck_one() -> None:
    import asyncio
    import threading

    from proxbox_scheduler.service import Service

    loop = asyncio.new_event_loop()
    release = threading.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        probe = Service._loop_probe(loop)
        assert probe(2.0) is True
        loop.call_soon_threadsafe(release.wait, 5.0)  # a callback that blocks the loop
        assert probe(0.2) is False
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert probe(0.2) is False  # closed loop


def test_a_gate_fails_readiness_and_sections_and_replicas_show_in_status() -> None:
    store = _store(Ticker())
    job = store.job("default")
    job.on_waiting(T0, 5)
    up = [True]
    store.gates.append(lambda: (True, "store up") if up[0] else (False, "state store db is unreachable"))
    store.sections["replica"] = lambda: {"leading": up[0]}
    assert store.ready() == (True, "waiting")
    up[0] = False
    assert store.ready() == (False, "state store db is unreachable")
    job.on_run_start("r1", T0)
    job.on_run_end("r1", Outcome.success(details={"replica": "pod-a"}), 1.0, 0.0)
    doc = store.snapshot()
    assert doc["replica"] == {"leading": False} and doc["runs"][0]["replica"] == "pod-a"


def test_status_lists_every_job_and_keeps_the_first_jobs_fields_on_top() -> None:
    from proxbox_scheduler.state import JobState, RunStart

    jobs = [{"name": "full", "mode": "cron=0 2 * * *"}, {"name": "vms", "mode": "interval=5"}]
    store = StatusStore({"version": "1"}, hard_limit=100.0, monotonic=Ticker(), jobs=jobs)
    lost = RunStart("gone", "vms", T0, "scheduled").interrupted(T0)
    store.job("vms").restore(JobState("vms", runs=(lost,), interrupted=(lost,)))
    store.job("full").on_run_start("r1", T0)
    snap = store.snapshot()
    assert snap["mode"] == "cron=0 2 * * *" and snap["current_run"]["id"] == "r1" and snap["version"] == "1"
    assert [job["name"] for job in snap["jobs"]] == ["full", "vms"]
    vms = store.snapshot("vms")
    assert vms["runs"][0]["outcome"] == "interrupted" and vms["runs"][0]["duration_s"] is None
    assert vms["current"] is None and vms["consecutive_failures"] == 0
    page = render(snap, View(now=T0))
    assert page.count('class="card"') == 2 and "interrupted" in page
    assert store.ready() == (False, "not ready: vms")  # full is running, vms not yet scheduling
