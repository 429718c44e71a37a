"""The bundled pack writes whole words before `~`.

`~` generates a word's inflections from the word as written (`rarewatch.ruleset.forms`), so a stem cut
short finds only some of them: `reduc~` finds "reduced", "reducing" and (through the matcher's plural
ending) "reduces", but never "reduce"; `worr~` finds none of "worry", "worries", "worried". Session 23
found 31 such stems in the pack (a smelter told "to reduce" its power use went unseen). The check below
is a heuristic on the spelling (endings English base forms do not have), not a dictionary: it catches
the patterns those 31 followed, not every possible cut.
"""

from __future__ import annotations

import re

import pytest

from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import load_ruleset
from rarewatch.ruleset.forms import inflections

# Endings of a word cut before its final "e" or "y": announc~, remov~, doubl~, smuggl~, dodg~, paralyz~,
# paralys~, worr~, revok~, alleg~, and the "-ate" verbs (terminat~, violat~, evacuat~, confiscat~ ...).
_CUT_SHORT = re.compile(
    r"(?:c|v|bl|gl|pl|dg|yz|lys|rr|[bcdfghjklmnpqrstvwxz]ok)$|^.{3,}eg$|^.{3,}[iluncgdp]at$"
)


def _looks_cut_short(stem: str) -> bool:
    return _CUT_SHORT.search(stem) is not None


def _pack_stems() -> set[str]:
    stems: set[str] = set()
    for path in bundled_rules_dir().glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        stems |= {m.lower() for m in re.findall(r"(?<![A-Za-z])([A-Za-z]{2,})~", text)}
    return stems


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
    assert _looks_cut_short(stem)


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
    assert not _looks_cut_short(word)


def test_a_cut_stem_misses_the_base_form_that_the_whole_word_finds() -> None:
    assert "reduce" not in inflections("reduc")
    assert "reduce" in inflections("reduce")
    assert not {"worry", "worries", "worried"} & inflections("worr")


def test_no_stem_of_the_bundled_pack_is_cut_short() -> None:
    stems = _pack_stems()
    assert len(stems) > 300  # the scan found the pack's stems
    assert sorted(s for s in stems if _looks_cut_short(s)) == []


def test_the_whole_word_reaches_the_base_form_in_the_bundled_pack() -> None:
    """A smelter told "to reduce" its power use: found since the stems were written whole."""
    ruleset = load_ruleset([bundled_rules_dir()])
    fields = {"title": "Grid asks the aluminium smelter to reduce its electricity usage", "summary": ""}
    assert {m.category for m in ruleset.match_fields(fields, lang="en")} == {"supply-disruption"}
