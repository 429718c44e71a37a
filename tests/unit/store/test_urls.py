"""Store URLs are checked at configuration load, and their messages never carry credentials."""

from __future__ import annotations

import re

import pytest

from rarewatch.httputil import redact_url
from rarewatch.store import open_store
from rarewatch.store.urls import SentinelTarget, check_store_url, parse_sentinel_url


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///state.db",
        "sqlite:////var/lib/rarewatch/state.db",
        "redis://127.0.0.1:6379/0",
        "redis://:secret@cache.internal:6379",
        "rediss://user:secret@cache.internal/3",
        "unix:///run/redis.sock",
        "redis+cluster://127.0.0.1:7000",
        "rediss+cluster://user:secret@cache.internal:7000/0",
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "rediss+sentinel://user:secret@s1:26379,s2:26380,s3/mymaster/2",
    ],
)
def test_accepted_store_urls(url: str) -> None:
    assert check_store_url(url) == url


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("mysql://admin:hunter2@db.example/rw", "unsupported store URL scheme 'mysql' in mysql://db.example"),
        ("postgresql://admin:hunter2@db/x", "unsupported store URL scheme 'postgresql'"),
        ("REDIS://admin:hunter2@cache/0", "unsupported store URL scheme 'REDIS'"),
        ("sqlite://state.db", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:state.db", "three slashes"),
        ("state.db", "must be a URL with a scheme"),
        ("redis://:hunter2@cache:port/0", "port in redis://cache:port must be a number"),
        ("redis://:hunter2@cache:99999/0", "must be a number from 1 to 65535"),
        ("redis://:hunter2@/0", "needs a host"),
        ("redis://:hunter2@cache/zero", "must be a number, as in"),
        ("unix://", "needs the socket's path"),
        ("redis+cluster://:hunter2@cache:7000/2", "database 0 only"),
        ("redis+cluster://:hunter2@/0", "needs a host"),
        ("redis+sentinel://admin:hunter2@s1:26379", "names the monitored service"),
        ("redis+sentinel://admin:hunter2@s1:26379/m/zero", "must be a number"),
        ("redis+sentinel://admin:hunter2@s1:port/m", "port in redis+sentinel://s1:port must be a number"),
        ("redis+sentinel://admin:hunter2@s1,:26379/m", "each sentinel's host"),
    ],
)
def test_refused_store_urls_say_why_without_credentials(url: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=re.escape(phrase)) as caught:
        check_store_url(url)
    message = str(caught.value)
    assert "hunter2" not in message and "admin" not in message


def test_open_store_refuses_what_the_check_refuses_without_credentials() -> None:
    with pytest.raises(ValueError, match="unsupported store URL scheme") as caught:
        open_store("mysql://admin:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


def test_describe_keeps_scheme_and_host_only() -> None:
    assert redact_url("redis://user:pw@cache:6379/0?x=secret", keep_path=False) == "redis://cache:6379"
    assert redact_url("sqlite:///state.db", keep_path=False) == "sqlite:"


def test_a_sentinel_url_names_its_sentinels_service_database_and_credentials() -> None:
    target = parse_sentinel_url("rediss+sentinel://app:p%40ss@s1:26380,s2/my%20master/3")
    assert target == SentinelTarget(
        sentinels=(("s1", 26380), ("s2", 26379)),
        service="my master",
        db=3,
        username="app",
        password="p@ss",
        tls=True,
    )
    plain = parse_sentinel_url("redis+sentinel://127.0.0.1:26379/mymaster")
    assert (plain.db, plain.username, plain.password, plain.tls) == (0, None, None, False)
