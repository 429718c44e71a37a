"""The common RFC 822 date form is read without `email.utils`, giving what `email.utils` gives, on many
generated dates: right ones, impossible ones and near misses of the form."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

import pytest

from rarewatch.normalize import _rfc822_common, _rfc822_date, parse_date

WEEKDAYS = ["Mon, ", "Thu, ", "Xyz, ", "mon, ", "", "Monday, ", "Mon ", "Mon,"]
DAYS = ["1", "01", "07", "9", "28", "29", "30", "31", "32", "0", "00", "123"]
MONTHS = ["Jan", "Feb", "feb", "MAR", "Sep", "Dec", "Xyz", "June", "Sept", "Ma"]
YEARS = ["2026", "1999", "1000", "9999", "0099", "0001", "99", "26", "20266"]
TIMES = ["00:00:00", "08:30:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "8:30:00", "08:30"]
ZONES = [
    "GMT",
    "UTC",
    "UT",
    "Z",
    "gmt",
    "EST",
    "PDT",
    "+0000",
    "-0000",
    "+0800",
    "-0930",
    "+2359",
    "+2400",
    "+0860",
    "-9999",
    "+08:00",
    "+080",
    "",
]


def email_only(text: str) -> datetime | None:
    """What `_rfc822_date` answered before the fast path: `email.utils` alone."""
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = [rng.choice(choices) for choices in (DAYS, MONTHS, YEARS, TIMES, ZONES)]
        texts.append(rng.choice(WEEKDAYS) + " ".join(p for p in parts if p))
    return texts


def test_same_as_email_utils_on_generated_dates() -> None:
    texts = generated(20_000, seed=822)
    fast = 0
    for text in texts:
        expected = email_only(text)
        got = _rfc822_date(text)
        assert got == expected, text
        assert (got is None) == (expected is None), text
        if got is not None:
            assert (got.tzinfo is None) == (expected.tzinfo is None), text  # "-0000": naive in both
            assert got.utcoffset() == expected.utcoffset(), text
        fast += _rfc822_common(text) is not None
    assert fast > 300  # the fast path answered some hundreds of them itself (most are near misses)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thu, 09 Oct 2025 08:30:00 GMT", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("9 Oct 2025 16:30:00 +0800", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("Thu, 09 Oct 2025 08:30:00 -0000", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("Wed, 08 Oct 2025 22:00:00 -1030", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
    ],
)
def test_common_form_read_by_the_fast_path(text: str, expected: datetime) -> None:
    assert _rfc822_common(text) is not None
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Thu, 31 Feb 2025 08:30:00 GMT",  # no such day: email.utils decides (it cannot either)
        "Thu, 09 Oct 0099 08:30:00 GMT",  # email.utils reads a year below 100 as 1999
        "Thu, 09 Oct 2025 08:30:00 +2400",  # a day's offset or more: no timezone
        "Thu, 09 Oct 2025 08:30:00 EST",  # named zones other than UT, UTC, GMT and Z
        "Thu, 09 Oct 2025 08:30 GMT",  # no seconds
    ],
)
def test_other_forms_left_to_email_utils(text: str) -> None:
    assert _rfc822_common(text) is None
    assert _rfc822_date(text) == email_only(text)


def test_the_common_form_never_reaches_email_utils(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_called(text: str) -> datetime:
        raise AssertionError(f"email.utils asked for {text!r}")

    monkeypatch.setattr(email.utils, "parsedate_to_datetime", not_called)
    assert parse_date("Thu, 09 Oct 2025 08:30:00 GMT") == datetime(2025, 10, 9, 8, 30, tzinfo=UTC)
