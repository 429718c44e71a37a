"""Word stems cut short before `~` (`rarewatch.ruleset.lint.cut_short_stems`, advice of `rules check`).

`~` generates a word's inflections from the word as written (`rarewatch.ruleset.forms`), so a stem cut
short finds only some of them: `reduc~` finds "reduced", "reducing" and (through the matcher's plural
ending) "reduces", but never "reduce"; `worr~` finds none of "worry", "worries", "worried". Session 23
found 31 such stems in the bundled pack (a smelter told "to reduce" its power use went unseen). The
check is a heuristic on the spelling (endings English base forms do not have), not a dictionary: it
catches the patterns those 31 followed, not every possible cut.
"""

from __future__ import annotations

import io

import pytest

from rarewatch.commands.rules import rules_check
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import load_ruleset
from rarewatch.ruleset.files import read_rule_files
from rarewatch.ruleset.forms import inflections
from rarewatch.ruleset.lint import cut_short_stems, looks_cut_short
from tests.unit.ruleset.conftest import RuleWriter, rule


@pytest.mark.parametrize(
    "stem",
    [
        "reduc",
        "announc",
        "introduc",
        "forc",
        "remov",
        "doubl",
        "smuggl",
        "dodg",
        "paralyz",
        "paralys",
        "worr",
        "revok",
        "invok",
        "alleg",
        "terminat",
        "violat",
        "evacuat",
        "confiscat",
        "retaliat",
        "mandat",
    ],
)
def test_a_stem_cut_before_its_final_letter_is_flagged(stem: str) -> None:
    assert looks_cut_short(stem)


@pytest.mark.parametrize(
    "word",
    [
        "halt",
        "ban",
        "cut",
        "curb",
        "seal",
        "fall",
        "roll",
        "bar",
        "ship",
        "stem",
        "spy",
        "dry",
        "combat",
        "format",
        "threat",
        "treat",
        "book",
        "occur",
        "focus",
        "avoid",
        "raid",
        "beg",
        "smuggle",
        "reduce",
    ],
)
def test_a_whole_word_is_not_flagged(word: str) -> None:
    assert not looks_cut_short(word)


def test_a_cut_stem_misses_the_base_form_that_the_whole_word_finds() -> None:
    assert "reduce" not in inflections("reduc")
    assert "reduce" in inflections("reduce")
    assert not {"worry", "worries", "worried"} & inflections("worr")


def test_rules_check_advises_the_whole_word_at_the_stem_s_line(write_rules: RuleWriter) -> None:
    vocab = (
        "vocabulary: acts\n"
        "terms:\n"
        "  - reduc~ output\n"  # line 3
        "  - halt~\n"
        "  # a comment may say reduc~ freely\n"
        "  - worr~\n"  # line 6
    )
    text = vocab + "---\n" + rule("r", '{all: [{vocab: acts}, {regex: "evacuat~"}]}')  # regexes aside
    path = write_rules(text)
    out = io.StringIO()
    assert rules_check([path], out) == 0  # advice, not an error
    warnings = [line for line in out.getvalue().splitlines() if ": warning: " in line]
    assert warnings == [
        f"{path}:3: warning: 'reduc~' looks cut short: its forms grow from the word as written and never "
        "include the word itself; write the whole word ('reduce~')",
        f"{path}:6: warning: 'worr~' looks cut short: its forms grow from the word as written and never "
        "include the word itself; write the whole word ('worry~')",
    ]


def test_no_stem_of_the_bundled_pack_is_cut_short() -> None:
    files = read_rule_files([bundled_rules_dir()])
    assert sum(text.count("~") for _, text in files) > 1000  # the scan read the pack's stems
    assert cut_short_stems(files) == []


def test_the_whole_word_reaches_the_base_form_in_the_bundled_pack() -> None:
    """A smelter told "to reduce" its power use: found since the stems were written whole."""
    ruleset = load_ruleset([bundled_rules_dir()])
    fields = {"title": "Grid asks the aluminium smelter to reduce its electricity usage", "summary": ""}
    assert {m.category for m in ruleset.match_fields(fields, lang="en")} == {"supply-disruption"}
