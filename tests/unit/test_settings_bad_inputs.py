"""Configuration mistakes found at load: each a `ConfigError` at its line, or naming its variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rarewatch.errors import ConfigError
from rarewatch.settings import load_settings
from rarewatch.sources.base import MIN_INTERVAL


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rarewatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return caught.value


def feed(extra: str) -> str:
    source = f"{{name: a, type: feed, url: 'https://example.org/f', {extra}}}"
    return f"store: sqlite:///x.db\nsources:\n  - {source}\n"


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        ("interval: 0", "interval must be positive"),
        ("interval: 0s", "interval must be positive"),
        ("interval: -1m", "must not be negative"),
        ("interval: 59s", "under the 1m floor"),
        ("interval: 1s, allow_fast_poll: false", "set allow_fast_poll: true"),
        ("interval: 0, allow_fast_poll: true", "interval must be positive"),
        ("timeout: 0", "duration must be positive"),
        ("connect_timeout: 0s", "duration must be positive"),
    ],
)
def test_poll_interval_floor_and_positive_timeouts(tmp_path: Path, extra: str, phrase: str) -> None:
    err = load_error(write(tmp_path, feed(extra)))
    assert phrase in err.message and err.line == 3


def test_allow_fast_poll_lets_one_source_poll_under_the_floor(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, feed("interval: 5s, allow_fast_poll: true")))
    assert settings.sources[0].interval == timedelta(seconds=5) < MIN_INTERVAL
    assert load_settings(write(tmp_path, feed("interval: 1m"))).sources[0].interval == MIN_INTERVAL


@pytest.mark.parametrize(
    ("secret", "phrase"),
    [
        ("whsec_!!!", "not valid base64"),
        ("whsec_", "webhook secret is empty"),
        ("whsec_é", "not valid base64"),
    ],
)
def test_a_malformed_webhook_secret_is_a_config_error_at_its_line(
    tmp_path: Path, secret: str, phrase: str
) -> None:
    path = write(
        tmp_path,
        f"destinations:\n  - {{name: t, type: webhook, url: 'https://example.org/h', secret: '{secret}'}}\n"
        "routes:\n  - {to: [t]}\n",
    )
    err = load_error(path)
    assert phrase in err.message and err.line == 2
    assert secret not in err.message, "the secret itself is never shown"


@pytest.mark.parametrize(
    ("store", "phrase"),
    [("mysql://admin:hunter2@db/x", "unsupported store URL scheme"), ("sqlite://state.db", "three slashes")],
)
def test_a_bad_store_url_is_a_config_error_without_credentials(
    tmp_path: Path, store: str, phrase: str
) -> None:
    err = load_error(write(tmp_path, f"log_level: info\nstore: {store}\n"))
    assert phrase in err.message and err.line == 2
    assert "hunter2" not in str(err)


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [
        ("RAREWATCH_LOG_LEVEL", "loud", "log_level: Input should be"),
        ("RAREWATCH_HTTP__PORT", "eighty", "http.port"),
        ("RAREWATCH_STORE", "mysql://admin:hunter2@db/x", "unsupported store URL scheme"),
        ("RAREWATCH_RULES", "rules/", "not valid JSON"),
        ("rarewatch_dedup_window", "forever", "not a duration"),  # matched case-insensitively
    ],
)
def test_errors_from_the_environment_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, phrase: str
) -> None:
    monkeypatch.setenv(variable, value)
    err = load_error(write(tmp_path, "store: sqlite:///x.db\nlog_level: info\nhttp: {port: 8080}\n"))
    assert err.variable == variable and err.line is None
    assert phrase in err.message and "hunter2" not in str(err)
    assert str(err).startswith(f"environment variable {variable}: ")


def test_a_file_error_is_still_at_its_line_when_other_keys_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAREWATCH_HTTP__PORT", "9090")
    err = load_error(write(tmp_path, "store: sqlite:///x.db\nhttp: {host: 127.0.0.1, bogus: 1}\n"))
    assert err.variable is None and err.line == 2


def test_an_unknown_key_comes_first_with_a_suggestion(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "store: sqlite:///x.db\nlog_level: loud\nwatch_rule: true\n"))
    assert err.line == 3
    assert (
        "watch_rule: Extra inputs are not permitted (unknown key 'watch_rule'; did you mean 'watch_rules'?)"
        in (err.message)
    )
    assert err.message.endswith("(and 1 more error)")


def test_a_configuration_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rarewatch.yaml"
    path.write_bytes(b"log_level: info\n\xff\n")
    err = load_error(path)
    assert "not UTF-8 text (byte 16)" in err.message and err.file == str(path)
