"""What fires and what does not: term variants, boundaries, CJK, proximity, boolean nesting, filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from rarewatch.models import Item, Severity
from rarewatch.ruleset import Ruleset
from rarewatch.ruleset import nodes as rule_nodes
from tests.unit.ruleset.conftest import rule

Load = Callable[[str], Ruleset]


def fired(ruleset: Ruleset, title: str = "", summary: str = "", content: str = "", **kw: str) -> list[str]:
    return [
        m.rule for m in ruleset.match_fields({"title": title, "summary": summary, "content": content}, **kw)
    ]


@pytest.mark.parametrize(
    "title",
    [
        "rare earth",
        "Rare Earth",
        "RARE EARTHS",
        "rare-earth magnets",
        "rare–earth (en dash)",
        "rare   earth",
        "rare\nearth",
        "Rare Earth's exports",
        "the rare earths' prices",
        "ＲＡＲＥ ＥＡＲＴＨ",  # full width: NFKC
        "稀土与rare earth",
    ],
)
def test_term_variants_match(ruleset_of: Load, title: str) -> None:
    assert fired(ruleset_of(rule("r", "rare earth")), title) == ["r"]


@pytest.mark.parametrize(
    ("title", "expected"), [("随着管制收紧", ["r"]), ("隨著管制收緊", ["r"]), ("随同管制", [])]
)
def test_a_term_with_the_particle_zhe_matches_traditional_text(
    ruleset_of: Load, title: str, expected: list[str]
) -> None:
    # t2s keeps 著 (a Simplified character too), so Traditional 隨著 is searched as 随著, not 随着
    assert fired(ruleset_of(rule("r", "随着")), title) == expected


@pytest.mark.parametrize("title", ["rare earthenware", "rareearth", "rare, earth", "a rare find on earth"])
def test_term_does_not_match_across_words_or_punctuation(ruleset_of: Load, title: str) -> None:
    assert fired(ruleset_of(rule("r", "rare earth")), title) == []


@pytest.mark.parametrize(
    ("term", "title", "expected"),
    [
        ("ban", "Export ban announced", True),
        ("ban", "Two bans announced", True),
        ("ban", "Central bank raises rates", False),
        ("ban", "Urban planning", False),
        ("ban", "The band plays on", False),
        ("export licence", "export licenses revoked", True),
        ("export license", "new export licence regime", True),
        ("export licence", "export-licence", True),
        ("licensing", "licencing rules", True),
        ("tariff", "tariffs rise", True),
        ("tax", "taxes rise", True),
        ("supply", "supplies dwindle", True),
        ("authorised", "authorized exporters", True),
        ("authorise", "authorized exporters", False),  # no "-d/-ed" tolerance: list past tenses
        ("anti-dumping", "antidumping duties", True),
        ("anti-dumping", "anti dumping duties", True),
        ("gallium", "Gallium-based chips", True),
        ("gallium", "gallium2", False),
    ],
)
def test_word_forms_and_boundaries(ruleset_of: Load, term: str, title: str, expected: bool) -> None:
    ruleset = ruleset_of(rule("r", f'"{term}"'))
    assert fired(ruleset, title) == (["r"] if expected else [])


def test_cjk_terms_match_as_substrings(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [稀土, 出口管制]}"))
    assert fired(ruleset, "商务部对部分中重稀土相关物项实施出口管制") == ["r"]
    assert fired(ruleset, "稀土价格上涨，城市交通管制") == []


def test_latin_term_next_to_chinese_text_has_a_boundary(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "NdFeB"))
    assert fired(ruleset, "钕铁硼NdFeB磁体出口") == ["r"]
    assert fired(ruleset, "xNdFeB") == []


def test_bare_symbols_only_through_a_case_sensitive_regex(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", r"{all: [{regex: '\bNd\b', case_sensitive: true}, magnets]}"))
    assert fired(ruleset, "Nd magnets in short supply") == ["r"]
    assert fired(ruleset, "ND magnets and nd magnets") == []


def test_regex_is_case_insensitive_by_default_and_sees_the_displayed_text(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", r"{all: [gallium, {regex: 'GB/T\s+\d+'}]}"))
    assert fired(ruleset, "Gallium standard gb/t 12345 published") == ["r"]
    assert fired(ruleset, "Gallium standard published") == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("export ban", True),  # adjacent: no word between
        ("ban on exports", True),  # either order, one word between
        ("export of a ban", True),  # two words between
        ("export of the new ban", False),  # three words between
        ("export. Elsewhere, a ban", True),
    ],
)
def test_near_counts_words_between(ruleset_of: Load, title: str, expected: bool) -> None:
    ruleset = ruleset_of(rule("r", "{near: [export, [ban, prohibition]], within: 2}"))
    assert fired(ruleset, title) == (["r"] if expected else [])


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("稀土出口", True),
        ("稀土产品的出口", True),  # three characters between
        ("稀土产品的正常出口", False),  # five characters between
        ("出口大量稀土", True),  # either order
    ],
)
def test_near_counts_characters_for_cjk(ruleset_of: Load, title: str, expected: bool) -> None:
    ruleset = ruleset_of(rule("r", "{near: [稀土, 出口], within: 3}"))
    assert fired(ruleset, title) == (["r"] if expected else [])


def test_near_never_pairs_hits_in_different_fields(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{near: [export, ban], within: 3}"))
    assert fired(ruleset, "News about export", "ban on everything") == []
    assert fired(ruleset, "News", "export ban on everything") == ["r"]


def test_near_sides_take_vocabularies(ruleset_of: Load) -> None:
    ruleset = ruleset_of(
        "vocabulary: metals\nterms: [gallium, germanium]\n---\n"
        + rule("r", "{near: [{vocab: metals}, [export ban, embargo]], within: 4}")
    )
    assert fired(ruleset, "An embargo on germanium") == ["r"]
    assert fired(ruleset, "An embargo was lifted long before anyone thought about germanium") == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("rare earth export controls", True),
        ("gallium export controls", True),
        ("rare earth export controls on software", False),  # none
        ("rare earth prices", False),  # all: action missing
        ("export controls", False),  # all: subject missing
        ("稀土出口管制", True),
        ("rare earth smuggling trial", True),  # nested any -> all
        ("rare earth smuggling", False),  # nested all incomplete
    ],
)
def test_all_any_none_nest(ruleset_of: Load, title: str, expected: bool) -> None:
    ruleset = ruleset_of(
        rule(
            "r",
            """
  all:
    - any: [rare earth, gallium, 稀土]
    - any:
        - export control
        - 出口管制
        - all: [smuggling, {any: [trial, court]}]
  none: [software]""",
        )
    )
    assert fired(ruleset, title) == (["r"] if expected else [])


def test_a_vocabulary_synonym_reaches_every_rule(ruleset_of: Load) -> None:
    text = "vocabulary: materials\nterms: [rare earth, scandium]\n---\n"
    text += (
        rule("a", "{all: [{vocab: materials}, ban]}")
        + "---\n"
        + rule("b", "{all: [{vocab: materials}, shortage]}")
    )
    ruleset = ruleset_of(text)
    assert fired(ruleset, "Scandium ban and scandium shortage") == ["a", "b"]


def test_sources_restrict_a_rule(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "gallium", sources="[mofcom, federal-register]"))
    assert fired(ruleset, "gallium", source="mofcom") == ["r"]
    assert fired(ruleset, "gallium", source="mining-com") == []
    assert fired(ruleset, "gallium") == []


def test_fields_restrict_where_terms_count(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [gallium, ban]}", fields="[title]"))
    assert fired(ruleset, "Gallium ban") == ["r"]
    assert fired(ruleset, "Gallium", "ban") == []
    assert fired(ruleset, "News", "gallium ban") == []


def test_matches_are_sorted_and_carry_rule_data_terms_and_snippet(ruleset_of: Load) -> None:
    ruleset = ruleset_of(
        rule("zz-last", "{all: [gallium, ban]}")
        + "---\n"
        + rule("aa-first", "{any: [germanium, gallium]}").replace("severity: high", "severity: critical")
    )
    matches = ruleset.match_fields({"title": "Gallium Ban Extended"})
    assert [m.rule for m in matches] == ["aa-first", "zz-last"]
    first, last = matches
    assert (first.category, first.severity) == ("export-licensing", Severity.CRITICAL)
    assert first.terms == ("gallium",)
    assert last.terms == ("gallium", "ban")
    assert last.snippet == "Gallium Ban Extended"


def test_snippet_is_about_160_characters_around_the_first_hit(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [rare earth, export ban]}"))
    before = "Lorem ipsum dolor sit amet. " * 20
    after = " Consectetur adipiscing elit." * 20
    content = before + "China's Rare-Earth  export ban widens." + after
    (match,) = ruleset.match_fields({"content": content})
    assert "Rare-Earth export ban widens" in match.snippet
    assert match.snippet.startswith("…") and match.snippet.endswith("…")
    assert 120 <= len(match.snippet) <= 170
    assert match.terms == ("rare earth", "export ban")


def test_match_of_an_item_equals_match_fields(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [gallium, ban]}", sources="[wire]"))
    item = Item("id1", "wire", "Gallium", "https://x.org/1", "ban confirmed", "", datetime.now(UTC), "en")
    assert ruleset.match(item) == ruleset.match_fields(
        {"title": "Gallium", "summary": "ban confirmed"}, source="wire", lang="en"
    )
    assert [m.rule for m in ruleset.match(item)] == ["r"]


def test_a_regex_runs_only_when_the_terms_leave_the_answer_open(
    ruleset_of: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    search = rule_nodes.Regex._search

    def counting(self: rule_nodes.Regex, scan: rule_nodes.Scan, fields: int) -> object:
        calls.append(self.pattern.pattern)
        return search(self, scan, fields)

    monkeypatch.setattr(rule_nodes.Regex, "_search", counting)
    ruleset = ruleset_of(rule("r", r"{all: [gallium, {regex: 'ban\w*'}]}"))
    assert fired(ruleset, "Nothing about metals, a ban") == []
    assert calls == [], "no anchor term: the rule is not evaluated at all"
    assert fired(ruleset, "Gallium bans") == ["r"]
    assert len(calls) >= 1


def test_a_regex_only_rule_is_evaluated_on_every_item(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", r"{regex: 'EAR\s?99', case_sensitive: true}"))
    assert fired(ruleset, "Items classified EAR99 may ship") == ["r"]
    assert fired(ruleset, "ear99") == []


def test_plain_unnormalised_input_is_handled(ruleset_of: Load) -> None:
    ruleset = ruleset_of(rule("r", "{all: [rare earth, export licence]}"))
    assert fired(ruleset, "  RARE\u00a0EARTH \t export\u2011licences  ") == ["r"]
