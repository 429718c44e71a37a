"""The exclusion and negation stages of the hit filters ask a term's exclusion phrases and negation
checks only when the item holds one of them (`filters.Negators`), and keep what the item holds up to
date as hits are dropped."""

from __future__ import annotations

import pytest

from rarewatch.ruleset import filters
from rarewatch.ruleset.filters import Negators, apply_filters
from rarewatch.ruleset.nodes import Hit
from rarewatch.ruleset.terms import NegationCheck, TermOptions


class _AskedSet(frozenset[int]):
    """A set of negators that records each time the item's negators are intersected with it."""

    asked = 0

    def intersection(self, *others: object) -> frozenset[int]:
        _AskedSet.asked += 1
        return frozenset(self).intersection(*others)  # type: ignore[arg-type]

    def isdisjoint(self, other: object) -> bool:
        _AskedSet.asked += 1
        return frozenset(self).isdisjoint(other)  # type: ignore[arg-type]


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
    checks = (_check(frozenset({1})), _check(frozenset({2, 3})))
    options = {
        0: TermOptions(negations=checks),
        4: TermOptions(excludes=frozenset({5})),
        6: TermOptions(negations=checks, excludes=frozenset({7})),
        8: TermOptions(negations=(_check(frozenset({9})),)),
    }
    negators = Negators(options)
    assert negators.of == {0: frozenset({1, 2, 3}), 6: frozenset({1, 2, 3}), 8: frozenset({9})}
    assert negators.every == frozenset({1, 2, 3, 9})
    assert negators.excluding == frozenset({5, 7})


def test_an_item_holding_no_exclusion_phrase_asks_no_term_s_phrases() -> None:
    # "graphite" (0) is excluded by "graphite capital" (5), absent.
    _AskedSet.asked = 0
    options = {0: TermOptions(excludes=_AskedSet({5})), 1: TermOptions(excludes=frozenset({6}))}
    hits = {0: [Hit(0, 0, 8)], 1: [Hit(0, 9, 12)]}
    _filter(options, hits, "graphite ore")
    assert _AskedSet.asked == 0
    assert hits == {0: [Hit(0, 0, 8)], 1: [Hit(0, 9, 12)]}


def test_a_term_none_of_whose_phrases_the_item_holds_is_not_tested_hit_by_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "licence" (0) is excluded by "mining licence" (5), absent; "graphite" (1) by "graphite capital"
    # (6), present: only graphite's hits are tested against the phrases.
    tested = _record_outside_tests(monkeypatch)
    options = {0: TermOptions(excludes=frozenset({5})), 1: TermOptions(excludes=frozenset({6}))}
    hits = {0: [Hit(0, 0, 7)], 1: [Hit(0, 8, 16)], 6: [Hit(0, 8, 24)]}
    masks = _filter(options, hits, "licence graphite capital")
    assert tested == [Hit(0, 8, 16)]
    assert hits == {0: [Hit(0, 0, 7)], 6: [Hit(0, 8, 24)]}
    assert masks == {0: 1, 6: 1}


def test_a_phrase_dropped_by_its_own_exclusion_no_longer_excludes(monkeypatch: pytest.MonkeyPatch) -> None:
    # "mining licence" (1) is excluded by "data mining licence" (2), and itself excludes "licence" (0):
    # once it is dropped, licence's hits are not tested against it.
    tested = _record_outside_tests(monkeypatch)
    options = {1: TermOptions(excludes=frozenset({2})), 0: TermOptions(excludes=frozenset({1}))}
    hits = {2: [Hit(0, 0, 19)], 1: [Hit(0, 5, 19)], 0: [Hit(0, 12, 19)]}
    masks = _filter(options, hits, "data mining licence")
    assert tested == [Hit(0, 5, 19)]
    assert hits == {2: [Hit(0, 0, 19)], 0: [Hit(0, 12, 19)]}
    assert masks == {2: 1, 0: 1}


def _record_outside_tests(monkeypatch: pytest.MonkeyPatch) -> list[Hit]:
    """The hits `filters._outside` is asked about from now on (it still answers as before)."""
    tested: list[Hit] = []
    original = filters._outside

    def outside(hit: Hit, hits: dict[int, list[Hit]], phrases: frozenset[int]) -> bool:
        tested.append(hit)
        return original(hit, hits, phrases)

    monkeypatch.setattr(filters, "_outside", outside)
    return tested
