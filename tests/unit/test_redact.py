"""The one URL redactor and the secret scrubber (issue 10)."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from proxbox_scheduler.config import load
from proxbox_scheduler.redact import Scrubber, is_secret_param, redact_query, redact_url

passwords = st.text(alphabet=string.ascii_letters + string.digits + "@:!$-_.~", min_size=4, max_size=30)
unsafe = st.text(alphabet=string.ascii_letters + string.digits + "@:/?#&=%", min_size=4, max_size=30)


@given(password=passwords)
def test_no_password_survives_redaction_even_with_at_signs(password: str) -> None:
    url = f"http://admin:{password}@proxbox-api:8000/x"
    shown = redact_url(url)
    assert shown == "http://***@proxbox-api:8000/x"


@given(password=unsafe.filter(lambda p: p.strip("@:/?#&=%") == p and len(p.strip("@:/?#&=%")) >= 4))
def test_a_password_that_breaks_the_url_is_hidden_too(password: str) -> None:
    shown = redact_url(f"http://admin:{password}@proxbox-api:8000/x")
    assert shown.endswith("@proxbox-api:8000/x")
    assert password not in shown


def test_the_issue_examples() -> None:
    assert redact_url("http://admin:Tr0ub@dor-PW@host/") == "http://***@host/"
    assert "PW" not in redact_url("http:admin:PW@h")
    assert "PW" not in redact_url("http://admin:PW/x@h")
    assert redact_url("http://proxbox-api:8000") == "http://proxbox-api:8000"


@given(name=st.sampled_from(["token", "api_key", "password", "secret", "X-Auth", "apikey", "sessionid"]))
def test_secret_looking_query_values_are_masked(name: str) -> None:
    assert is_secret_param(name)
    assert redact_url(f"http://h/p?{name}=v4lue-s3cret&dry_run=true") == f"http://h/p?{name}=***&dry_run=true"


def test_ordinary_params_are_shown_and_broken_queries_with_secrets_hidden() -> None:
    assert redact_query("fetch_max_concurrency=4&dry_run=true") == "fetch_max_concurrency=4&dry_run=true"
    assert redact_query("token") == "***"


def test_the_scrubber_hides_every_configured_secret_longest_first() -> None:
    config = load(
        {
            "PROXBOX_MODE": "interval=60",
            "PROXBOX_API_URL": "http://u:p%40ss-word@h:8000",
            "PROXBOX_API_KEY": "key-1234567",
            "PROXBOX_SYNC_PARAMS": "token=tok-abcdef",
            "PROXBOX_SCHEDULER_PING_URL": "https://hc:ping-pass@hc.example/abc",
        }
    )
    scrub = Scrubber(config.secrets())
    text = "key-1234567 p@ss-word p%40ss-word tok-abcdef ping-pass"
    assert scrub(text) == " ".join(["<redacted>"] * 5)
    scrub.add("key-rotated-2")
    assert scrub("key-rotated-2 and key-1234567") == "<redacted> and <redacted>"
    assert "tok-abcdef" not in config.target and "p%40ss" not in config.target
    assert "tok-abcdef" not in str(config.public())
