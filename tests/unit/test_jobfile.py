"""The job file: precedence over the variables, per-job values through the variables' parsers, errors."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxbox_scheduler.config import ConfigError, load

EXAMPLE = """
state_path = "memory"
[defaults]
tz = "Europe/Berlin"
[targets.main]
url = "http://proxbox-api:8000"
key_file = "{key}"
[[jobs]]
name = "full"
mode = "cron=0 2 * * *"
target = "main"
[[jobs]]
name = "vms"
mode = "interval=300"
target = "main"
path = "/virtualization/virtual-machines/create/stream"
params = {{ endpoint_ids = "1,2" }}
catchup = "latest"
starting_deadline = 600
[[jobs]]
name = "netbox-cli"
mode = "cron=30 3 * * *"
invoke = "exec"
command = "true --wait"
"""


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "jobs.toml"
    path.write_text(text, encoding="utf-8")
    return {"PROXBOX_SCHEDULER_CONFIG": str(path)}


def example(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "key"
    key.write_text("file-key-123\n", encoding="utf-8")
    return write(tmp_path, EXAMPLE.format(key=key))


def test_the_readme_example_makes_three_jobs(tmp_path: Path) -> None:
    config = load(example(tmp_path))
    full, vms, cli = config.jobs
    assert [j.name for j in config.jobs] == ["full", "vms", "netbox-cli"]
    assert all(j.tz.key == "Europe/Berlin" for j in config.jobs)
    assert full.api_url == vms.api_url == "http://proxbox-api:8000" and vms.api_key == "file-key-123"
    assert vms.sync_params == (("endpoint_ids", "1,2"),) and vms.catchup == "latest"
    assert vms.starting_deadline == 600 and full.catchup == "skip"
    assert cli.invoke == "exec" and cli.exec_cmd == ("true", "--wait")
    assert full.lock == vms.lock != cli.lock == "netbox"
    assert config.state_path == "memory"
    assert config.mode == full.mode  # the first job's settings read on the Config
    assert "file-key-123" not in repr(config)


def test_without_a_file_the_variables_make_the_job_default() -> None:
    config = load({"PROXBOX_MODE": "interval=60", "PROXBOX_API_URL": "http://a:1"})
    assert [j.name for j in config.jobs] == ["default"]
    assert config.loop_settings().job == "default" and config.jobs[0].api_url == "http://a:1"


def test_variables_are_the_base_of_every_job_and_set_process_keys_win(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        'log_level = "DEBUG"\nhttp_port = 1234\n[[jobs]]\nname = "a"\nmode = "interval=5"\n'
        '[[jobs]]\nname = "b"\nmode = "interval=5"\ntimeout = 9\n',
    )
    env |= {
        "PROXBOX_API_URL": "http://env:1",
        "PROXBOX_API_TIMEOUT": "77",
        "PROXBOX_SCHEDULER_LOG_LEVEL": "ERROR",
    }
    config = load(env)
    a, b = config.jobs
    assert a.api_url == b.api_url == "http://env:1"
    assert (a.run_timeout, b.run_timeout) == (77, 9)
    assert config.log_level == "ERROR" and config.http_port == 1234


def test_params_as_a_table_and_command_as_a_list(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        '[[jobs]]\nname = "x"\nmode = "off"\ninvoke = "exec"\ncommand = ["true", "a b"]\n'
        "params = { dry_run = true, fetch_max_concurrency = 4 }\n",
    )
    job = load(env).jobs[0]
    assert job.exec_cmd == ("true", "a b")
    assert job.sync_params == (("dry_run", "true"), ("fetch_max_concurrency", "4"))


BAD = [
    ('[[jobs]]\nname = "a"\nmode = "interval=5"\ntiemout = 3\n', "job a: tiemout", "did you mean timeout?"),
    ('[[jobs]]\nname = "a"\nmode = "hourly"\n', "job a: mode", "hourly"),
    ('[[jobs]]\nname = "a"\nmode = "interval=5"\ntimeout = -1\n', "job a: timeout", "from 0 to"),
    ('[[jobs]]\nname = "a"\ncatchup = "all"\n', "job a: catchup", "skip, latest"),
    ('[[jobs]]\nname = "a"\nparams = { fetch_max_concurrency = 0 }\n', "job a: params", ">= 1"),
    ('[[jobs]]\nname = "a"\ntarget = "nope"\n', "job a: target", "none defined"),
    ('[[jobs]]\nname = "A b"\n', "job A b: name", "a-z, 0-9"),
    ('[[jobs]]\nname = "a"\n[[jobs]]\nname = "a"\n', "job a: name", "no other job"),
    ('[[jobs]]\nmode = "off"\n', "jobs[0]: name", "required"),
    ("[defaults]\nmdoe = 1\n[[jobs]]\nname = 'a'\n", "[defaults]: mdoe", "did you mean mode?"),
    ("stat_path = 'x'\n[[jobs]]\nname = 'a'\n", "top level: stat_path", "did you mean state_path?"),
    ('[targets.t]\nkey = "k"\n[[jobs]]\nname = "a"\n', "[targets.t]: url", "required"),
    ('[targets.t]\nurl = "ftp://x"\n[[jobs]]\nname = "a"\n', "[targets.t]: url", "http://"),
    ('[targets.t]\nurl = "http://x:1"\nconcurrency = 0\n[[jobs]]\nname = "a"\n', "[targets.t]: concurrency",
     "1 to 16"),
    ('[targets.t]\nurl = "http://x:1"\nconcurrency = true\n[[jobs]]\nname = "a"\n',
     "[targets.t]: concurrency", "whole number"),
    ('[[jobs]]\nname = "a"\nmode = "interval=5"\n', "PROXBOX_API_URL", "required with"),  # no target
    ('[[jobs]]\nname = "a"\nmode = "cron=0 * * * *"\ninvoke = "exec"\ncommand = "no-such-program-x"\n',
     "job a: command", "not found"),
    ("x = \n", "PROXBOX_SCHEDULER_CONFIG", "line 1"),
    ('jobs = "none"\n', "jobs", "[[jobs]]"),
    ('[[jobs]]\nname = "a"\ntimeout = [1]\n', "job a: timeout", "a string, a number"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where", "accepted"), BAD)
def test_each_bad_file_is_one_line_naming_file_job_and_key(
    tmp_path: Path, text: str, where: str, accepted: str
) -> None:
    env = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(env)
    line = str(err.value)
    assert "\n" not in line and where in line and accepted in line, line
    assert str(tmp_path / "jobs.toml") in line


def test_a_key_in_the_file_is_never_shown(tmp_path: Path) -> None:
    env = write(tmp_path, '[targets.t]\nurl = "http://x:1"\nkey = "sec ret"\n[[jobs]]\nname = "a"\n')
    with pytest.raises(ConfigError) as err:
        load(env)
    assert "sec ret" not in str(err.value) and "<redacted>" in str(err.value)


NAME_CHARS = string.ascii_lowercase + string.digits + "_-"


TOML_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.text(TOML_TEXT, min_size=1, max_size=70) | st.text(NAME_CHARS, min_size=1, max_size=70))
def test_names_are_accepted_exactly_when_url_safe(tmp_path: Path, name: str) -> None:
    env = write(
        tmp_path, f'[[jobs]]\nname = {json.dumps(name, ensure_ascii=False)}\nmode = "off"\n'
    )  # JSON strings are TOML's
    valid = len(name) <= 64 and set(name) <= set(NAME_CHARS)
    try:
        config = load(env)
    except ConfigError as exc:
        assert not valid, str(exc)
        assert "name" in str(exc) and "a-z, 0-9" in str(exc)
        return
    assert valid and config.jobs[0].name == name


def test_interval_jobs_spread_their_grids_over_one_interval(tmp_path: Path) -> None:
    """Many interval jobs of one process must not all fire in the same instant (bench_jobs)."""
    jobs = "".join(f'[[jobs]]\nname = "j{k}"\nmode = "interval=60"\n' for k in range(4))
    path = tmp_path / "jobs.toml"
    path.write_text(
        'state_path = "memory"\n' + jobs + '[[jobs]]\nname = "nightly"\nmode = "cron=0 2 * * *"\n'
    )
    config = load({"PROXBOX_SCHEDULER_CONFIG": str(path), "PROXBOX_API_URL": "http://h:1"})
    assert [config.loop_settings(f"j{k}").phase for k in range(4)] == [0.0, 15.0, 30.0, 45.0]
    assert config.loop_settings("nightly").phase == 0.0
    assert load({}).loop_settings().phase == 0.0  # one job: the first run is one interval after start


def test_a_rejected_url_in_the_file_never_shows_its_password(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    target = '[targets.main]\nurl = "ftp://admin:S3cret-pw@h"\n'
    path.write_text(target + '[[jobs]]\nname = "a"\ntarget = "main"\n')
    with pytest.raises(ConfigError) as caught:
        load({"PROXBOX_SCHEDULER_CONFIG": str(path)})
    line = str(caught.value)
    assert "url" in line and "S3cret-pw" not in line and "***" in line


def test_each_setting_is_named_where_the_operator_would_change_it(tmp_path: Path) -> None:
    env = {**example(tmp_path), "PROXBOX_API_URL": "http://from-env:8000"}
    path = env["PROXBOX_SCHEDULER_CONFIG"]
    text = Path(path).read_text(encoding="utf-8") + '[[jobs]]\nname = "loose"\nmode = "interval=60"\n'
    Path(path).write_text(text, encoding="utf-8")
    config = load(env)
    vms, loose = config.names("vms"), config.names("loose")
    assert vms("api_url") == f"{path}: [targets.main]: url"  # the job's target sets it
    assert vms("sync_path") == f"{path}: job vms: path"
    assert config.loop_settings("vms").timeout_name == f"{path}: job vms: timeout"
    assert loose("api_url") == "PROXBOX_API_URL"  # no target: only the variable sets it
    assert loose("run_timeout") == f"{path}: job loose: timeout"
    assert load({}).names()("api_url") == "PROXBOX_API_URL"


def test_a_targets_concurrency_is_the_size_of_its_jobs_group(tmp_path: Path) -> None:
    jobs_text = "".join(
        f'[[jobs]]\nname = "{name}"\ntarget = "{target}"\n{extra}'
        for name, target, extra in [("a", "main", ""), ("b", "main", ""), ("own", "main", 'lock = "mine"\n'),
                                    ("c", "other", "")]
    )  # fmt: skip
    targets = '[targets.main]\nurl = "http://h:1"\nconcurrency = 2\n[targets.other]\nurl = "http://h:2"\n'
    jobs = {job.name: job for job in load(write(tmp_path, targets + jobs_text)).jobs}
    assert {(jobs[n].lock, jobs[n].lock_slots) for n in "ab"} == {("target:main", 2)}
    assert (jobs["own"].lock, jobs["own"].lock_slots) == ("mine", 1)  # a named group: one at a time
    assert (jobs["c"].lock, jobs["c"].lock_slots) == ("target:other", 1)


def test_the_variables_key_file_is_read_exactly_when_a_job_calls_the_variables_target(tmp_path: Path) -> None:
    empty = tmp_path / "empty-key"
    empty.write_text("", encoding="utf-8")
    targeted = '[targets.t]\nurl = "http://h:1"\nkey = "target-key"\n[[jobs]]\nname = "a"\ntarget = "t"\n'
    env = {**write(tmp_path, targeted), "PROXBOX_API_KEY_FILE": str(empty)}
    assert load(env).job("a").api_key == "target-key"  # the variables' key is nobody's: not read
    untargeted = targeted + '[[jobs]]\nname = "b"\n'
    env = {**write(tmp_path, untargeted), "PROXBOX_API_KEY_FILE": str(empty), "PROXBOX_API_URL": "http://h:2"}
    with pytest.raises(ConfigError) as caught:
        load(env)
    assert str(caught.value).startswith("PROXBOX_API_KEY_FILE=")
    good = tmp_path / "good-key"
    good.write_text("variables-key-1\n", encoding="utf-8")
    loaded = load({**env, "PROXBOX_API_KEY_FILE": str(good)})
    assert (loaded.job("a").api_key, loaded.job("b").api_key) == ("target-key", "variables-key-1")
