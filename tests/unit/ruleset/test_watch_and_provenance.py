"""The enrichment trigger (`Ruleset.worth_enriching`: a material or a `kind: watch` term, after the
filters) and which field completed a match (`Ruleset.first_fields`); the `watch` vocabulary kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rarewatch.errors import RuleError
from rarewatch.ruleset import Ruleset, load_ruleset
from tests.unit.ruleset.conftest import rule

Load = Callable[[str], Ruleset]
BUNDLED = Path(__file__).resolve().parents[3] / "rules"

PACK = (
    """\
vocabulary: materials
kind: materials
entities:
  graphite: [石墨]
  rare earths: [rare earth, 稀土]
terms: [critical mineral~]
exclude: [Graphite Capital]
---
vocabulary: countries
kind: countries
entities:
  china: [Beijing, 中国]
---
vocabulary: watch-terms
kind: watch
terms: [MOFCOM, entity list, "{term: BIS, case_sensitive: true}", 商务部, 不可靠实体清单]
---
"""
    + rule("licensing", "{all: [{vocab: materials}, {any: [export licence, 出口管制]}]}")
    + "---\n"
    + rule("shortage", "{all: [{vocab: materials}, shortage]}", fields="[title, summary]")
).replace('"{term: BIS, case_sensitive: true}"', "{term: BIS, case_sensitive: true}")


@pytest.fixture
def pack(ruleset_of: Load) -> Ruleset:
    return ruleset_of(PACK)


@pytest.mark.parametrize(
    "title",
    [
        "Graphite prices climb",  # a material entity
        "Critical minerals summit opens",  # a term of the materials vocabulary without an entity
        "MOFCOM publishes its weekly bulletin",  # an agency
        "US adds 12 firms to the Entity List",  # a list
        "BIS updates its guidance",  # a case-sensitive acronym
        "商务部新闻发言人答记者问",  # Chinese
        "不可靠實體清單工作機制公告",  # Traditional Chinese, as Simplified terms
    ],
)
def test_a_material_or_a_watch_term_is_worth_enriching(pack: Ruleset, title: str) -> None:
    assert pack.worth_enriching({"title": title})


@pytest.mark.parametrize(
    "title",
    [
        "Sunny weekend ahead",
        "Graphite Capital buys a care-home group",  # an excluded name names no material
        "Beijing hosts a marathon",  # countries alone are not watched: most news names one
        "Le bis repetita du festival",  # BIS is case-sensitive
        "Entity listings rise on the exchange",  # word boundaries hold
    ],
)
def test_other_items_are_not(pack: Ruleset, title: str) -> None:
    assert not pack.worth_enriching({"title": title})


def test_the_summary_and_content_count_too(pack: Ruleset) -> None:
    assert pack.worth_enriching({"title": "Weekly bulletin", "summary": "MOFCOM said on Friday…"})
    assert pack.worth_enriching({"title": "Weekly bulletin", "content": "石墨出口"})


def test_watch_terms_alone_make_no_rule_fire(pack: Ruleset) -> None:
    assert pack.match_fields({"title": "MOFCOM adds firms to the entity list"}) == []


def test_the_bundled_watch_terms(tmp_path: Path) -> None:
    bundled = load_ruleset([BUNDLED])
    for title in (
        "MOFCOM statement",
        "Ministry of State Security warns",
        "Customs data for October",
        "BIS final rule",
        "Unreliable entity list",
        "dual-use items",
        "国家安全机关提示",
        "海关总署公告",
        "两用物项出口管制",
        "关注名单",
        "Gallium prices",
    ):
        assert bundled.worth_enriching({"title": title}), title
    assert not bundled.worth_enriching({"title": "Football results"})
    assert "watch-terms" in bundled.vocabularies


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vocabulary: w\nkind: watch\nentities: {x: [MOFCOM]}\n", "need `kind: materials`"),
        ("vocabulary: w\nkind: watch\nterms: []\n", "needs `terms` or `entities`"),
        ("vocabulary: w\nkind: watch\nterms: [EU]\n", "one or two letters"),
        ("vocabulary: w\nkind: watched\nterms: [MOFCOM]\n", "kind"),
    ],
)
def test_watch_vocabularies_are_validated(ruleset_of: Load, text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as info:
        ruleset_of(text + "---\n" + rule("r", "gallium"))
    assert info.value.line is not None


def test_rules_may_use_a_watch_vocabulary(ruleset_of: Load) -> None:
    pack = ruleset_of("vocabulary: w\nkind: watch\nterms: [MOFCOM]\n---\n" + rule("r", "{vocab: w}"))
    assert [m.rule for m in pack.match_fields({"title": "MOFCOM speaks"})] == ["r"]


# first_fields


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"title": "Rare earth export licence rules", "summary": "x"}, "title"),
        ({"title": "Rare earth news", "summary": "An export licence is needed."}, "summary"),
        ({"title": "Rare earth news", "summary": "Steady.", "content": "An export licence…"}, "content"),
        ({"title": "Rare earth news", "content": "An export licence is needed."}, "content"),
        ({"title": "", "summary": "Rare earth export licence"}, "summary"),
    ],
)
def test_first_fields_names_the_field_that_completed_the_match(
    pack: Ruleset, fields: dict[str, str], expected: str
) -> None:
    (match,) = pack.match_fields(fields)
    assert pack.first_fields(fields, [match.rule]) == {"licensing": expected}


def test_first_fields_per_rule(pack: Ruleset) -> None:
    fields = {"title": "Rare earth shortage", "summary": "An export licence is needed."}
    rules = [m.rule for m in pack.match_fields(fields)]
    assert rules == ["licensing", "shortage"]
    assert pack.first_fields(fields, rules) == {"licensing": "summary", "shortage": "title"}


def test_first_fields_of_nothing_is_empty(pack: Ruleset) -> None:
    assert pack.first_fields({}, ["licensing"]) == {}


def test_snippet_from_a_field(pack: Ruleset) -> None:
    fields = {"title": "Rare earth news", "content": "Officials said an export licence is now required."}
    (default,) = pack.match_fields(fields)
    assert default.snippet == "Rare earth news", "by default: the first evidence"
    (from_content,) = pack.match_fields(fields, snippet_from="content")
    assert "export licence" in from_content.snippet
    (no_evidence_there,) = pack.match_fields(fields, snippet_from="summary")
    assert no_evidence_there.snippet == "Rare earth news"
