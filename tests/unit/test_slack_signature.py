"""The Slack request-signature policy (`rarewatch.slack_signature`), checked against slack-sdk's own
`SignatureVerifier` as an independent implementation of the same scheme."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.signature import Clock, SignatureVerifier

from rarewatch.slack_signature import MAX_SKEW, ReplayGuard, SignatureError, check_signature, signature

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


class FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self._now = now.timestamp()

    def now(self) -> float:
        return self._now


def sdk(secret: str = SECRET, now: datetime = NOW) -> SignatureVerifier:
    return SignatureVerifier(secret, clock=FixedClock(now))


def test_a_request_signed_by_slack_sdk_is_taken_and_dated() -> None:
    given_ = sdk().generate_signature(timestamp=TS, body=BODY)
    assert given_ is not None
    assert check_signature(SECRET, TS, given_, BODY, NOW) == NOW


@given(
    secret=st.text(min_size=1, max_size=40).filter(str.strip),
    text=st.text(max_size=300),  # slack-sdk decodes bodies as UTF-8
    offset=st.integers(min_value=-600, max_value=600),
)
def test_the_signature_and_the_verdict_agree_with_slack_sdk(secret: str, text: str, offset: int) -> None:
    body = text.encode()
    ts = str(int(NOW.timestamp()) + offset)
    expected = sdk(secret).generate_signature(timestamp=ts, body=body)
    assert signature(secret, ts, body) == expected
    for candidate in (expected, signature(secret + "x", ts, body), (expected or "")[:-1] + "0"):
        assert candidate is not None
        sdk_says = sdk(secret).is_valid(body, ts, candidate)
        try:
            check_signature(secret, ts, candidate, body, NOW)
            ours = True
        except SignatureError:
            ours = False
        assert ours == sdk_says, (offset, candidate == expected)


@pytest.mark.parametrize("offset", [-int(MAX_SKEW.total_seconds()), int(MAX_SKEW.total_seconds())])
def test_five_minutes_either_way_is_still_taken(offset: int) -> None:
    ts = str(int(NOW.timestamp()) + offset)
    check_signature(SECRET, ts, signature(SECRET, ts, BODY), BODY, NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_an_old_or_future_timestamp_is_refused_even_when_signed(offset: int) -> None:
    ts = str(int(NOW.timestamp()) + offset)
    with pytest.raises(SignatureError, match="5 minutes"):
        check_signature(SECRET, ts, signature(SECRET, ts, BODY), BODY, NOW)


@pytest.mark.parametrize(
    ("ts", "sig", "reason"),
    [
        (None, signature(SECRET, TS, BODY), "required"),
        (TS, None, "required"),
        ("12.5", signature(SECRET, "12.5", BODY), "Unix time"),
        ("-1", signature(SECRET, "-1", BODY), "Unix time"),
        ("9" * 40, signature(SECRET, "9" * 40, BODY), "Unix time"),
        (TS, signature("another-secret", TS, BODY), "does not match"),
        (TS, signature(SECRET, TS, BODY + b"x"), "does not match"),
        (TS, "v0=" + "é" * 64, "does not match"),
        (TS, signature(SECRET, TS, BODY).replace("v0=", "v1="), "does not match"),
    ],
)
def test_refusals_say_why(ts: str | None, sig: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        check_signature(SECRET, ts, sig, BODY, NOW)


def test_the_secret_is_never_in_a_refusal() -> None:
    with pytest.raises(SignatureError) as info:
        check_signature(SECRET, TS, "v0=00", BODY, NOW)
    assert SECRET not in str(info.value)


def test_the_replay_guard_takes_a_signature_once() -> None:
    guard = ReplayGuard()
    assert guard.first_time("v0=a", NOW, NOW)
    assert not guard.first_time("v0=a", NOW, NOW + MAX_SKEW), "the same request within the window"
    assert guard.first_time("v0=b", NOW, NOW + timedelta(seconds=1))


def test_the_replay_guard_forgets_what_the_timestamp_check_refuses_anyway() -> None:
    guard = ReplayGuard(capacity=3)
    guard.first_time("v0=a", NOW, NOW)
    guard.first_time("v0=b", NOW + 3 * MAX_SKEW, NOW + 3 * MAX_SKEW)
    assert guard.first_time("v0=a", NOW, NOW + 3 * MAX_SKEW), "forgotten: 15 minutes old"
    for n in range(5):
        guard.first_time(f"v0=c{n}", NOW + 3 * MAX_SKEW, NOW + 3 * MAX_SKEW)
    assert len(guard._seen) <= 3, "bounded"
