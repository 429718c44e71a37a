"""The silence policy on its own: which silence mutes an alert, and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rarewatch.models import Alert, AlertKind, Item, Match, Severity, Silence
from rarewatch.policies.silences import fits, silenced_by

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ITEM = Item("i1", "mofcom", "Export licences for dysprosium", "https://x.org/1", "", "", NOW, "en")
ALERT = Alert(
    "i1",
    ITEM,
    (Match("licensing", "export-licensing", Severity.HIGH, ("licence",)),),
    NOW,
    materials=("Dysprosium",),
)


def silence(
    *matchers: tuple[str, str], starts: datetime = NOW - HOUR, ends: datetime = NOW + HOUR
) -> Silence:
    return Silence(f"s{len(matchers)}{starts:%H}", matchers, starts, ends, "noisy", "ops", starts)


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (("rule", "licensing"), True),
        (("rule", "shortage"), False),
        (("source", "mofcom"), True),
        (("source", "reuters"), False),
        (("category", "export-licensing"), True),
        (("category", "prosecution"), False),
        (("material", "dysprosium"), True),  # case-insensitive, as routes
        (("material", "terbium"), False),
        (("story", "https://x.org/1"), True),
        (("story", "i1"), True),
        (("story", "https://x.org/2"), False),
        (("colour", "red"), False),  # an unknown field fits nothing
    ],
)
def test_each_matcher_field(matcher: tuple[str, str], expected: bool) -> None:
    assert fits(silence(matcher), ALERT) is expected


def test_every_matcher_must_fit() -> None:
    assert fits(silence(("source", "mofcom"), ("rule", "licensing")), ALERT)
    assert not fits(silence(("source", "mofcom"), ("rule", "shortage")), ALERT)
    assert not fits(silence(), ALERT), "a silence without matchers mutes nothing"


def test_an_update_of_a_silenced_story_is_silenced_by_its_story_id() -> None:
    update = replace(
        ALERT, id="i2", kind=AlertKind.UPDATE, story="i1", item=replace(ITEM, id="i2", link="https://y.org/9")
    )
    assert fits(silence(("story", "i1")), update)


def test_only_an_active_silence_mutes() -> None:
    current = silence(("source", "mofcom"))
    assert silenced_by(ALERT, [current], NOW) == current
    future = silence(("source", "mofcom"), starts=NOW + HOUR, ends=NOW + 2 * HOUR)
    expired = silence(("source", "mofcom"), starts=NOW - 2 * HOUR, ends=NOW)  # ends is exclusive
    assert silenced_by(ALERT, [future, expired], NOW) is None
    assert silenced_by(ALERT, [silence(("source", "reuters"))], NOW) is None


def test_the_oldest_fitting_silence_is_named() -> None:
    older = silence(("rule", "licensing"), starts=NOW - 2 * HOUR)
    newer = silence(("source", "mofcom"))
    assert silenced_by(ALERT, [newer, older], NOW) == older
