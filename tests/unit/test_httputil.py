"""The one Retry-After parser, used by sources and every destination: one table, one answer per value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from rarewatch.delivery import slack, webhook
from rarewatch.httputil import parse_retry_after, redact_url, scrub
from rarewatch.sources import http

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)

CASES: list[tuple[str | None, float | None]] = [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("1.5", 1.5),  # not RFC syntax, but plainly seconds: honoured as given
    ("-5", None),  # a negative delay is no hint: the caller's own backoff applies
    ("+5", None),
    ("1.5e3", None),
    ("1e3", None),
    ("inf", None),
    ("nan", None),
    ("soon", None),
    ("Fri, 99 Foo 2025", None),
    ("", None),
    ("   ", None),
    (None, None),
    (format_datetime(NOW + timedelta(minutes=2), usegmt=True), 120.0),
    (format_datetime(NOW - timedelta(minutes=2), usegmt=True), 0.0),  # in the past: now
    ("Fri, 02 Jan 2026 12:01:00 -0000", 60.0),  # "-0000" parses naive: GMT
    ("Fri, 02 Jan 2026 12:01:00 GMT", 60.0),
    # a delay past what the clock arithmetic holds, or a date centuries ahead: read as the 30-day cap
    ("99999999999999999999", 30 * 24 * 3600.0),
    (str(30 * 24 * 3600 + 1), 30 * 24 * 3600.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 30 * 24 * 3600.0),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_sources_and_destinations_share_the_one_parser() -> None:
    assert http.parse_retry_after is webhook.parse_retry_after is slack.parse_retry_after is parse_retry_after


def test_a_source_429_carries_the_parsed_hint() -> None:
    assert (
        http.status_error(429, "Too Many Requests", {"Retry-After": "1.5"}, "http://x/f").retry_after == 1.5
    )
    assert http.status_error(503, "Unavailable", {"Retry-After": "-5"}, "http://x/f").retry_after is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////var/lib/rarewatch/state.db", "sqlite:////var/lib/rarewatch/state.db"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@redis.internal:6380/2", "redis://redis.internal:6380/2"),
        (
            "rediss://user:pw@cache.example/0?ssl_cert_reqs=none",
            "rediss://cache.example/0?ssl_cert_reqs=REDACTED",
        ),
        ("http://user:PASSWORD@feeds.example:8080/a/b.xml", "http://feeds.example:8080/a/b.xml"),
        ("https://api.example/v1?apikey=KEY&page=2", "https://api.example/v1?apikey=REDACTED&page=REDACTED"),
        ("https://api.example/v1?SECRETTOKEN", "https://api.example/v1?REDACTED"),
        ("https://api.example/v1?a=&b", "https://api.example/v1?a=REDACTED&REDACTED"),
        ("https://api.example/v1#frag-secret", "https://api.example/v1"),
        ("http://[::1]:9000/x?k=v", "http://[::1]:9000/x?k=REDACTED"),
        ("http://u:PASSWORD@host:notaport/x", "http://host:notaport/x"),  # shown as written, no userinfo
        ("http://[::1/x", "(unparseable URL)"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_origin_only_for_webhooks() -> None:
    url = "https://hooks.slack.example/services/T0/B0/SECRETPATH?x=1"
    assert redact_url(url, keep_path=False) == "https://hooks.slack.example"


def test_scrub_replaces_whole_urls_in_third_party_text() -> None:
    url = "http://u:PASSWORD@h.example/f?apikey=KEY"
    assert scrub(f"x {url} y", url) == "x http://h.example/f?apikey=REDACTED y"
