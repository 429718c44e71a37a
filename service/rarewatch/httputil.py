"""HTTP details shared by sources and destinations: one home for reading `Retry-After` and for showing a
URL without its secrets (`redact_url`).

`parse_retry_after` is the only parser of the header in rarewatch; `sources.http` (a 429/503 from a
feed) and every destination (webhook, Alertmanager, Slack) use it, so they always agree. What it accepts
(RFC 9110 §10.2.3, read leniently where the intent is clear):

| value                                   | seconds                                  |
|-----------------------------------------|------------------------------------------|
| delay-seconds, `"120"`, `" 7 "`         | 120.0, 7.0                               |
| a non-negative decimal, `"1.5"`         | 1.5 (not RFC syntax, but meant as seconds) |
| an HTTP-date in the future              | the seconds until then                   |
| an HTTP-date in the past                | 0.0                                      |
| a negative number `"-5"`, an exponent `"1e3"`, `inf`, `nan`, garbage, empty, absent | None: no hint |

None means "the server gave no usable hint": the caller's own backoff applies. How long a hint is
honoured at most is the caller's policy (the outbox caps it with `outbox.max_retry_after`).
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

_DELAY = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_RETRY_AFTER = 30 * 24 * 3600.0
"""The longest wait a Retry-After is read as, in seconds (30 days). A longer delay, or a date centuries
ahead, is read as this: a server must not park a source or a delivery for ever, and a delay past what
`timedelta` and `datetime` hold would overflow every poll's or attempt's arithmetic."""
REDACTED = "REDACTED"  # what a query value (or a key-less query part) is shown as


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, at most `MAX_RETRY_AFTER`; None when absent or
    unreadable. `now` is for tests."""
    if not value:
        return None
    value = value.strip()
    if _DELAY.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER)
    if not value or value[0] in "+-" or value[0].isdigit():
        return None  # a signed or malformed number, never a date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER)


def redact_url(url: object, *, keep_path: bool = True) -> str:
    """`url` fit for a log line, an error, the API or a metrics label: no secret it may carry.

    The scheme, host and port stay; any `user:password@` goes; every query value becomes `REDACTED`
    (the keys stay, so `?apikey=REDACTED&page=REDACTED` still says what was asked); a query part without
    `=` (it may be a bare token) becomes `REDACTED` whole; the fragment goes. The path stays unless
    `keep_path` is false: use that for URLs whose path is the secret (incoming webhooks, which carry
    their token in the path); without a host, the origin is then `scheme:` (`sqlite:`). A bad port is shown
    as written; a URL urllib cannot split at all is shown as `(unparseable URL)`.

    Every URL rarewatch shows passes through here (sources, next pages, articles, redirects, stores,
    destinations), so there is one rule to audit.
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. a malformed IPv6 host
        return "(unparseable URL)"
    host = parts.netloc.rpartition("@")[2].rstrip(":")  # as written: IPv6 brackets and the port kept
    if not keep_path:
        return f"{parts.scheme}://{host}" if host else f"{parts.scheme}:"
    origin = f"{parts.scheme}://{host}" if parts.scheme else host
    shown = origin + parts.path
    if parts.query:
        shown += "?" + "&".join(_redact_query_part(part) for part in parts.query.split("&"))
    return shown


def _redact_query_part(part: str) -> str:
    key, eq, _ = part.partition("=")
    return f"{key}={REDACTED}" if eq else REDACTED


def scrub(text: str, *urls: object, keep_path: bool = True) -> str:
    """`text` with every occurrence of each of `urls` (as given, and percent-decoded) shown as
    `redact_url` shows it: for third-party messages (aiohttp's) that may quote a URL whole."""
    for url in urls:
        shown = redact_url(url, keep_path=keep_path)
        for form in {str(url), unquote(str(url))}:
            if form and form != shown:
                text = text.replace(form, shown)
    return text
