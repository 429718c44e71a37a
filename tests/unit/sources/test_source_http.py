"""The pure parts of the shared HTTP fetch: headers, URL checks, status mapping, Retry-After."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus

import pytest

from rarewatch import __version__
from rarewatch.errors import SourceError
from rarewatch.sources.http import USER_AGENT, check_url, request_headers, status_error

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_user_agent_names_rarewatch_and_its_version() -> None:
    assert f"rarewatch/{__version__} (+https://github.com/rarewatch)" == USER_AGENT


def test_request_headers_default_user_agent_and_validators() -> None:
    headers = request_headers(
        {"Accept-Language": "zh-CN"}, etag='"abc"', last_modified="Wed, 01 Oct 2025 00:00:00 GMT"
    )
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Accept-Language"] == "zh-CN"
    assert headers["If-None-Match"] == '"abc"'
    assert headers["If-Modified-Since"] == "Wed, 01 Oct 2025 00:00:00 GMT"


def test_request_headers_configured_user_agent_wins_whatever_its_case() -> None:
    headers = request_headers({"user-agent": "Mozilla/5.0 (custom)"})
    assert headers.getall("User-Agent") == ["Mozilla/5.0 (custom)"]
    assert "If-None-Match" not in headers
    assert "If-Modified-Since" not in headers


@pytest.mark.parametrize("url", ["https://example.org/feed", "http://127.0.0.1:8080/rss?x=1"])
def test_check_url_accepts_http_and_https(url: str) -> None:
    assert str(check_url(url)).startswith("http")


@pytest.mark.parametrize(
    "url", ["ftp://example.org/feed", "file:///etc/passwd", "feed://x.org/", "/relative"]
)
def test_check_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(SourceError, match=r"refusing non-http"):
        check_url(url)


@pytest.mark.parametrize(
    ("status", "pattern"),
    [
        (404, r"^HTTP 404 Not Found: the feed is not at http://x/f$"),
        (410, r"^HTTP 410 Gone: the feed is not at"),
        (403, r"^HTTP 403 Forbidden \(client error\) from http://x/f$"),
        (500, r"^HTTP 500 Internal Server Error \(server error\)"),
        (502, r"^HTTP 502 Bad Gateway \(server error\)"),
    ],
)
def test_status_error_messages(status: int, pattern: str) -> None:
    error = status_error(status, HTTPStatus(status).phrase, {}, "http://x/f")
    assert error.retry_after is None
    assert re.search(pattern, str(error))


@pytest.mark.parametrize("status", [429, 503])
def test_status_error_carries_retry_after(status: int) -> None:
    error = status_error(status, "Busy", {"Retry-After": "120"}, "http://x/f")
    assert error.retry_after == 120
    assert "retry after 120s" in str(error)


def test_status_error_without_retry_after_header() -> None:
    error = status_error(429, "Too Many Requests", {}, "http://x/f")
    assert error.retry_after is None
