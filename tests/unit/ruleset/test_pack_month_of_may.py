"""The bundled pack reads "May" in a date as the month, not as the hedge "may": a measure reported "on
May 9" or "in May" is a measure, while "customs may issue" stays a possibility (the exclusions of the
`hedges` vocabulary in rules/negation.yaml; session 21's development items)."""

from __future__ import annotations

import pytest

from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset

# A "may" up to four words before the measure hedges it; the date sits there, as in "customs on May 9
# issued a withhold release order" (each exclusion is needed on its own: none other covers its phrase).
MEASURE = "Customs {when} issued a withhold release order against silicon metal from one producer"

DATES = [f"May {day}" for day in range(1, 32)]
MONTH_PHRASES = [
    f"{word} May"
    for word in ("in", "from", "until", "by", "early", "mid", "late", "last", "this", "next", "end of", "on")
]


@pytest.fixture(scope="module")
def pack() -> Ruleset:
    return load_ruleset([bundled_rules_dir()])


def categories(pack: Ruleset, title: str) -> set[str]:
    return {m.category for m in pack.match_fields({"title": title, "summary": ""})}


@pytest.mark.parametrize("when", DATES + MONTH_PHRASES)
def test_a_date_in_may_does_not_hedge_the_measure(pack: Ruleset, when: str) -> None:
    assert "trade-restrictions" in categories(pack, MEASURE.format(when=when))


def test_may_as_a_verb_still_hedges_the_measure(pack: Ruleset) -> None:
    hedged = MEASURE.format(when="may").replace("may issued", "may issue")
    assert categories(pack, hedged) == set()
