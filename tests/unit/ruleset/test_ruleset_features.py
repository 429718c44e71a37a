"""The rule-language features beyond terms and booleans: occurrence-scoped negation and hedging, clause
and sentence scopes, word forms (`~`), case-sensitive terms and exclusions, Traditional Chinese, and
entities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from rarewatch.errors import RuleError
from rarewatch.models import Item
from rarewatch.ruleset import Entities, Ruleset, load_ruleset
from rarewatch.ruleset.forms import inflections
from tests.unit.ruleset.conftest import RuleWriter, rule

Load = Callable[[str], Ruleset]

NEGATORS = """\
vocabulary: negators
kind: negators
terms: ["no", denies, could, 不存在, 或将, 未]
exclude: [not to]
---
vocabulary: after
kind: negators
terms: [groundless, 不属实]
---
"""

ACTIONS = """\
vocabulary: actions
terms: [shortage~, ban~, 断供, 禁令]
negated_by:
  - {terms: [{vocab: negators}], before: 3, before_cjk: 6}
  - {terms: [{vocab: after}], before: null, after: 2}
---
"""


def fired(ruleset: Ruleset, title: str = "", summary: str = "") -> list[str]:
    return [m.rule for m in ruleset.match_fields({"title": title, "summary": summary})]


@pytest.fixture
def negation_pack(ruleset_of: Load) -> Ruleset:
    return ruleset_of(NEGATORS + ACTIONS + rule("r", "{all: [{vocab: actions}, {any: [gallium, 镓]}]}"))


# --------------------------------------------------------------------------- negation and hedging


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Gallium shortage hits chipmakers", True),
        ("No gallium shortage, ministry says", False),
        ("China denies any gallium ban", False),
        ("Europe could face gallium shortages by 2030", False),
        ("Reports of a gallium ban were groundless", False),
        ("镓不存在断供", False),
        ("镓出口或将实施禁令", False),
        ("镓断供", True),
    ],
)
def test_a_negator_or_hedge_cancels_the_hit_it_precedes(
    negation_pack: Ruleset, title: str, expected: bool
) -> None:
    assert fired(negation_pack, title) == (["r"] if expected else [])


def test_negation_is_per_occurrence_not_per_item(negation_pack: Ruleset) -> None:
    # The first "shortage" is negated; the second, in another clause, still counts.
    assert fired(negation_pack, "No shortage of tungsten; gallium shortage hits chipmakers") == ["r"]
    assert fired(negation_pack, "No gallium shortage", "A gallium shortage hit Japan") == ["r"]


def test_negation_stops_at_a_comma_a_clause_and_a_distance(negation_pack: Ruleset) -> None:
    assert fired(negation_pack, "No delays, but a gallium shortage looms") == ["r"]
    assert fired(negation_pack, "No word from the ministry on the gallium shortage") == ["r"]  # 4+ words


def test_negation_reaches_across_a_chinese_enumeration_comma(negation_pack: Ruleset) -> None:
    """、 only ever separates the items of a list, so a negator before the list covers what follows it;
    ， separates clauses and stops it, as a comma does in English."""
    assert fired(negation_pack, "未出现镓、锗断供") == []
    assert fired(negation_pack, "镓未见异常，锗断供") == ["r"]


def test_an_excluded_negator_does_not_negate(negation_pack: Ruleset) -> None:
    # "not to" is excluded from the negators, and "not" is no negator anyway: an instruction stays.
    assert fired(negation_pack, "Firms told not to expect a gallium ban soon") == ["r"]


def test_a_negator_inside_the_term_is_part_of_it(ruleset_of: Load) -> None:
    ruleset = ruleset_of(
        NEGATORS
        + "vocabulary: zh\nterms: [未到货]\nnegated_by: {terms: [{vocab: negators}], before_cjk: 6}\n---\n"
        + rule("r", "{all: [{vocab: zh}, 钕铁硼]}")
    )
    assert fired(ruleset, "钕铁硼磁铁迟迟未到货") == ["r"]


def test_a_negator_that_starts_before_the_term_and_holds_it_negates_it(ruleset_of: Load) -> None:
    ruleset = ruleset_of(
        NEGATORS.replace("未]", "未, 或限制]")
        + "vocabulary: zh\nterms: [限制]\nnegated_by: {terms: [{vocab: negators}], before_cjk: 6}\n---\n"
        + rule("r", "{all: [{vocab: zh}, 稀土]}")
    )
    assert fired(ruleset, "北京限制稀土供应商") == ["r"]
    assert fired(ruleset, "北京或限制稀土供应商") == []


def test_rule_level_negation_applies_to_its_own_terms(ruleset_of: Load) -> None:
    ruleset = ruleset_of(
        NEGATORS
        + rule("r", "{all: [embargo, gallium]}", negated_by="{terms: [{vocab: negators}], before: 2}")
    )
    assert fired(ruleset, "Gallium embargo announced") == ["r"]
    assert fired(ruleset, "Beijing denies gallium embargo") == []


def test_negator_vocabularies_are_only_for_negated_by(write_rules: RuleWriter) -> None:
    path = write_rules(NEGATORS + rule("r", "{vocab: negators}"))
    with pytest.raises(RuleError, match="holds negators"):
        load_ruleset([path])


def test_two_letter_words_are_negators_only(write_rules: RuleWriter) -> None:
    path = write_rules('vocabulary: v\nterms: ["no", gallium]\n---\n' + rule("r", "{vocab: v}"))
    with pytest.raises(RuleError, match="one or two letters") as info:
        load_ruleset([path])
    assert info.value.line == 1


# --------------------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("scope", "title", "expected"),
    [
        ("clause", "Lynas shares rise; separately, the EU extends steel tariffs", False),
        ("clause", "Lynas shares rise. Meanwhile tariffs climb", False),
        ("clause", "Lynas shares rise, tariffs climb", True),  # commas do not end a clause
        ("clause", "U.S. tariffs on Lynas", True),  # "u.s." is no sentence end
        ("sentence", "Tariffs on Lynas Corp. and its peers", True),  # nor a company suffix
        ("sentence", "Sen. Lee wants tariffs on Lynas", True),  # nor a title
        ("sentence", "Lynas shares rise. Gen. Lee wants tariffs", False),
        ("sentence", "Lynas shares rise; the EU extends tariffs", True),
        ("sentence", "Lynas shares rise. The EU extends tariffs", False),
        ("field", "Lynas shares rise. The EU extends tariffs", True),
        ("clause", "稀土板块走强；另讯，钢铁关税上调", False),
        ("clause", "稀土出口 关税上调", True),  # a space between Chinese clauses is no boundary
    ],
)
def test_near_scope(ruleset_of: Load, scope: str, title: str, expected: bool) -> None:
    ruleset = ruleset_of(rule("r", f"{{near: [[Lynas, 稀土], [tariff, 关税]], within: 12, scope: {scope}}}"))
    assert fired(ruleset, title) == (["r"] if expected else [])


@pytest.mark.parametrize(
    "abbreviation",
    [
        "No.",
        "Inc.",
        "Ltd.",
        "Co.",
        "Corp.",
        "St.",
        "vs.",
        "Mr.",
        "Dr.",
        "Gov.",
        "Sen.",
        "Rep.",
        "Gen.",
        "Jr.",
        "Sr.",
    ],
)
def test_abbreviations_end_no_sentence(ruleset_of: Load, abbreviation: str) -> None:
    ruleset = ruleset_of(rule("r", "{near: [Lynas, tariff], within: 12, scope: sentence}"))
    assert fired(ruleset, f"Lynas and {abbreviation} Smith want tariffs") == ["r"]
    assert fired(ruleset, f"Lynas and {abbreviation.lower().rstrip('.')}. Smith want tariffs") == ["r"]


def test_the_field_boundary_is_always_a_boundary(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{near: [gallium, tariff], within: 30, scope: field}"))
    assert fired(ruleset, "Gallium prices", "Tariffs rise") == []


def test_an_unknown_scope_is_refused_with_its_line(write_rules: RuleWriter) -> None:
    path = write_rules(rule("r", "{near: [gallium, ban], within: 3, scope: paragraph}"))
    with pytest.raises(RuleError, match="scope") as info:
        load_ruleset([path])
    assert info.value.line == 5


# --------------------------------------------------------------------------- word forms


@pytest.mark.parametrize(
    ("word", "forms"),
    [
        ("jail", {"jail", "jails", "jailed", "jailing"}),
        ("ban", {"ban", "bans", "banned", "banning"}),
        ("seize", {"seize", "seizes", "seized", "seizing"}),
        ("supply", {"supply", "supplies", "supplied", "supplying"}),
        ("hold", {"held", "holding"}),
    ],
)
def test_inflections(word: str, forms: set[str]) -> None:
    assert forms <= inflections(word)
    assert word + "ner" not in inflections(word)  # no agent nouns: "ban~" never finds "banner"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Trader jailed", True),
        ("Jailing of traders", True),
        ("Export licences needed", True),
        ("Export licensing regime", True),
        ("Exports licensed", True),
        ("Production halted", True),
        ("Jail break film", True),
        ("Jailbird", False),
    ],
)
def test_stem_mark_finds_word_forms(ruleset_of: Load, title: str, expected: bool) -> None:
    ruleset = ruleset_of(rule("r", "{any: [jail~, export licence~, export~ license~, production halt~]}"))
    assert fired(ruleset, title) == (["r"] if expected else [])


def test_a_misplaced_stem_mark_is_refused(write_rules: RuleWriter) -> None:
    path = write_rules(rule("r", '"li~cence"'))
    with pytest.raises(RuleError, match="`~` marks the end"):
        load_ruleset([path])


# --------------------------------------------------------------------------- case and exclusions

BAND = """\
vocabulary: materials
terms: [rare earth, graphite, magnets]
exclude: [Rare Earth band, Graphite Capital, talent magnets]
---
"""


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Rare Earth band banned from festival", False),
        ("rare earth band ban", True),  # the exclusion is case-sensitive: this is not the band
        ("Graphite Capital ban on bonuses", False),
        ("Graphite Capital ban; graphite export ban follows", True),  # the second "graphite" counts
        ("Talent magnets ban", False),  # a lower-case exclusion matches any case
        ("Rare earth export ban", True),
    ],
)
def test_exclusions_remove_occurrences_not_items(ruleset_of: Load, title: str, expected: bool) -> None:
    ruleset = ruleset_of(BAND + rule("r", "{near: [{vocab: materials}, ban~], within: 5, scope: clause}"))
    assert fired(ruleset, title) == (["r"] if expected else [])


def test_case_sensitive_terms(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [{term: US, case_sensitive: true}, gallium]}"))
    assert fired(ruleset, "US curbs gallium") == ["r"]
    assert fired(ruleset, "Tell us about gallium") == []


def test_an_exclusion_that_contains_no_term_is_refused(write_rules: RuleWriter) -> None:
    path = write_rules(
        "vocabulary: v\nterms: [graphite]\nexclude:\n  - Tungsten Software\n---\n" + rule("r", "{vocab: v}")
    )
    with pytest.raises(RuleError, match="contains none of the terms") as info:
        load_ruleset([path])
    assert (info.value.file, info.value.line) == (str(path), 4)


def test_an_exclusion_with_inflected_words_of_a_multiword_term_is_accepted(ruleset_of: Load) -> None:
    # The check compares the phrase's own inflections with the term's: "fail~ to secure power" holds
    # "failed to secure" only once both are inflected (refused before: each inflection was written out).
    vocab = "vocabulary: v\nterms: [fail~ to secure]\nexclude: [fail~ to secure power]\n---\n"
    ruleset = ruleset_of(vocab + rule("r", "{all: [{vocab: v}, nickel]}"))
    assert fired(ruleset, "Nickel smelter failed to secure power") == []
    assert fired(ruleset, "Nickel smelter failing to secure power") == []
    assert fired(ruleset, "Nickel smelter failed to secure ore") == ["r"]


# --------------------------------------------------------------------------- Traditional Chinese


@pytest.mark.parametrize(
    "title",
    ["中國擴大稀土出口管制", "稀土出口許可證", "經濟部：釹鐵硼出口須事先取得許可"],
)
def test_traditional_text_matches_simplified_terms(ruleset_of: Load, title: str) -> None:
    ruleset = ruleset_of(rule("r", "{all: [{any: [稀土, 钕铁硼]}, {any: [出口管制, 许可]}]}"))
    assert fired(ruleset, title) == ["r"]


def test_traditional_terms_are_converted_too(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [稀土, 出口管製]}"))  # the rule in Traditional characters
    assert fired(ruleset, "稀土出口管制") == ["r"]


def test_snippets_keep_the_original_characters(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [稀土, 许可证]}"))
    [match] = ruleset.match_fields({"title": "台灣稀土出口許可證"})
    assert "許可證" in match.snippet


def test_a_simplified_regex_matches_traditional_text(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", '{all: [稀土, {regex: "对[^，]{0,4}出口"}]}'))
    assert fired(ruleset, "對日稀土出口收緊") == ["r"]
    assert fired(ruleset, "对日稀土出口收紧") == ["r"]


def test_a_simplified_regex_under_none_vetoes_traditional_text(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", '{all: [稀土], none: [{regex: "价格"}]}'))
    assert fired(ruleset, "稀土價格上漲") == []
    assert fired(ruleset, "稀土出口收緊") == ["r"]


def test_regex_evidence_keeps_the_original_characters(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", '{all: [稀土, {regex: "出口许可证"}]}'))
    [match] = ruleset.match_fields({"title": "台灣稀土出口許可證"})
    assert "出口許可證" in match.terms
    assert "出口许可证" not in match.terms


# --------------------------------------------------------------------------- entities

ENTITIES = """\
vocabulary: materials
kind: materials
entities:
  dysprosium: [镝, Dy2O3]
  ndfeb magnets: [NdFeB, 钕铁硼]
  graphite: [石墨]
exclude: [Graphite Capital]
---
vocabulary: countries
kind: countries
entities:
  china: [Chinese, Beijing, 中国]
  united states: [{term: US, case_sensitive: true}, Washington, 美国]
  mongolia: [蒙古国]
exclude: [Inner Mongolia]
---
"""


def test_entities_are_canonical_names_in_order_of_mention(ruleset_of: Load) -> None:
    ruleset = ruleset_of(ENTITIES + rule("r", "{vocab: materials}"))
    found = ruleset.entities_fields(
        {"title": "US curbs NdFeB magnets from Beijing", "summary": "Dysprosium and Dy2O3 also covered."}
    )
    assert found == Entities(materials=("ndfeb magnets", "dysprosium"), countries=("united states", "china"))


def test_entities_respect_exclusions_and_case(ruleset_of: Load) -> None:
    ruleset = ruleset_of(ENTITIES + rule("r", "{vocab: materials}"))
    assert ruleset.entities_fields({"title": "Graphite Capital tells us it buys"}) == Entities()
    assert ruleset.entities_fields({"title": "Graphite Capital buys graphite mine"}).materials == (
        "graphite",
    )


def test_entities_of_chinese_and_traditional_text(ruleset_of: Load) -> None:
    ruleset = ruleset_of(ENTITIES + rule("r", "{vocab: materials}"))
    assert ruleset.entities_fields({"title": "美國限制中國鏑出口"}) == Entities(
        ("dysprosium",), ("united states", "china")
    )


def test_entity_vocabularies_need_a_kind(write_rules: RuleWriter) -> None:
    path = write_rules("vocabulary: v\nentities:\n  gallium: [镓]\n---\n" + rule("r", "gallium"))
    with pytest.raises(RuleError, match="kind"):
        load_ruleset([path])


def test_entities_of_an_item(ruleset_of: Load) -> None:
    ruleset = ruleset_of(ENTITIES + rule("r", "{vocab: materials}"))
    item = Item("i", "src", "China limits dysprosium", "https://x", "", "", datetime(2025, 1, 1, tzinfo=UTC))
    assert ruleset.entities(item) == Entities(("dysprosium",), ("china",))
