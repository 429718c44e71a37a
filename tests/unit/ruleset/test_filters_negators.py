"""The negation stage of the hit filters asks a term's checks only when the item holds one of its
negators (`filters.Negators`), and keeps what the item holds up to date as hits are dropped."""

from __future__ import annotations

from rarewatch.ruleset.filters import Negators, apply_filters
from rarewatch.ruleset.nodes import Hit
from rarewatch.ruleset.terms import NegationCheck, TermOptions


class _AskedSet(frozenset[int]):
    """A set of negators that records each time the item's negators are intersected with it."""

    asked = 0

    def intersection(self, *others: object) -> frozenset[int]:
        _AskedSet.asked += 1
        return frozenset(self).intersection(*others)  # type: ignore[arg-type]


def _check(negators: frozenset[int]) -> NegationCheck:
    return NegationCheck(negators, 3, 3, None, None)


def _filter(options: dict[int, TermOptions], hits: dict[int, list[Hit]], search: str) -> dict[int, int]:
    masks = {tid: 1 for tid in hits}
    apply_filters(options, [True] * 10, hits, masks, [search], lambda field: search, Negators(options))
    return masks


def test_a_term_none_of_whose_negators_the_item_holds_has_no_check_asked() -> None:
    # "gallium" (0) is negated by "denied" (5), absent; "export" (1) by "no" (2), present; "ore" (3) has
    # an exclusion and no negation check.
    _AskedSet.asked = 0
    options = {
        0: TermOptions(negations=(_check(_AskedSet({5})),)),
        1: TermOptions(negations=(_check(frozenset({2})),)),
        3: TermOptions(excludes=frozenset({9})),
    }
    search = "no export of gallium ore"
    hits = {2: [Hit(0, 0, 2)], 1: [Hit(0, 3, 9)], 0: [Hit(0, 13, 20)], 3: [Hit(0, 21, 24)]}
    masks = _filter(options, hits, search)
    assert _AskedSet.asked == 0
    assert hits == {2: [Hit(0, 0, 2)], 0: [Hit(0, 13, 20)], 3: [Hit(0, 21, 24)]}  # "no export": negated
    assert masks == {2: 1, 0: 1, 3: 1}


def test_a_negator_dropped_by_its_own_negation_no_longer_negates() -> None:
    # "not" (2) negates "no" (1), which would negate "gallium" (0): once "no" is dropped, gallium stands.
    options = {
        1: TermOptions(negations=(_check(frozenset({2})),)),
        0: TermOptions(negations=(_check(frozenset({1})),)),
    }
    search = "not no gallium"
    hits = {2: [Hit(0, 0, 3)], 1: [Hit(0, 4, 6)], 0: [Hit(0, 7, 14)]}
    masks = _filter(options, hits, search)
    assert hits == {2: [Hit(0, 0, 3)], 0: [Hit(0, 7, 14)]}
    assert masks == {2: 1, 0: 1}


def test_the_negators_are_those_of_every_check_of_a_term() -> None:
    options = {
        0: TermOptions(negations=(_check(frozenset({1})), _check(frozenset({2, 3})))),
        4: TermOptions(excludes=frozenset({5})),
    }
    negators = Negators(options)
    assert negators.of == {0: frozenset({1, 2, 3})}
    assert negators.every == frozenset({1, 2, 3})
