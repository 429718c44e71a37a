from datetime import timedelta

import pytest

from rarewatch.durations import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90", timedelta(seconds=90)),
        (45, timedelta(seconds=45)),
        (1.5, timedelta(seconds=1.5)),
        ("1w", timedelta(days=7)),
    ],
)
def test_parse(text: str | int | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "15x", "m15", "1h 30q", -5, True])
def test_parse_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_format_round_trips() -> None:
    for text in ["30s", "15m", "1h30m", "2d"]:
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    "huge", ["36501d", "1000000000d", 10**30, float("inf"), float("nan"), "99999999999w"]
)
def test_parse_caps_durations_instead_of_overflowing(huge: object) -> None:
    # Beyond MAX_DURATION a timedelta (or now + it, in APScheduler) would overflow with an OverflowError.
    with pytest.raises(ValueError, match="too long"):
        parse_duration(huge)  # type: ignore[arg-type]


def test_parse_accepts_the_cap_itself() -> None:
    assert parse_duration(MAX_DURATION) == MAX_DURATION
    assert parse_duration("36500d") == MAX_DURATION


@pytest.mark.parametrize("negative", ["-5m", "-1", " -30s"])
def test_parse_names_a_negative_duration(negative: str) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(negative)
