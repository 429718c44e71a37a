"""Named regex patterns: `kind: patterns` vocabularies, written `{{name}}` inside a rule's regex."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rarewatch.errors import RuleError
from rarewatch.ruleset import Ruleset, load_ruleset
from tests.unit.ruleset.conftest import RuleWriter, rule

PATTERNS = """\
vocabulary: targets
kind: patterns
patterns:
  named-country: "US|Japan|South Korea"
  not-after-a-cause: "(?<!due )(?<!response )"
"""
TARGETED = (
    '{all: [ban, {regex: "\\\\b{{not-after-a-cause}}to\\\\s+{{named-country}}\\\\b", case_sensitive: true}]}'
)


def load_error(path: Path) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_ruleset([path])
    return info.value


def fired(ruleset: Ruleset, title: str) -> bool:
    return bool(ruleset.match_fields({"title": title}))


def test_a_named_pattern_is_spliced_into_the_regex(ruleset_of: Callable[[str], Ruleset]) -> None:
    ruleset = ruleset_of(PATTERNS + "---\n" + rule("a", TARGETED))
    assert fired(ruleset, "China bans gallium exports to Japan")
    assert fired(ruleset, "China bans gallium exports to South Korea")
    assert not fired(ruleset, "China bans gallium exports to Brazil")
    # The look-behinds of the other pattern hold where it is written.
    assert not fired(ruleset, "China bans gallium exports due to Japan")


def test_each_pattern_is_a_group_of_its_own(ruleset_of: Callable[[str], Ruleset]) -> None:
    """`to {{named-country}}` must not read as `to US` or `Japan` anywhere: the alternation is grouped."""
    ruleset = ruleset_of(PATTERNS + "---\n" + rule("a", TARGETED))
    assert not fired(ruleset, "Japan: a ban on gallium, analysts say")


def test_patterns_have_one_home_across_files(write_rules: RuleWriter, tmp_path: Path) -> None:
    write_rules(PATTERNS, "a/patterns.yaml")
    write_rules(rule("a", TARGETED), "b/rules.yaml")
    ruleset = load_ruleset([tmp_path])
    assert fired(ruleset, "Tokyo hit as Beijing bans exports to Japan")


def test_an_unknown_pattern_names_the_line_and_the_closest_name(write_rules: RuleWriter) -> None:
    text = PATTERNS + "---\n" + rule("a", TARGETED.replace("{{named-country}}", "{{named-contry}}"))
    err = load_error(write_rules(text))
    assert (err.line, err.rule_id) == (11, "a")  # the `match:` line
    assert "unknown pattern {{named-contry}}; did you mean 'named-country'?" in err.message


def test_a_pattern_with_no_patterns_defined_is_an_error(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(rule("a", TARGETED)))
    assert "unknown pattern {{not-after-a-cause}}" in err.message and "none defined" in err.message


def test_a_regex_broken_by_its_expansion_is_an_error(write_rules: RuleWriter) -> None:
    broken = TARGETED.replace("{{named-country}}\\\\b", "({{named-country}}")
    err = load_error(write_rules(PATTERNS + "---\n" + rule("a", broken)))
    assert err.rule_id == "a" and "invalid regex" in err.message and "named patterns expanded" in err.message


def test_an_expansion_that_matches_nothing_at_all_is_refused(write_rules: RuleWriter) -> None:
    text = "vocabulary: p\nkind: patterns\npatterns:\n  maybe: 'x?'\n---\n" + rule(
        "a", '{all: [ban, {regex: "{{maybe}}"}]}'
    )
    err = load_error(write_rules(text))
    assert "matches the empty string" in err.message


def test_stray_braces_are_refused(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(PATTERNS + "---\n" + rule("a", '{all: [ban, {regex: "to {{Japan"}]}')))
    assert "kept for named patterns" in err.message


def test_a_pattern_defined_twice_is_an_error_at_the_second(write_rules: RuleWriter) -> None:
    again = PATTERNS.replace("vocabulary: targets", "vocabulary: more")
    err = load_error(write_rules(PATTERNS + "---\n" + again + "---\n" + rule("a", TARGETED)))
    assert (
        err.line == 10 and "duplicate pattern 'named-country'" in err.message and "'targets'" in err.message
    )


def test_a_patterns_vocabulary_is_not_a_list_of_terms(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(PATTERNS + "---\n" + rule("a", "{all: [ban, {vocab: targets}]}")))
    assert err.rule_id == "a" and "holds named patterns" in err.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("vocabulary: p\npatterns: {x: 'a|b'}\n", "`patterns` need `kind: patterns`"),
        ("vocabulary: p\nkind: patterns\nterms: [gallium]\n", "`patterns` need `kind: patterns`"),
        ("vocabulary: p\nkind: patterns\npatterns: {x: 'a'}\nterms: [gallium]\n", "holds `patterns` only"),
        ("vocabulary: p\nkind: patterns\npatterns: {x: 'a({{y}})'}\n", "uses unknown pattern {{y}}"),
        ("vocabulary: p\nkind: patterns\npatterns: {x: 'a('}\n", "invalid regex"),
        # Traditional text is converted before regexes search it: 對 would never be found
        ("vocabulary: p\nkind: patterns\npatterns: {x: '對美'}\n", "Traditional characters (對)"),
        ("vocabulary: p\nkind: patterns\npatterns: {Bad_Name: 'a'}\n", "patterns.Bad_Name"),
    ],
)
def test_a_patterns_vocabulary_is_checked_at_load(
    write_rules: RuleWriter, document: str, message: str
) -> None:
    err = load_error(write_rules(document + "---\n" + rule("a", "gallium")))
    assert message in err.message


NESTED = """\
vocabulary: hedges
kind: patterns
patterns:
  possible: "could|may"
  urging: "urg\\\\w+"
  hedged: "{{possible}}|{{urging}}"
"""


def test_a_pattern_may_use_other_patterns(ruleset_of: Callable[[str], Ruleset]) -> None:
    """One home for a shared alternation: `hedged` is `possible` and `urging`, each expanded in turn."""
    veto = '{all: [ban], none: [{regex: "\\\\b{{hedged}}\\\\s+ban"}]}'
    ruleset = ruleset_of(NESTED + "---\n" + rule("a", veto))
    assert fired(ruleset, "Ministry will ban gallium exports")
    assert not fired(ruleset, "Ministry could ban gallium exports")
    assert not fired(ruleset, "Lawmakers urge ban on gallium exports")


def test_patterns_used_inside_patterns_stay_groups(ruleset_of: Callable[[str], Ruleset]) -> None:
    """`x{{possible}}` inside a pattern must read as x followed by one of the alternatives, not `xcould`
    or `may`."""
    text = NESTED + "  lead: 'x{{possible}}'\n---\n" + rule("a", '{all: [ban, {regex: "ban\\\\s+{{lead}}"}]}')
    ruleset = ruleset_of(text)
    assert fired(ruleset, "a ban xmay")
    assert not fired(ruleset, "a ban may")


def test_patterns_that_use_each_other_in_a_cycle_are_an_error(write_rules: RuleWriter) -> None:
    cycle = "vocabulary: p\nkind: patterns\npatterns:\n  x: 'a{{y}}'\n  y: 'b{{z}}'\n  z: 'c{{x}}'\n"
    err = load_error(write_rules(cycle + "---\n" + rule("a", "gallium")))
    assert "patterns use each other in a cycle: x -> y -> z -> x" in err.message
    assert err.line == 4  # the first pattern of the cycle


def test_a_pattern_broken_by_its_expansion_is_an_error_at_its_line(write_rules: RuleWriter) -> None:
    broken = "vocabulary: p\nkind: patterns\npatterns:\n  x: 'a|b'\n  y: '({{x}}'\n"
    err = load_error(write_rules(broken + "---\n" + rule("a", "gallium")))
    assert err.line == 5 and "pattern 'y'" in err.message and "named patterns expanded" in err.message


def test_stray_braces_in_a_pattern_no_rule_uses_are_refused(write_rules: RuleWriter) -> None:
    """A fragment with braces is checked when the pack compiles, whether or not a rule uses it."""
    text = "vocabulary: p\nkind: patterns\npatterns:\n  x: 'a{{b'\n---\n" + rule("a", "gallium")
    err = load_error(write_rules(text))
    assert err.line == 4 and "pattern 'x'" in err.message and "kept for named patterns" in err.message


def test_an_unknown_pattern_inside_a_pattern_names_the_closest(write_rules: RuleWriter) -> None:
    text = NESTED.replace("{{urging}}", "{{urgin}}") + "---\n" + rule("a", "gallium")
    err = load_error(write_rules(text))
    assert "pattern 'hedged' uses unknown pattern {{urgin}}; did you mean 'urging'?" in err.message


def test_explanations_show_the_regex_as_written(ruleset_of: Callable[[str], Ruleset]) -> None:
    ruleset = ruleset_of(PATTERNS + "---\n" + rule("a", TARGETED))
    (why,) = ruleset.why_not({"title": "China bans gallium exports to Brazil"})
    assert any("{{named-country}}" in group for group in why["failed"])


def test_the_bundled_pack_keeps_the_country_list_in_one_place() -> None:
    """The reason the feature exists: trade-restrictions.yaml names its target countries once, through
    the patterns of countries.yaml, and they still catch a country-targeted ban."""
    rules = Path(__file__).parents[3] / "rules"
    assert "Philippines" not in (rules / "trade-restrictions.yaml").read_text(encoding="utf-8")
    ruleset = load_ruleset([rules])
    matches = ruleset.match_fields(
        {"title": "China bans exports of dual-use items to Japanese military users"}
    )
    assert "trade-restrictions" in {m.category for m in matches}


def test_the_bundled_pack_writes_its_english_hedges_once() -> None:
    """The vetoes of the trade, licensing and supply rules name the four English hedges as one pattern,
    `hedged-en`, defined beside them in negation.yaml (the review of session 48 found the alternation
    written out 16 times)."""
    rules = Path(__file__).parents[3] / "rules"
    alternation = "{{possible-en}}|{{not-yet-en}}|{{urging-en}}|{{not-decided-en}}"
    homes = sorted(p.name for p in rules.glob("*.yaml") if alternation in p.read_text(encoding="utf-8"))
    assert homes == ["negation.yaml"]
    assert sum(p.read_text(encoding="utf-8").count("{{hedged-en}}") for p in rules.glob("*.yaml")) >= 16
