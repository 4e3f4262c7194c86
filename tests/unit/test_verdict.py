"""The verdict on proxbox-api's real captured streams and HTTP answers, and on the protocol's edges."""

from __future__ import annotations

import itertools
import json
import logging
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from proxbox_scheduler.core.outcome import Outcome, Status
from proxbox_scheduler.proxbox import verdict as verdict_module
from proxbox_scheduler.proxbox.answers import (
    SettingNames,
    not_event_stream,
    probe_verdict,
    quote_body,
    retry_after,
    status_outcome,
)
from proxbox_scheduler.proxbox.protocol import STAGES
from proxbox_scheduler.proxbox.sse import Event, SSEDecoder
from proxbox_scheduler.proxbox.verdict import Milestone, StreamVerdict
from proxbox_scheduler.variables import name_of
from tests.support.captures import SAMPLES

NOW = 1_800_000_000.0
NAMES = SettingNames.of(name_of)


def sample(name: str) -> bytes:
    """A capture of proxbox-api's real answers, as bytes."""
    return (SAMPLES / name).read_bytes()


def replay(stream: bytes, chunk: int = 977) -> tuple[Outcome | None, list[Milestone], int]:
    """Decode and judge like the trigger: stop at the verdict; return it, milestones, events seen."""
    milestones: list[Milestone] = []
    decoder, judge, seen = SSEDecoder(), StreamVerdict(milestones.append), 0
    for i in range(0, len(stream), chunk):
        for event in decoder.feed(stream[i : i + chunk]):
            seen += 1
            outcome = judge.feed(event)
            if outcome is not None:
                return outcome, milestones, seen
    decoder.close()
    return judge.finish(), milestones, seen


def ev(name: str, data: Any) -> Event:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return Event(name, raw)


# ---------------------------------------------------------------- real captures


def test_ok_capture_is_a_success_with_its_counts() -> None:
    outcome, _, _ = replay(sample("sample-stream-ok.txt"))
    assert outcome is not None and outcome.status is Status.SUCCESS
    assert not outcome.degraded
    assert outcome.reason == "Full update sync completed."
    assert outcome.details == {
        "counts": {
            "devices": 1,
            "storage": 0,
            "virtual_machines": 2,
            "virtual_disks": 2,
            "task_history": 2,
            "backups": 1,
            "snapshots": 2,
            "node_interfaces": 2,
            "vm_interfaces": 2,
            "vm_ip_addresses": 2,
            "replications": 0,
            "backup_routines": 1,
        }
    }


def test_ok_capture_reports_every_stage_in_order() -> None:
    _, milestones, _ = replay(sample("sample-stream-ok.txt"))
    started = [m.progress.stage for m in milestones if m.progress.kind == "stage_started"]
    completed = [m for m in milestones if m.progress.kind == "stage_completed"]
    assert started == list(STAGES)
    assert [m.progress.stage for m in completed] == list(STAGES)
    assert [m.progress.index for m in completed] == list(range(1, 13))
    devices = completed[0]
    assert devices.progress.fields() == {
        "stage": "devices",
        "index": 1,
        "total": 12,
        "count": 1,
        "duration_s": 1.207,
    }
    assert devices.message == "stage devices completed (1/12): count=1 in 1.21 s"
    routines = completed[-1].progress
    assert (routines.created, routines.updated) == (1, 0)
    first = milestones[0]
    assert first.progress.kind == "stream_started"
    assert first.progress.operation_id == "bd5612d1-2840-4bf0-992a-9ac530b038ba"


def test_item_level_events_are_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes | str] = []
    real = verdict_module.parse_json

    def counting(raw: bytes | str) -> Any:
        parsed.append(raw)
        return real(raw)

    monkeypatch.setattr(verdict_module, "parse_json", counting)
    _, _, seen = replay(sample("sample-stream-ok.txt"))
    bodies = [json.loads(raw) for raw in parsed]
    # Parsed: stage and stream steps, "sync" steps that nest a stage name, phase summaries,
    # the full-update discovery and the final complete; never per-object steps or item_progress.
    allowed_steps = {*STAGES, "stream", "sync"}
    for body in bodies:
        assert (
            body.get("step") in allowed_steps
            or body.get("event") in ("phase_summary", "discovery")
            or ("ok" in body)
        ), body
    assert not [b for b in bodies if b.get("event") == "discovery" and b.get("phase") != "full-update"]
    assert 12 * 2 < len(parsed) < seen * 2 / 3


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "sample-stream-fail.txt",
            "Error getting node network interfaces from Proxmox; last stage: node-interfaces",
        ),
        (
            "sample-stream-fail-netbox-500.txt",
            "NetBox REST request failed: Injected fault (500) by fake NetBox; last stage: devices",
        ),
    ],
)
def test_failure_captures_fail_with_proxbox_message(name: str, reason: str) -> None:
    outcome, _, _ = replay(sample(name))
    assert outcome is not None and outcome.status is Status.FAILURE
    assert outcome.reason == reason
    assert not outcome.auth_rejected


def test_verdict_is_decided_at_the_error_event_before_complete() -> None:
    stream = sample("sample-stream-fail-netbox-500.txt")
    decoder, judge = SSEDecoder(), StreamVerdict()
    names = []
    for event in decoder.feed(stream):
        names.append(event.event)
        if judge.feed(event) is not None:
            break
    assert names[-1] == "error"
    assert b"event: complete" in stream


def test_netbox_down_capture_with_keepalives_fails_with_detail() -> None:
    outcome, _, _ = replay(sample("sample-stream-fail-netbox-down.txt"), chunk=64)
    assert outcome is not None and outcome.status is Status.FAILURE
    assert outcome.reason.startswith("Unable to list VMs for task-history sync: NetBox list")
    assert "Cannot connect to host 127.0.0.1:18001" in outcome.reason
    assert outcome.reason.endswith("; last stage: task-history")


def test_real_keepalive_gaps_stay_well_under_the_default_idle_timeout() -> None:
    """The timed capture of a 498 s failing run: bytes never stop for anywhere near 120 s."""
    stamps = []
    for line in sample("sample-stream-fail-netbox-down.timed.txt").decode().splitlines():
        stamp = line.strip().split(" ", 1)[0]
        if re.fullmatch(r"\d+\.\d+", stamp):
            stamps.append(float(stamp))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert stamps[-1] > 400
    assert max(gaps) < 120 / 4


def test_a_cut_capture_is_a_failure_naming_the_last_stage() -> None:
    stream = sample("sample-stream-ok.txt")
    cut = stream[: stream.index(b"event: complete")]
    outcome, _, _ = replay(cut)
    assert outcome is not None and outcome.status is Status.FAILURE
    assert outcome.reason == (
        "the stream ended before proxbox-api reported a result; last stage: backup-routines"
    )


def test_ok_capture_split_anywhere_mid_event_then_cut_fails() -> None:
    stream = sample("sample-stream-ok.txt")
    outcome, _, _ = replay(stream[:-2])  # complete's data line lacks its blank line
    assert outcome is not None and outcome.status is Status.FAILURE


# ---------------------------------------------------------------- terminal events


def test_success_event() -> None:
    outcome = StreamVerdict().feed(ev("complete", {"ok": True, "message": "fine"}))
    assert outcome is not None and outcome.ok and outcome.reason == "fine"


def test_failure_event() -> None:
    outcome = StreamVerdict().feed(ev("error", {"error": "boom", "detail": {"code": 7}}))
    assert outcome == Outcome.failure('boom: {"code":7}')


@pytest.mark.parametrize("name", ["completed", "done", "finished", "failed", "cancelled"])
def test_names_outside_the_contract_are_not_terminal(name: str) -> None:
    """Only the contract's `complete` and `error` end a run: a look-alike never counts as success."""
    judge = StreamVerdict()
    assert judge.feed(ev(name, {"ok": True, "message": "fine"})) is None
    assert not judge.finish().ok


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"detail": "only detail"}, "only detail"),
        ({"message": "msg"}, "msg"),
        ({"error": "same", "detail": "same"}, "same"),
        (b"plain text failure", "plain text failure"),
        ({}, "proxbox-api sent 'error' without a reason"),
    ],
)
def test_failure_reason_sources(data: Any, reason: str) -> None:
    outcome = StreamVerdict().feed(ev("error", data))
    assert outcome is not None and outcome.reason == reason


def test_complete_ok_false_is_a_failure_with_message_and_errors() -> None:
    data = {"ok": False, "message": "it broke", "errors": [{"detail": "disk full"}, "other"]}
    outcome = StreamVerdict().feed(ev("complete", data))
    assert outcome == Outcome.failure("it broke: disk full; other")
    bare = StreamVerdict().feed(ev("complete", {"ok": False}))
    assert bare == Outcome.failure("proxbox-api sent 'complete' with ok=false")


def test_complete_without_json_is_a_success() -> None:
    outcome = StreamVerdict().feed(ev("complete", b"done"))
    assert outcome is not None and outcome.ok and outcome.details == {"counts": {}}


def test_non_terminal_events_decide_nothing() -> None:
    judge = StreamVerdict()
    for name in ["message", "step", "discovery", "item_progress", "phase_summary", "error_detail"]:
        assert judge.feed(ev(name, b"{not json")) is None
    assert judge.finish().status is Status.FAILURE


def test_long_failure_reasons_are_clipped() -> None:
    outcome = StreamVerdict().feed(ev("error", {"error": "x" * 5000}))
    assert outcome is not None and len(outcome.reason) == verdict_module.REASON_CHARS


# ---------------------------------------------------------------- degraded runs


def summary(status: str, failed: int) -> Event:
    return ev("phase_summary", {"phase": "devices", "status": status, "result": {"failed": failed}})


def test_completed_with_errors_makes_a_degraded_success() -> None:
    judge = StreamVerdict()
    judge.feed(summary("completed_with_errors", 3))
    judge.feed(summary("completed", 0))
    judge.feed(summary("completed_with_errors", 2))
    outcome = judge.feed(ev("complete", {"ok": True, "result": {"devices_count": 4}}))
    assert outcome is not None and outcome.ok and outcome.degraded
    assert outcome.label == "degraded"
    assert outcome.details == {"counts": {"devices": 4}, "failed_objects": 5}


@pytest.mark.parametrize(
    ("result", "degraded", "warnings"),
    [
        ({"degraded": True}, True, None),
        ({"warnings": ["a", "b"]}, True, 2),
        ({"warnings": 3}, True, 3),
        ({"warnings": []}, False, 0),
        ({"degraded": False}, False, None),
    ],
)
def test_result_flags_degraded(result: dict[str, Any], degraded: bool, warnings: int | None) -> None:
    outcome = StreamVerdict().feed(ev("complete", {"ok": True, "result": result}))
    assert outcome is not None and outcome.ok
    assert outcome.degraded is degraded
    assert outcome.details.get("warnings") == warnings


def test_counts_ignore_non_integers() -> None:
    result = {"a_count": 1, "b_count": True, "c_count": "3", "devices": [{"big": "record"}]}
    outcome = StreamVerdict().feed(ev("complete", {"ok": True, "result": result}))
    assert outcome is not None and outcome.details == {"counts": {"a": 1}}


def test_stage_total_follows_the_full_update_discovery() -> None:
    milestones: list[Milestone] = []
    judge = StreamVerdict(milestones.append)
    judge.feed(ev("discovery", {"phase": "full-update", "count": 13}))
    judge.feed(ev("discovery", {"phase": "devices", "count": 99}))
    judge.feed(ev("step", {"step": "devices", "status": "started"}))
    assert milestones[0].progress.fields() == {"stage": "devices", "index": 1, "total": 13}


def test_nested_stage_names_in_item_steps_are_not_stages() -> None:
    milestones: list[Milestone] = []
    judge = StreamVerdict(milestones.append)
    judge.feed(ev("step", {"step": "sync", "payload": {"step": "backups", "status": "started"}}))
    judge.feed(ev("step", {"step": "device", "status": "completed"}))
    assert milestones == []


# ---------------------------------------------------------------- HTTP answers


def captured_responses() -> list[tuple[int, dict[str, str], bytes]]:
    """The full HTTP answers in http-error-responses.txt: status, headers, body."""
    text = sample("http-error-responses.txt").decode()
    found = []
    for block in re.finditer(r"HTTP/1\.1 (\d+) [^\n]*\n(.*?)\n\n(\{[^\n]*\})", text, re.S):
        headers = dict(line.split(": ", 1) for line in block.group(2).splitlines())
        found.append(
            (int(block.group(1)), {k.lower(): v for k, v in headers.items()}, block.group(3).encode())
        )
    return found


def test_captured_http_answers() -> None:
    outcomes = [status_outcome(s, h, b, NOW, NAMES) for s, h, b in captured_responses()]
    assert [o.details["http_status"] for o in outcomes] == [401, 429, 401, 401, 400, 502]
    missing_key, lockout, wrong_key, _, no_endpoint, unreachable = outcomes
    assert missing_key == Outcome.failure(
        "API key rejected (HTTP 401)",
        auth_rejected=True,
        details={"http_status": 401, "server_message": "API key required. 5 attempts remaining."},
    )
    assert wrong_key.auth_rejected and wrong_key.reason == "API key rejected (HTTP 401)"
    assert lockout.min_wait == 300 and not lockout.auth_rejected
    assert lockout.reason == (
        "proxbox-api is rate limiting (HTTP 429): Too many failed authentication attempts. "
        "Please try again later.; retry after 300 s"
    )
    assert no_endpoint.reason == (
        "HTTP 400 from proxbox-api: No NetBox endpoint found: Please add a NetBox endpoint in the database"
    )
    assert unreachable.reason.startswith(
        'HTTP 502 from proxbox-api: NetBox endpoint is not reachable: {"cause":"ClientConnectorError",'
    )
    quoted = unreachable.reason.removeprefix("HTTP 502 from proxbox-api: ")
    assert len(quoted) == 200 and quoted.endswith("…")


def test_captured_busy_answers() -> None:
    lines = [ln for ln in sample("sync-active-and-concurrency.txt").decode().splitlines()]
    bodies = [ln.encode() for ln in lines if ln.startswith('{"active"')]
    idle, active = (
        probe_verdict(200, {}, bodies[0], NOW, NAMES),
        probe_verdict(200, {}, bodies[1], NOW, NAMES),
    )
    assert idle.outcome is None and idle.note == ""
    assert active.outcome == Outcome.skipped(
        "busy", "proxbox-api is already running a sync (id 5ae9cfa8-2443-4b9f-b8aa-2e786bf2aad9)"
    )


def test_probe_answers_that_do_not_block() -> None:
    missing = probe_verdict(404, {}, b'{"detail":"Not Found"}', NOW, NAMES)
    assert missing.outcome is None and missing.level == logging.INFO and "older" in missing.note
    broken = probe_verdict(500, {}, b"oops", NOW, NAMES)
    assert broken.outcome is None and broken.level == logging.WARNING
    odd = probe_verdict(200, {}, b"[]", NOW, NAMES)
    assert odd.outcome is None and odd.level == logging.WARNING


def test_probe_answers_that_end_the_run() -> None:
    rejected = probe_verdict(403, {}, b"", NOW, NAMES).outcome
    assert rejected is not None and rejected.auth_rejected
    assert rejected.reason == "API key rejected (HTTP 403)"
    locked = probe_verdict(429, {"retry-after": "60"}, b"", NOW, NAMES).outcome
    assert locked is not None and locked.status is Status.FAILURE and locked.min_wait == 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("-3", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value, NOW) == expected


def test_503_with_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 42, UTC), usegmt=True)
    outcome = status_outcome(503, {"retry-after": when}, b"", NOW, NAMES)
    assert outcome.min_wait == 42
    assert outcome.reason == "proxbox-api is unavailable (HTTP 503); retry after 42 s"


def test_other_statuses() -> None:
    assert "URL is probably wrong" in status_outcome(404, {}, b'{"detail":"Not Found"}', NOW, NAMES).reason
    moved = status_outcome(302, {"location": "https://u:secret@elsewhere/x"}, b"", NOW, NAMES)
    assert "secret" not in moved.reason and "https://***@elsewhere/x" in moved.reason
    assert status_outcome(500, {}, b"", NOW, NAMES).reason == "HTTP 500 from proxbox-api"
    assert status_outcome(418, {}, b"short and stout", NOW, NAMES).reason == (
        "HTTP 418 from proxbox-api: short and stout"
    )


@pytest.mark.parametrize(
    ("body", "quote"),
    [
        (b'{"message": "m", "detail": {"a": 1, "b": [2]}}', 'm: {"a":1,"b":[2]}'),
        (b'{"detail": "d"}', "d"),
        (b'["x", 1]', '["x",1]'),
        (b"<html>\n  <p>Bad   gateway</p>\n</html>", "<html> <p>Bad gateway</p> </html>"),
        (b"", ""),
    ],
)
def test_quote_body(body: bytes, quote: str) -> None:
    assert quote_body(body) == quote


def test_not_event_stream_says_the_url_is_probably_wrong() -> None:
    outcome = not_event_stream("text/html; charset=utf-8", "http://h/full-update/stream", NAMES)
    assert outcome.status is Status.FAILURE
    assert outcome.reason.startswith("http://h/full-update/stream answered 200 with text/html instead")
    assert "probably wrong" in outcome.reason


def test_terminal_summary_keeps_counts_and_drops_the_synced_records() -> None:
    from proxbox_scheduler.proxbox.verdict import parse_summary

    records = [{"id": i, "name": f"vm-{i}", "custom_fields": {"proxmox_vm_id": i}} for i in range(50)]
    body = {
        "ok": True,
        "message": "Full update sync completed.",
        "result": {"virtual_machines": records, "virtual_machines_count": 50, "warnings": ["w1"]},
    }
    parsed = parse_summary(json.dumps(body).encode())
    assert parsed["ok"] is True and parsed["result"]["virtual_machines_count"] == 50
    assert parsed["result"]["virtual_machines"] == [None] * 50
    assert parsed["result"]["warnings"] == ["w1"]
    outcome = StreamVerdict().feed(Event("complete", json.dumps(body).encode()))
    assert outcome is not None and outcome.details["counts"] == {"virtual_machines": 50}
    assert outcome.degraded and outcome.details["warnings"] == 1


def test_an_active_run_older_than_the_run_timeout_is_stale_and_does_not_block() -> None:
    body = b'{"active":true,"started_at":"2026-11-29T19:11:43.473699Z","id":"5ae9","kind":"full-update"}'
    started = datetime(2026, 11, 29, 19, 11, 43, 473699, tzinfo=UTC).timestamp()
    fresh = probe_verdict(200, {}, body, started + 100, NAMES, stale_after=7200)
    assert fresh.outcome is not None and fresh.outcome.skip_reason == "busy"
    stale = probe_verdict(200, {}, body, started + 7201, NAMES, stale_after=7200)
    assert stale.outcome is None and stale.level == logging.WARNING
    assert "stale" in stale.note and "5ae9" in stale.note
    undated = b'{"active":true,"started_at":null,"id":"x"}'
    assert probe_verdict(200, {}, undated, started + 10**6, NAMES, stale_after=1).outcome is not None
