"""HTTP details shared by sources and destinations: one home for reading `Retry-After`.

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

_DELAY = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header; None when absent or unreadable. `now` is for tests."""
    if not value:
        return None
    value = value.strip()
    if _DELAY.fullmatch(value):
        return float(value)
    if not value or value[0] in "+-" or value[0].isdigit():
        return None  # a signed or malformed number, never a date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
