"""Slack's request signatures (v0), as Slack documents them: pure functions, no I/O.

Slack signs each request to the app's interactivity URL with the app's signing secret:
`X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{X-Slack-Request-Timestamp}:{raw body}">`. A request is
taken only when

- both headers are there and the timestamp is a whole number of seconds;
- the timestamp is within `MAX_SKEW` (5 minutes) of our clock, either way: an old request captured on
  the way cannot be sent again later;
- the signature equals ours, compared in constant time (`hmac.compare_digest`), so how long the
  comparison takes says nothing about how much of a forged signature was right;
- it was not seen before (`ReplayGuard`): the same signed request sent twice within the 5 minutes counts
  once.

slack-sdk's `SignatureVerifier` implements the same scheme; the tests check this module against it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import datetime, timedelta

MAX_SKEW = timedelta(minutes=5)
VERSION = "v0"
REPLAY_MEMORY = 10_000  # signatures remembered for the replay check (more within 5 minutes: oldest go)


class SignatureError(Exception):
    """Why a request is not taken as Slack's (for a 401 and the log; never echoes the secret)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` Slack sends for `body` at `timestamp`."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check_signature(
    secret: str, timestamp: str | None, given: str | None, body: bytes, now: datetime
) -> datetime:
    """The request's time when `given` is Slack's signature of `body` at `timestamp`, which lies within
    `MAX_SKEW` of `now`; raises `SignatureError` otherwise."""
    if timestamp is None or given is None:
        raise SignatureError("X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError("X-Slack-Request-Timestamp is not a Unix time in seconds")
    sent = datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    if abs(now - sent) > MAX_SKEW:
        raise SignatureError("the request's timestamp is more than 5 minutes away (replayed or clock skew)")
    # Both sides as bytes: compare_digest refuses non-ASCII str, and a forged header may hold anything.
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode("utf-8", "replace")):
        raise SignatureError("the signature does not match (check slack.signing_secret)")
    return sent


class ReplayGuard:
    """The signatures of requests taken within the last `MAX_SKEW`: a second request with one of them is
    a replay (a valid signature covers the timestamp and the body, so a repeat is the same request)."""

    def __init__(self, capacity: int = REPLAY_MEMORY) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, datetime] = OrderedDict()  # signature -> request time, oldest first

    def first_time(self, given: str, sent: datetime, now: datetime) -> bool:
        """Remember `given` (a verified signature of a request sent at `sent`); False when it was seen."""
        while self._seen and (
            len(self._seen) >= self._capacity or next(iter(self._seen.values())) < now - 2 * MAX_SKEW
        ):
            self._seen.popitem(last=False)
        if given in self._seen:
            return False
        self._seen[given] = sent
        return True
