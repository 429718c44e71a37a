"""English glosses of Chinese terms: the `glossary` vocabulary kind, segmentation, and the bundled pack."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rarewatch.errors import RuleError
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset.compile import _inline_terms
from rarewatch.ruleset.glossary import Glossary, Segment, has_cjk
from rarewatch.ruleset.schema import CasedTerm, VocabRef
from tests.unit.ruleset.conftest import RuleWriter, rule

GLOSSARY = Glossary(
    {
        "出口": "exports",
        "管制": "controls",
        "出口管制": "export control",
        "稀土": "rare earths",
        "调查": "investigation",
        "停产": "production halted",
    }
)


# ---------------------------------------------------------------------------------------------------
# Segmentation and fallback


def test_a_term_with_its_own_entry_is_glossed_as_written() -> None:
    assert GLOSSARY.gloss("出口管制") == "export control"
    assert GLOSSARY.entry("出口管制") == "export control"


def test_a_term_without_an_entry_is_composed_from_its_longest_glossed_parts() -> None:
    # Greedy longest match: 出口管制 wins over 出口 + 管制.
    assert GLOSSARY.segments("稀土出口管制") == [
        Segment("稀土", "rare earths"),
        Segment("出口管制", "export control"),
    ]
    assert GLOSSARY.gloss("稀土出口管制") == "rare earths export control"
    assert GLOSSARY.entry("稀土出口管制") is None
    assert GLOSSARY.gloss("管制出口") == "controls exports"


def test_digits_and_latin_letters_stand_for_themselves() -> None:
    assert GLOSSARY.gloss("232调查") == "232 investigation"
    assert GLOSSARY.gloss("NdFeB停产") == "ndfeb production halted"


def test_uncovered_characters_are_kept_and_reported() -> None:
    assert GLOSSARY.gloss("被列入稀土清单") == "被列入 rare earths 清单"
    assert GLOSSARY.uncovered("被列入稀土清单") == ("被列入", "清单")
    assert GLOSSARY.uncovered("稀土出口管制") == ()


def test_nothing_glossed_or_nothing_chinese_gives_none() -> None:
    assert GLOSSARY.gloss("清单") is None
    assert GLOSSARY.gloss("export control") is None
    assert GLOSSARY.gloss("232") is None


def test_traditional_script_is_glossed_through_the_simplified_entries() -> None:
    assert GLOSSARY.gloss("稀土出口管製") == "rare earths export control"
    assert GLOSSARY.gloss("停產") == "production halted"


def test_glosses_pairs_each_chinese_term_once_in_order() -> None:
    terms = ["稀土", "export licence", "停产", "稀土", "清单"]
    assert GLOSSARY.glosses(terms) == (("稀土", "rare earths"), ("停产", "production halted"))


def test_an_empty_glossary_glosses_nothing() -> None:
    assert Glossary({}).gloss("稀土") is None
    assert Glossary({}).uncovered("稀土") == ("稀土",)


# ---------------------------------------------------------------------------------------------------
# The `glossary` kind in rule files

PACK = """\
vocabulary: materials
kind: materials
entities:
  rare earths: [rare earth, 稀土]
  gallium: [gallium, 镓]
---
vocabulary: glossary-zh
kind: glossary
entries:
  停产: production halted
  镓: gallium (Ga)
---
"""


def test_entity_synonyms_gloss_as_their_canonical_names_and_entries_win(
    ruleset_of: Callable[[str], Ruleset],
) -> None:
    ruleset = ruleset_of(PACK + rule("r", "{near: [{vocab: materials}, 停产], within: 10}"))
    glossary = ruleset.glossary
    assert glossary.gloss("稀土") == "rare earths"
    assert glossary.gloss("镓") == "gallium (Ga)"  # the glossary entry wins over the entity name
    assert glossary.gloss("稀土停产") == "rare earths production halted"


def test_the_ruleset_glosses_the_chinese_terms_that_fired(ruleset_of: Callable[[str], Ruleset]) -> None:
    ruleset = ruleset_of(PACK + rule("r", "{near: [{vocab: materials}, 停产], within: 10}"))
    matches = ruleset.match_fields({"title": "多家稀土企业停产"})
    assert [m.terms for m in matches] == [("稀土", "停产")]
    assert ruleset.glosses(matches) == (("稀土", "rare earths"), ("停产", "production halted"))


def glossary_error(write_rules: RuleWriter, entries: str, **extra: str) -> RuleError:
    lines = ["vocabulary: glossary-zh", "kind: glossary", *[f"{k}: {v}" for k, v in extra.items()]]
    text = "\n".join(lines) + "\nentries:\n" + entries + "---\n" + rule("r", "gallium")
    path = write_rules(text)
    with pytest.raises(RuleError) as info:
        load_ruleset([path])
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize(
    ("entries", "line", "message"),
    [
        ("  停产: production halted\n  出口: ''\n", 5, "entries.出口: gloss '' must be non-empty"),
        ("  停产: production halted\n  虚假: false\n", 5, "entries.虚假: Input should be a valid string"),
        ("  停产: 停止生产\n", 4, "must be English, not Chinese"),
        ("  export: exports\n", 4, "has no Chinese character"),
        ("  停產: production halted\n", 4, "is in Traditional script: write it in Simplified ('停产')"),
        ("  停 产: production halted\n", 4, "must be one term without spaces"),
        ("  停产: " + "x" * 81 + "\n", 4, "is longer than 80 characters"),
        ("  停产: ' production halted'\n", 4, "without leading or trailing spaces"),
    ],
)
def test_bad_entries_are_errors_with_file_and_line(
    write_rules: RuleWriter, entries: str, line: int, message: str
) -> None:
    err = glossary_error(write_rules, entries)
    assert err.line == line
    assert message in err.message


def test_a_glossary_holds_entries_only(write_rules: RuleWriter) -> None:
    err = glossary_error(write_rules, "  停产: production halted\n", terms="[停产]")
    assert err.line == 1
    assert "a glossary holds `entries` only" in err.message


def test_entries_need_the_glossary_kind_and_the_kind_needs_entries(write_rules: RuleWriter) -> None:
    path = write_rules("vocabulary: g\nentries: {停产: production halted}\n---\n" + rule("r", "gallium"))
    with pytest.raises(RuleError, match="`entries` need `kind: glossary`"):
        load_ruleset([path])
    path = write_rules("vocabulary: g\nkind: glossary\n---\n" + rule("r", "gallium"))
    with pytest.raises(RuleError, match="a glossary needs `entries`"):
        load_ruleset([path])


def test_a_rule_cannot_match_on_a_glossary(write_rules: RuleWriter) -> None:
    path = write_rules(
        "vocabulary: g\nkind: glossary\nentries: {停产: production halted}\n---\n"
        + rule("r", "{all: [gallium, {vocab: g}]}")
    )
    with pytest.raises(RuleError) as info:
        load_ruleset([path])
    assert (info.value.line, info.value.rule_id) == (9, "r")
    assert "is a glossary" in info.value.message


def test_one_term_glossed_two_ways_is_an_error_naming_both_places(write_rules: RuleWriter) -> None:
    first = write_rules("vocabulary: a\nkind: glossary\nentries:\n  停产: production halted\n", "a.yaml")
    second = write_rules(
        "vocabulary: b\nkind: glossary\nentries:\n  减产: output cut\n  停产: shutdown\n---\n"
        + rule("r", "gallium"),
        "b.yaml",
    )
    with pytest.raises(RuleError) as info:
        load_ruleset([first, second])
    assert (info.value.file, info.value.line) == (str(second), 5)
    assert f"glossed 'shutdown' here but 'production halted' at {first}:4" in info.value.message


def test_the_same_gloss_twice_is_fine(write_rules: RuleWriter) -> None:
    first = write_rules("vocabulary: a\nkind: glossary\nentries: {停产: production halted}\n", "a.yaml")
    second = write_rules(
        "vocabulary: b\nkind: glossary\nentries: {停产: production halted}\n---\n" + rule("r", "gallium"),
        "b.yaml",
    )
    assert load_ruleset([first, second]).glossary.gloss("停产") == "production halted"


# ---------------------------------------------------------------------------------------------------
# The bundled pack


def chinese_terms(ruleset: Ruleset) -> dict[str, str]:
    """Every Chinese term of the pack (vocabularies, entities, negators, the rules' own terms) and
    where it is defined. Exclusion phrases are not terms: they never fire, so never need a gloss."""
    found: dict[str, str] = {}

    def add(term: object, where: str) -> None:
        text = term.term if isinstance(term, CasedTerm) else term
        if isinstance(text, str) and has_cjk(text):
            found.setdefault(text, where)

    for name, vocabulary in ruleset.vocabularies.items():
        for term in vocabulary.all_terms():
            add(term, f"vocabulary {name}")
        for negation in vocabulary.negated_by:
            for t in negation.terms:
                add(t, f"vocabulary {name} (negated_by)")
    for r in ruleset.rules:
        for term in _inline_terms(r.match):
            add(term, f"rule {r.id}")
        for negation in r.negated_by:
            for t in negation.terms:
                if not isinstance(t, VocabRef):
                    add(t, f"rule {r.id} (negated_by)")
    return found


def test_every_chinese_term_of_the_bundled_pack_has_an_english_gloss() -> None:
    ruleset = load_ruleset([bundled_rules_dir()])
    terms = chinese_terms(ruleset)
    assert len(terms) > 400  # the walk found the pack's terms
    uncovered = {t: (where, ruleset.glossary.uncovered(t)) for t, where in terms.items()}
    uncovered = {t: u for t, u in uncovered.items() if u[1] or not ruleset.glossary.gloss(t)}
    report = "\n".join(
        f"  {term}: not covered {''.join(parts) or term!r} ({where})"
        for term, (where, parts) in sorted(uncovered.items(), key=lambda x: x[1][0])
    )
    if uncovered:
        print(f"Chinese terms without an English gloss (add entries to rules/glossary.yaml):\n{report}")
    assert not uncovered, f"{len(uncovered)} Chinese terms without a full English gloss:\n{report}"


def test_the_bundled_pack_glosses_the_examples_of_the_brief() -> None:
    glossary = load_ruleset([bundled_rules_dir()]).glossary
    assert glossary.gloss("稀土") == "rare earths"
    assert glossary.gloss("不可靠实体清单") == "unreliable entity list"
    assert glossary.gloss("停产") == "production halted"
    assert glossary.gloss("稀土出口管制") == "rare earths export control"
