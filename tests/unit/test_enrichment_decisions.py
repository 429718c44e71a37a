"""The enrichment decisions on their own: which items want their article, what `matched_in` says, how
reads are counted, and an alert's `matched_in`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rarewatch.enrichment import NO_ARTICLES, locate, wants_article
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.sources.article import Article
from tests.unit.ruleset.conftest import rule

PACK = (
    "vocabulary: materials\nkind: materials\nentities: {gallium: [镓]}\n---\n"
    "vocabulary: watch\nkind: watch\nterms: [MOFCOM]\n---\n"
    + rule("licensing", "{all: [{vocab: materials}, export licence]}")
)
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def make_item(title: str, summary: str = "", content: str = "", link: str = "https://e.org/1") -> Item:
    return Item("i", "wire", title, link, summary, content, WHEN)


@pytest.fixture
def pack(tmp_path: Path) -> Ruleset:
    path = tmp_path / "rules.yaml"
    path.write_text(PACK, encoding="utf-8")
    return load_ruleset([path])


def test_wants_article_only_without_matches_with_a_link_and_a_watched_term(pack: Ruleset) -> None:
    watched = make_item("Gallium market update")
    assert wants_article(pack, watched, [])
    assert wants_article(pack, make_item("MOFCOM bulletin"), [])
    assert not wants_article(pack, make_item("Football results"), [])
    assert not wants_article(pack, make_item("Gallium market update", link=""), [])
    match = Match("licensing", "export-licensing", Severity.HIGH)
    assert not wants_article(pack, watched, [match])


@pytest.mark.parametrize(
    ("item", "from_article", "expected"),
    [
        (make_item("Gallium export licence"), False, "title"),
        (make_item("Gallium news", "An export licence is needed."), False, "summary"),
        (make_item("Gallium news", "Steady.", "An export licence is needed."), False, "content"),
        (make_item("Gallium news", "Steady.", "An export licence is needed."), True, "article"),
        (make_item("Gallium export licence", "", "An article."), True, "title"),
    ],
)
def test_locate_sets_matched_in(pack: Ruleset, item: Item, from_article: bool, expected: str) -> None:
    matches = pack.match(item)
    (located,) = locate(pack, item, matches, from_article=from_article)
    assert located.matched_in == expected
    assert located.rule == matches[0].rule and located.terms == matches[0].terms


def test_located_matches_are_kept_unless_they_came_from_an_article(pack: Ruleset) -> None:
    """What an item worker located is not located again; an article's matches always are."""
    item = make_item("Gallium export licence")
    (match,) = pack.match(item)
    said = replace(match, matched_in="summary")  # not what locating would say: shows it was kept
    assert locate(pack, item, [said], from_article=False) == (said,)
    assert [m.matched_in for m in locate(pack, item, [said], from_article=True)] == ["title"]
    unlocated = [said, match]  # one match not located yet: all are located
    assert [m.matched_in for m in locate(pack, item, unlocated, from_article=False)] == ["title", "title"]


def test_locate_nothing(pack: Ruleset) -> None:
    assert locate(pack, make_item("x"), [], from_article=True) == ()


def test_reads_are_counted_by_outcome() -> None:
    stats = NO_ARTICLES.add(Article("a", text="t"), matched=True)
    stats = stats.add(Article("b", error="HTTP 404"), matched=False)
    stats = stats.add(Article("c", text="t", cached=True), matched=False)
    stats = stats.add(Article("d", error="HTTP 404", cached=True), matched=False)
    assert (stats.fetched, stats.failed, stats.cached, stats.matched) == (1, 1, 2, 1)


def test_an_alert_says_the_least_text_that_raised_it() -> None:
    def alert(*where: str) -> Alert:
        matches = tuple(Match(f"r{i}", "c", Severity.LOW, matched_in=w) for i, w in enumerate(where))
        return Alert("a", make_item("t"), matches, WHEN)

    assert alert("article", "summary").matched_in == "summary"
    assert alert("article", "content").matched_in == "content"
    assert alert("article").matched_in == "article"
    assert alert("", "title").matched_in == "title"
    assert alert().matched_in == ""


def test_matched_in_survives_the_store_round_trip() -> None:
    match = Match("r", "c", Severity.LOW, ("t",), "s", "article")
    assert Match.from_dict(match.to_dict()) == match
    assert Match.from_dict({"rule": "r", "category": "c", "severity": "low"}).matched_in == ""
