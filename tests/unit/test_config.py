"""Configuration parsing: defaults, every variable's validation, cross-checks, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxbox_scheduler.config import (
    VARIABLES,
    ConfigError,
    closest_variable,
    load,
    unknown_variable_warnings,
)
from proxbox_scheduler.parsers import DEFAULT_EXEC_CMD
from proxbox_scheduler.redact import redact_url

BASE = {"PROXBOX_MODE": "continuous", "PROXBOX_API_URL": "http://proxbox-api:8000"}


def test_defaults_match_the_documented_table() -> None:
    config = load(BASE)
    assert config.invoke == "http" and config.tz.key == "UTC"
    assert config.backoff == 30 and config.backoff_max == 3600
    assert config.log_level == "INFO" and config.log_json is True
    assert config.api_key == "" and config.run_timeout == 7200
    assert config.connect_timeout == 10 and config.idle_timeout == 120
    assert config.verify_ssl is True and config.skip_if_active is True
    assert config.exec_cmd == tuple(DEFAULT_EXEC_CMD.split())
    assert config.run_on_start is False and config.jitter == 0 and config.shutdown_grace == 25
    assert config.http_host == "0.0.0.0" and config.http_port == 9750
    assert config.max_event_bytes == 256 * 1024 * 1024
    assert config.sync_path == "/full-update/stream" and config.sync_params == ()


def test_off_needs_nothing_else() -> None:
    assert load({}).mode.kind == "off"


INVALID = [
    ("PROXBOX_MODE", "hourly"),
    ("PROXBOX_MODE", "interval=0"),
    ("PROXBOX_MODE", "cron=99 * * * *"),
    ("PROXBOX_SCHEDULER_INVOKE", "ssh"),
    ("PROXBOX_SCHEDULER_TZ", "Mars/Olympus"),
    ("PROXBOX_SCHEDULER_TZ", "../etc/passwd"),
    ("PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS", "-1"),
    ("PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS", "soon"),
    ("PROXBOX_SCHEDULER_BACKOFF_MAX_SECONDS", "1e12"),
    ("PROXBOX_SCHEDULER_LOG_LEVEL", "LOUD"),
    ("PROXBOX_SCHEDULER_LOG_JSON", "maybe"),
    ("PROXBOX_API_URL", "proxbox-api:8000"),
    ("PROXBOX_API_URL", "ftp://proxbox-api"),
    ("PROXBOX_API_URL", "http://"),
    ("PROXBOX_API_URL", "http://host:99999"),
    ("PROXBOX_API_URL", "http://[::1"),
    ("PROXBOX_API_KEY_FILE", "/nonexistent/key"),
    ("PROXBOX_SYNC_PATH", "full-update/stream"),
    ("PROXBOX_SYNC_PARAMS", "a=1&&&b"),
    ("PROXBOX_SYNC_PARAMS", "fetch_max_concurrency=0"),
    ("PROXBOX_SYNC_PARAMS", "dry_run=perhaps"),
    ("PROXBOX_API_TIMEOUT", "0"),
    ("PROXBOX_API_TIMEOUT", "nan"),
    ("PROXBOX_API_CONNECT_TIMEOUT", "-3"),
    ("PROXBOX_API_IDLE_TIMEOUT", "x"),
    ("PROXBOX_API_VERIFY_SSL", "sure"),
    ("PROXBOX_API_CA_BUNDLE", "/nonexistent/ca.pem"),
    ("PROXBOX_SSE_MAX_EVENT_BYTES", "10"),
    ("PROXBOX_SSE_MAX_EVENT_BYTES", "1.5"),
    ("PROXBOX_SCHEDULER_SKIP_IF_ACTIVE", "2"),
    ("PROXBOX_SCHEDULER_EXEC_CMD", "'unbalanced"),
    ("PROXBOX_SCHEDULER_EXEC_CWD", "/nonexistent/dir"),
    ("PROXBOX_SCHEDULER_RUN_ON_START", "y"),
    ("PROXBOX_SCHEDULER_JITTER_SECONDS", "-0.1"),
    ("PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS", "forever"),
    ("PROXBOX_SCHEDULER_HTTP_HOST", "a b"),
    ("PROXBOX_SCHEDULER_HTTP_PORT", "70000"),
    ("PROXBOX_SCHEDULER_HTTP_PORT", "80.5"),
    ("PROXBOX_SCHEDULER_CATCHUP", "all"),
    ("PROXBOX_SCHEDULER_STARTING_DEADLINE_SECONDS", "0"),
    ("PROXBOX_SCHEDULER_STATE_PATH", "/var/lib/proxbox-scheduler/"),
    ("PROXBOX_SCHEDULER_CONFIG", "/nonexistent/jobs.toml"),
    ("PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE", "/nonexistent/control-token"),
    ("PROXBOX_SCHEDULER_STALE_AFTER_SECONDS", "0"),
    ("PROXBOX_SCHEDULER_PING_URL", "hc-ping.com/uuid"),
    ("PROXBOX_SCHEDULER_NETBOX_URL", "netbox:8000"),
    ("PROXBOX_SCHEDULER_NETBOX_TOKEN_FILE", "/nonexistent/token"),
    ("PROXBOX_SCHEDULER_NETBOX_VERIFY_SSL", "sure"),
    ("PROXBOX_SCHEDULER_NETBOX_CA_BUNDLE", "/nonexistent/ca.pem"),
    ("PROXBOX_SCHEDULER_NETBOX_TIMEOUT", "0"),
    ("PROXBOX_SCHEDULER_NETBOX_UNREACHABLE", "maybe"),
    ("PROXBOX_SCHEDULER_STATE_URL", "mysql://db/scheduler"),
    ("PROXBOX_SCHEDULER_STATE_URL", "redis://"),
    ("PROXBOX_SCHEDULER_LEASE_SECONDS", "0.5"),
    ("PROXBOX_SCHEDULER_REPLICA", "two words"),
]


@pytest.mark.parametrize(("name", "value"), INVALID)
def test_each_invalid_value_names_the_variable_and_the_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load({**BASE, name: value})
    message = str(err.value)
    assert err.value.name == name
    assert message.startswith(f"{name}=")
    assert value.strip() in message
    assert "\n" not in message


def test_every_variable_has_an_invalid_case() -> None:
    # the secrets: see below (API key) and tests/unit/test_netbox.py (NetBox token), redacted
    covered = {name for name, _ in INVALID} | {"PROXBOX_API_KEY", "PROXBOX_SCHEDULER_NETBOX_TOKEN"}
    assert {v.name for v in VARIABLES} - covered == set()


@pytest.mark.parametrize("key", ["clé-secrète", "two words", "tab\there"])
def test_a_key_that_cannot_be_an_http_header_is_rejected_without_showing_it(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load({**BASE, "PROXBOX_API_KEY": key})
    assert err.value.name == "PROXBOX_API_KEY" and "ASCII" in str(err.value)
    assert key not in str(err.value) and "<redacted>" in str(err.value)


def test_a_key_file_holding_an_invalid_key_is_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("clé\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"PROXBOX_API_KEY_FILE.*ASCII"):
        load({**BASE, "PROXBOX_API_KEY_FILE": str(key_file)})


def test_ca_bundle_must_hold_pem_certificates(tmp_path: Path) -> None:
    import trustme

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"PROXBOX_API_CA_BUNDLE.*PEM"):
        load({**BASE, "PROXBOX_API_CA_BUNDLE": str(bad)})
    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    assert load({**BASE, "PROXBOX_API_CA_BUNDLE": str(good)}).ca_bundle == good


def test_credentials_in_a_bad_url_are_not_shown() -> None:
    with pytest.raises(ConfigError) as err:
        load({**BASE, "PROXBOX_API_URL": "http://admin:s3cret@proxbox-api:80000"})
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    assert "***@proxbox-api:80000" in str(err.value)


@pytest.mark.parametrize("word", ["true", "TRUE", " yes ", "On", "1"])
def test_booleans_true(word: str) -> None:
    assert load({**BASE, "PROXBOX_SCHEDULER_RUN_ON_START": word}).run_on_start is True


@pytest.mark.parametrize("word", ["false", "False", "no", "OFF", "0"])
def test_booleans_false(word: str) -> None:
    assert load({**BASE, "PROXBOX_API_VERIFY_SSL": word}).verify_ssl is False


def test_values_are_trimmed_and_keywords_case_insensitive() -> None:
    config = load(
        {
            "PROXBOX_MODE": "  Interval=2.5 ",
            "PROXBOX_API_URL": " http://x:8000/api/ ",
            "PROXBOX_SCHEDULER_INVOKE": " HTTP ",
            "PROXBOX_SCHEDULER_LOG_LEVEL": "debug",
        }
    )
    assert config.mode.interval == 2.5 and config.invoke == "http"
    assert config.api_url == "http://x:8000/api" and config.log_level == "DEBUG"


def test_http_requires_a_url_unless_off() -> None:
    with pytest.raises(ConfigError, match="PROXBOX_API_URL"):
        load({"PROXBOX_MODE": "continuous"})
    with pytest.raises(ConfigError, match="PROXBOX_API_URL"):
        load({}, need_target=True)


def test_exec_requires_an_executable_that_exists() -> None:
    env = {"PROXBOX_MODE": "continuous", "PROXBOX_SCHEDULER_INVOKE": "exec"}
    with pytest.raises(ConfigError, match=r"PROXBOX_SCHEDULER_EXEC_CMD.*not found"):
        load({**env, "PROXBOX_SCHEDULER_EXEC_CMD": "no-such-program-xyz --wait"})
    assert load({**env, "PROXBOX_SCHEDULER_EXEC_CMD": "sh -c 'echo hi'"}).exec_cmd == ("sh", "-c", "echo hi")


def test_key_file_is_read_with_the_trailing_newline_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    assert load({**BASE, "PROXBOX_API_KEY_FILE": str(key_file)}).api_key == "s3cret-key"


def test_key_and_key_file_together_are_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("a")
    with pytest.raises(ConfigError, match="not both"):
        load({**BASE, "PROXBOX_API_KEY": "b", "PROXBOX_API_KEY_FILE": str(key_file)})


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="PROXBOX_API_KEY_FILE"):
        load({**BASE, "PROXBOX_API_KEY_FILE": str(key_file)})


def test_public_view_redacts_secrets() -> None:
    config = load({**BASE, "PROXBOX_API_URL": "https://admin:pw@api:8443", "PROXBOX_API_KEY": "topsecret"})
    shown = str(config.public())
    assert "topsecret" not in shown and "pw" not in shown and "admin" not in shown
    assert config.public()["PROXBOX_API_KEY"] == "<set>"
    assert "topsecret" not in repr(config)
    assert config.target == "https://***@api:8443/full-update/stream"


def test_redact_url_keeps_urls_without_credentials() -> None:
    assert redact_url("http://h:1/p?q=1") == "http://h:1/p?q=1"
    assert redact_url("http://u@h/p") == "http://***@h/p"


def test_unknown_scheduler_variable_warns_with_the_closest_name() -> None:
    warnings = unknown_variable_warnings({"PROXBOX_SCHEDULER_BACKOFF_ON_EROR_SECONDS": "5", "PATH": "/bin"})
    assert warnings == (
        "unknown variable PROXBOX_SCHEDULER_BACKOFF_ON_EROR_SECONDS is ignored; "
        "did you mean PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS?",
    )
    assert closest_variable("PROXBOX_SCHEDULER_LOGLEVEL") == "PROXBOX_SCHEDULER_LOG_LEVEL"
    assert closest_variable("PROXBOX_SCHEDULER_XYZ") is None


def test_warnings_reach_the_config() -> None:
    config = load({**BASE, "PROXBOX_SCHEDULER_JITTER": "5", "PROXBOX_API_VERIFY_SSL": "false"})
    assert any("PROXBOX_SCHEDULER_JITTER_SECONDS" in w for w in config.warnings)
    assert any("not verified" in w for w in config.warnings)


def test_sync_params_are_parsed() -> None:
    config = load({**BASE, "PROXBOX_SYNC_PARAMS": "fetch_max_concurrency=4&dry_run=true"})
    assert config.sync_params == (("fetch_max_concurrency", "4"), ("dry_run", "true"))


@given(st.text(max_size=40))
def test_property_any_mode_string_either_parses_or_raises_config_error(raw: str) -> None:
    try:
        load({**BASE, "PROXBOX_MODE": raw})
    except ConfigError as exc:
        assert exc.name == "PROXBOX_MODE"


def test_a_state_url_password_is_never_shown() -> None:
    config = load({**BASE, "PROXBOX_SCHEDULER_STATE_URL": "postgresql://sched:s3cret@db:5432/sched"})
    assert config.state_url.endswith("@db:5432/sched")
    assert "s3cret" not in str(config.public()) and "s3cret" not in repr(config)
    with pytest.raises(ConfigError) as err:
        load({**BASE, "PROXBOX_SCHEDULER_STATE_URL": "mongodb://sched:s3cret@db"})
    assert "s3cret" not in str(err.value) and "postgresql://" in str(err.value)
