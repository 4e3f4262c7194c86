"""The emulator's own contract against the real captures, its independence, and its settings table.

The expectations come from tests/data/samples (proxbox-api 0.0.30.post2), so a
drift in the emulator's copy of the contract fails here even though the
scheduler no longer shares it.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxbox_emulator import EmulatorSettings, SettingError
from proxbox_emulator.contract import (
    BOOTSTRAP_OBJECTS,
    DISCOVERY_ORDER,
    EVENTS,
    INVALID_ENDPOINT_IDS_BODY,
    KEY_HEADER,
    LOCKED_BODY,
    REJECT_BODIES,
    SECURITY_HEADERS,
    SERVER_HEADER,
    STAGE_LABELS,
    STAGE_ONLY_EVENTS,
    STAGE_PATHS,
    STAGES,
    STREAM_HEADERS,
    STREAM_PATH,
    SYNC_ACTIVE_PATH,
    key_invalid,
    key_required,
    stage_stream_wording,
)
from proxbox_emulator.settings import NON_NEGATIVE, add_arguments, flag_of, settings_from_args
from proxbox_emulator.stages import BODIES
from tests.support.captures import (
    STAGE_STREAMS,
    STREAMS,
    announced_stages,
    captured_stages,
    json_bodies,
    sample,
    stage_of,
    stream_events,
)

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "proxbox_emulator"

# ---------------------------------------------------------------- the contract vs the captures


def test_stages_are_the_captured_run_order() -> None:
    assert list(STAGES) == captured_stages()
    assert len(STAGES) == 12
    assert list(BODIES) == list(STAGES)


def test_discovery_order_is_the_captured_announcement() -> None:
    assert list(DISCOVERY_ORDER) == announced_stages()


def test_stage_labels_are_the_captured_wording() -> None:
    started = {
        data["step"]: data["message"]
        for name, data in stream_events("sample-stream-ok.txt")
        if name == "step" and data["step"] in STAGES and data["status"] == "started"
    }
    assert started == {stage: f"Starting {STAGE_LABELS[stage]} synchronization." for stage in STAGES}


def test_event_names_are_those_of_the_captures() -> None:
    captured = [name for stream in STREAMS for name, _ in stream_events(stream)]
    assert set(EVENTS) == set(captured)
    assert len(EVENTS) == len(set(EVENTS))


def test_bootstrap_objects_are_the_captured_ones() -> None:
    name, data = stream_events("sample-stream-ok.txt")[0]
    assert name == "bootstrap_done"
    assert tuple(data["created"] + data["unchanged"]) == BOOTSTRAP_OBJECTS


def test_stream_headers_are_the_captured_ones() -> None:
    lines = sample("sample-stream-ok.headers.txt").splitlines()[1:]
    captured = [tuple(line.split(": ", 1)) for line in lines if ": " in line]
    expected = [
        ("server", SERVER_HEADER),
        *STREAM_HEADERS,
        *SECURITY_HEADERS,
        ("transfer-encoding", "chunked"),
    ]
    assert [h for h in captured if h[0] != "date"] == expected


def test_paths_and_key_header_appear_in_the_captures() -> None:
    errors = sample("http-error-responses.txt")
    assert f"-H {KEY_HEADER}: " in errors
    assert f"{STREAM_PATH}\n" in errors
    assert f"GET {SYNC_ACTIVE_PATH}" in errors


def test_auth_and_rejection_bodies_are_the_captured_ones() -> None:
    bodies = json_bodies("http-error-responses.txt")
    assert key_required(5) in bodies
    assert key_invalid(4) in bodies and key_invalid(3) in bodies
    assert LOCKED_BODY in bodies
    assert REJECT_BODIES[400] in bodies
    captured_502 = next(body for body in bodies if body.get("message") == REJECT_BODIES[502]["message"])
    assert captured_502["detail"].keys() == REJECT_BODIES[502]["detail"].keys()
    assert captured_502["detail"]["cause"] == REJECT_BODIES[502]["detail"]["cause"]


# ---------------------------------------------------------------- per-stage streams vs their captures


def test_stage_paths_cover_every_stage_and_the_captured_requests() -> None:
    assert sorted(STAGE_PATHS.values()) == sorted(STAGES)
    for capture, request in STAGE_STREAMS.items():
        assert STAGE_PATHS[request.partition("?")[0]] == stage_of(capture), capture


def test_stage_stream_wording_is_the_captured_one() -> None:
    for capture in STAGE_STREAMS:
        stage = stage_of(capture)
        started, finished, completed, failed = stage_stream_wording(stage)
        events = stream_events(capture)
        steps = [d for n, d in events if n == "step" and d["step"] == stage]
        name, terminal = events[-1]
        assert name == "complete" and steps[0]["message"] == started, capture
        if terminal["ok"]:
            assert [d["status"] for d in steps] == ["started", "completed"], capture
            assert steps[1]["message"] == finished and terminal["message"] == completed, capture
            assert steps[1]["result"] == terminal["result"], capture
        else:
            assert terminal["message"] == failed, capture


def test_stage_only_events_are_sent_by_stage_streams_alone() -> None:
    full = {name for stream in STREAMS for name, _ in stream_events(stream)}
    staged = {name for stream in STAGE_STREAMS for name, _ in stream_events(stream)}
    assert set(STAGE_ONLY_EVENTS) == staged - full
    assert staged - set(STAGE_ONLY_EVENTS) <= set(EVENTS)


def test_the_bad_endpoint_ids_body_is_the_captured_one() -> None:
    assert json_bodies("stage-http-and-active.txt")[0] == INVALID_ENDPOINT_IDS_BODY


# ---------------------------------------------------------------- independence from the scheduler


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_emulator_imports_only_the_standard_library_and_itself() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for name in _imported_modules(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("proxbox_emulator", "__future__"), (
                path.name,
                name,
            )


IMPORT_ALL_AND_RUN = """
import importlib, json, pkgutil, sys, urllib.request
sys.modules["proxbox_scheduler"] = None  # any import of it now raises ImportError
import proxbox_emulator
for info in pkgutil.iter_modules(proxbox_emulator.__path__):
    if info.name != "__main__":
        importlib.import_module(f"proxbox_emulator.{info.name}")
with proxbox_emulator.Emulator() as emulator:
    body = urllib.request.urlopen(emulator.url + "/full-update/stream", timeout=30).read().decode()
print(json.dumps({
    "complete": json.loads(body.rstrip().splitlines()[-1].removeprefix("data: "))["message"],
    "scheduler": sorted(m for m in sys.modules if m.startswith("proxbox_scheduler.")),
}))
"""


def test_emulator_runs_with_the_scheduler_unimportable() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_AND_RUN], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"complete": "Full update sync completed.", "scheduler": []}


# ---------------------------------------------------------------- settings: one table, two routes


def _parse(argv: list[str]) -> EmulatorSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_every_setting_but_the_netbox_url_has_one_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert list(vars(parser.parse_args([]))) == [
        f.name for f in fields(EmulatorSettings) if f.name != "netbox_url"
    ]


def test_no_flags_give_the_dataclass_defaults_except_port_and_access_log() -> None:
    parsed, default = _parse([]), EmulatorSettings()
    differing = {
        f.name for f in fields(EmulatorSettings) if getattr(parsed, f.name) != getattr(default, f.name)
    }
    assert differing == {"port", "access_log"}
    assert parsed.port == 8800 and parsed.access_log is True
    assert _parse(["--quiet"]).access_log is False


def test_flags_map_onto_their_settings() -> None:
    settings = _parse(
        ["--slow-stage", "storage=2", "--slow-stage", "backups=0.5", "--keepalive", "3", "--degraded"]
    )
    assert settings.slow_stages == {"storage": 2.0, "backups": 0.5}
    assert settings.keepalive_interval == 3.0 and settings.degraded is True


NON_NEGATIVE_INTS = [
    f for f in fields(EmulatorSettings) if f.metadata["accept"] is NON_NEGATIVE and f.type == "int"
]


@given(st.sampled_from(NON_NEGATIVE_INTS), st.integers(-(10**6), 10**6))
def test_a_count_flag_is_taken_or_refused_naming_the_flag(setting: Field[Any], value: int) -> None:
    flag = flag_of(setting)
    if value >= 0:
        assert getattr(_parse([flag, str(value)]), setting.name) == value
    else:
        with pytest.raises(SettingError) as refused:
            _parse([flag, str(value)])
        assert str(refused.value) == f"{flag}={value}: must be >= 0"


def test_settings_reject_unknown_stages_and_bad_choices() -> None:
    with pytest.raises(SettingError, match="unknown stage"):
        EmulatorSettings(slow_stages={"vms": 1})
    with pytest.raises(SettingError, match=r"cut_mode='half': must be one of abort, clean"):
        EmulatorSettings(cut_mode="half")
    with pytest.raises(SettingError, match=r"reject_status=500: must be one of 400, 502"):
        EmulatorSettings(reject_status=500)
