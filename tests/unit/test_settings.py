"""Configuration: defaults, environment overrides, and errors that name file and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rarewatch.errors import ConfigError
from rarewatch.settings import WebhookDestination, load_settings, with_workers


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rarewatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_default_configuration_loads() -> None:
    settings = load_settings(None)
    assert settings.sources, "the default configuration lists real public sources"
    assert all(s.url.startswith("https://") for s in settings.sources)
    assert settings.store_url().startswith("sqlite:////")
    assert settings.rule_paths()[0].is_dir()
    assert settings.dedup_window == timedelta(days=30)


def test_full_example_configuration_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETS_WEBHOOK_SECRET", "whsec_dGVzdHNlY3JldA==")
    monkeypatch.setenv("TICKETS_TOKEN", "t0ken")
    settings = load_settings(Path(__file__).parents[2] / "config" / "example.yaml")
    hook = settings.destinations[0]
    assert isinstance(hook, WebhookDestination)
    assert hook.secret is not None and hook.secret.get_secret_value() == "whsec_dGVzdHNlY3JldA=="
    assert hook.resolved_headers() == {"Authorization": "Bearer t0ken"}
    assert "dGVzdHNlY3JldA" not in repr(settings), "secrets never appear in logs or reprs"


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        "  - {name: a, type: feed, url: 'https://example.org/a.xml'}\n"
        "  - name: b\n"
        "    type: feed\n"
        "    url: https://example.org/b.xml\n"
        "    intervall: 5m\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.file == str(path)
    assert info.value.line == 6
    assert "intervall" in str(info.value)
    assert str(info.value).startswith(f"{path}:6:")


def test_bad_duration_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "store: sqlite:///x.db\ndedup_window: 30 days please\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.line == 2
    assert "not a duration" in str(info.value)


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "store: sqlite:///x.db\nsources: [\n  {name: a\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.line is not None and info.value.line >= 3


def test_route_to_unknown_destination_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "destinations:\n  - {name: local, type: console}\nroutes:\n  - {to: [tickets]}\n")
    with pytest.raises(ConfigError, match="unknown destination"):
        load_settings(path)


def test_non_http_source_url_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - {name: a, type: feed, url: 'file:///etc/passwd'}\n")
    with pytest.raises(ConfigError, match="http"):
        load_settings(path)


def test_webhook_secret_must_be_whsec(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n  - {name: t, type: webhook, url: 'https://example.org/h', secret: plain}\n"
        "routes:\n  - {to: [t]}\n",
    )
    with pytest.raises(ConfigError, match="whsec_") as info:
        load_settings(path)
    assert info.value.line == 2


def test_missing_environment_variable_in_secret_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n  - {name: t, type: webhook, url: 'https://example.org/h', secret: '${NOPE_X}'}\n"
        "routes:\n  - {to: [t]}\n",
    )
    with pytest.raises(ConfigError, match="NOPE_X"):
        load_settings(path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "store: sqlite:///from-file.db\nhttp: {host: 127.0.0.1, port: 8080}\n")
    monkeypatch.setenv("RAREWATCH_STORE", "redis://127.0.0.1:6399/2")
    monkeypatch.setenv("RAREWATCH_HTTP__PORT", "9191")
    settings = load_settings(path)
    assert settings.store_url() == "redis://127.0.0.1:6399/2"
    assert settings.http.port == 9191


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = sub / "c.yaml"
    path.write_text(
        "store: sqlite:///state/x.db\nrules: [myrules/]\n"
        "destinations:\n  - {name: a, type: jsonl, path: out/alerts.jsonl}\nroutes:\n  - {to: [a]}\n"
    )
    settings = load_settings(path)
    assert settings.store_url() == f"sqlite:///{sub / 'state' / 'x.db'}"
    assert settings.rule_paths() == [sub / "myrules"]
    assert settings.resolve_path(settings.destinations[0].path) == sub / "out" / "alerts.jsonl"  # type: ignore[union-attr]


def test_per_source_lookback_overrides_global(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "initial_lookback: 12h\nsources:\n"
        "  - {name: a, type: feed, url: 'https://example.org/a', initial_lookback: 1h30m}\n"
        "  - {name: b, type: feed, url: 'https://example.org/b', interval: 900}\n",
    )
    settings = load_settings(path)
    a, b = settings.sources
    assert settings.lookback_for(a) == timedelta(hours=1, minutes=30)
    assert settings.lookback_for(b) == timedelta(hours=12)
    assert b.interval == timedelta(minutes=15)


def test_duplicate_source_names_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  - {name: a, type: feed, url: 'https://example.org/a'}\n"
        "  - {name: a, type: feed, url: 'https://example.org/b'}\n",
    )
    with pytest.raises(ConfigError, match="unique"):
        load_settings(path)


def test_the_repeated_names_and_only_those_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        + "".join(
            f"  - {{name: {n}, type: feed, url: 'https://example.org/{i}'}}\n" for i, n in enumerate("abcbdb")
        )
        + "destinations:\n  - {name: out, type: console}\n  - {name: out, type: console}\n",
    )
    with pytest.raises(ConfigError, match="destination names must be unique; repeated: out"):
        load_settings(path)
    path.write_text(path.read_text().replace("  - {name: out, type: console}\n", "", 1))
    with pytest.raises(ConfigError, match=r"source names must be unique; repeated: b$"):
        load_settings(path)


def test_webhook_signs_with_every_rotation_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n"
        "  - name: t\n    type: webhook\n    url: 'https://example.org/h'\n"
        "    secret: whsec_bmV3\n    secrets: [whsec_b2xk, whsec_bmV3]\n"
        "routes:\n  - {to: [t]}\n",
    )
    hook = load_settings(path).destinations[0]
    assert isinstance(hook, WebhookDestination)
    assert hook.signing_secrets() == ["whsec_bmV3", "whsec_b2xk"]


def test_slack_destination_needs_token_and_channel_or_webhook(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n  - {name: s, type: slack, channel: '#x'}\nroutes:\n  - {to: [s]}\n",
    )
    with pytest.raises(ConfigError, match="token and channel") as info:
        load_settings(path)
    assert info.value.line == 2


def test_enrich_is_on_for_feeds_and_off_for_json_and_html_by_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        "  - {name: f, type: feed, url: 'https://example.org/a.xml'}\n"
        "  - {name: g, type: feed, url: 'https://example.org/b.xml', enrich: false}\n"
        "  - {name: j, type: json, preset: federal-register, url: 'https://example.org/api'}\n"
        "  - {name: h, type: html, preset: mofcom, url: 'https://example.org/list', enrich: true}\n",
    )
    assert [s.enrich for s in load_settings(path).sources] == [True, False, False, True]


def test_the_enrichment_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(write(tmp_path, "store: sqlite:///x.db\n")).enrichment
    assert (defaults.concurrency, defaults.timeout, defaults.max_bytes, defaults.cache_size) == (
        4,
        timedelta(seconds=15),
        2 * 1024 * 1024,
        1000,
    )
    assert defaults.failure_ttl == timedelta(minutes=10) and not defaults.allow_private_hosts
    path = write(tmp_path, "enrichment: {concurrency: 2, timeout: 5s, failure_ttl: 1h, max_chars: 500}\n")
    monkeypatch.setenv("RAREWATCH_ENRICHMENT__CACHE_SIZE", "50")
    cfg = load_settings(path).enrichment
    assert (cfg.concurrency, cfg.timeout, cfg.failure_ttl, cfg.max_chars, cfg.cache_size) == (
        2,
        timedelta(seconds=5),
        timedelta(hours=1),
        500,
        50,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enrichment:\n  concurrency: 0\n", "enrichment.concurrency"),
        ("enrichment:\n  timeout: 0s\n", "enrichment.timeout"),
        ("enrichment:\n  max_bytes: -1\n", "enrichment.max_bytes"),
        ("enrichment:\n  cache_size: -1\n", "enrichment.cache_size"),
        ("enrichment:\n  cach_size: 10\n", "enrichment.cach_size: Extra inputs"),
        ("enrichment:\n  allow_private_hosts: maybe\n", "enrichment.allow_private_hosts"),
    ],
)
def test_the_enrichment_block_is_validated(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert info.value.line == 2


def test_credentials_in_a_url_and_an_authorization_header_are_a_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations:\n"
        "  - name: hook\n"
        "    type: webhook\n"
        "    url: https://user:secret@example.org/hook\n"
        "    headers: {authorization: Bearer t}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "user:password@" in str(info.value) and "Authorization" in str(info.value)
    assert "secret" not in str(info.value).replace("user:password", "")


def test_outbox_breaker_and_retry_after_keys_have_defaults_and_load(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "rules: []\n")).outbox.breaker_threshold == 10
    path = write(
        tmp_path,
        "outbox: {max_retry_after: 10m, breaker_threshold: 3,"
        " breaker_cooldown: 30s, breaker_max_cooldown: 2m}\n",
    )
    outbox = load_settings(path).outbox
    assert (outbox.max_retry_after, outbox.breaker_threshold) == (timedelta(minutes=10), 3)
    assert (outbox.breaker_cooldown, outbox.breaker_max_cooldown) == (
        timedelta(seconds=30),
        timedelta(minutes=2),
    )


def test_source_health_defaults_and_bad_values_name_their_line(tmp_path: Path) -> None:
    defaults = load_settings(write(tmp_path, "store: sqlite:///x.db\n")).source_health
    assert (defaults.failures, defaults.silence_factor, defaults.min_changes) == (3, 10, 3)
    assert defaults.min_silence == timedelta(hours=24)
    path = write(tmp_path, "store: sqlite:///x.db\nsource_health:\n  failures: 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.line == 3
    assert "source_health.failures" in str(info.value)


def test_the_default_store_is_per_configuration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import platformdirs

    monkeypatch.delenv("RAREWATCH_STORE", raising=False)
    data_dir = platformdirs.user_data_dir("rarewatch")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    urls = []
    for folder in ("a", "b"):
        config = tmp_path / folder / "prod.yaml"
        config.write_text("log_level: info\n", encoding="utf-8")
        digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:12]
        url = load_settings(config).store_url()
        assert url == f"sqlite:///{data_dir}/state-prod-{digest}.db"
        urls.append(url)
    assert urls[0] != urls[1], "two configurations never share a default store"
    assert load_settings(None).store_url() == f"sqlite:///{data_dir}/state.db", (
        "the bundled default keeps state.db"
    )
    config = tmp_path / "a" / "prod.yaml"
    config.write_text("store: sqlite:///mine.db\n", encoding="utf-8")
    assert load_settings(config).store_url() == f"sqlite:///{tmp_path / 'a' / 'mine.db'}"
    monkeypatch.setenv("RAREWATCH_STORE", "redis://127.0.0.1:1/0")
    config.write_text("log_level: info\n", encoding="utf-8")
    assert load_settings(config).store_url() == "redis://127.0.0.1:1/0", "the environment still wins"


def test_store_items_retention_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store_items:\n  keep: 7d\n  max: 500\n", encoding="utf-8")
    settings = load_settings(path)
    assert (settings.store_items.keep, settings.store_items.max) == (timedelta(days=7), 500)
    assert load_settings(None).store_items.keep == timedelta(days=30)


def test_store_items_bad_keep_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dedup_window: 30d\nstore_items:\n  keep: 0s\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"store_items\.keep") as info:
        load_settings(path)
    assert info.value.line == 3


def test_outbox_retention_defaults_and_values(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "sources: []\n")).outbox.retention.delivered == timedelta(days=30)
    text = "outbox:\n  retention: {delivered: 7d, dead: 180d}\n"
    retention = load_settings(write(tmp_path, text)).outbox.retention
    assert (retention.delivered, retention.dead) == (timedelta(days=7), timedelta(days=180))


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("outbox:\n  batch: 10\n  retention:\n    delivered: 0s\n", "outbox.retention.delivered", 4),
        ("outbox:\n  retention:\n    dead: soon\n", "outbox.retention.dead", 3),
        ("outbox:\n  retention:\n    pending: 1d\n", "outbox.retention.pending", 3),
    ],
)
def test_outbox_retention_is_validated_with_file_and_line(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(write(tmp_path, text))
    assert info.value.line == line
    assert info.value.file is not None and info.value.file.endswith("rarewatch.yaml")


def test_delivered_retention_must_outlast_max_age_and_the_storm_window(tmp_path: Path) -> None:
    text = "outbox:\n  max_age: 72h\n  retention: {delivered: 73h}\n"
    with pytest.raises(ConfigError, match=r"retention.delivered \(3d1h\) must be longer") as info:
        load_settings(write(tmp_path, text))
    assert info.value.line == 1
    text = "outbox:\n  max_age: 72h\n  retention: {delivered: 74h}\n"
    assert load_settings(write(tmp_path, text)).outbox.retention.delivered == timedelta(hours=74)


def test_the_slack_signing_secret_is_read_from_the_environment_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")
    settings = load_settings(write(tmp_path, 'slack: {signing_secret: "${SLACK_SIGNING_SECRET}"}\n'))
    assert settings.slack.signing_secret is not None
    assert settings.slack.signing_secret.get_secret_value() == "8f742231b10e8888abcd99yyyzzz85a5"
    assert "8f742231" not in repr(settings)
    assert load_settings(write(tmp_path, "store: sqlite:///x.db\n")).slack.signing_secret is None


def test_an_unknown_slack_key_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "store: sqlite:///x.db\nslack:\n  signing_secrett: x\n"))
    assert info.value.line == 3 and "signing_secrett" in str(info.value)


def test_once_jobs_sets_the_workers_and_zero_means_in_this_process(tmp_path: Path) -> None:
    path = tmp_path / "rarewatch.yaml"
    path.write_text("pipeline: {workers: 2}\n", encoding="utf-8")
    settings = load_settings(path)
    assert with_workers(settings, None) is settings
    assert with_workers(settings, 0).pipeline.workers == 0  # `once --jobs 0`: no worker process
    assert with_workers(settings, 5).pipeline.workers == 5
    assert settings.pipeline.workers == 2  # the loaded settings are left as they were
    with pytest.raises(ValueError, match="from 0 to 32"):
        with_workers(settings, 33)
