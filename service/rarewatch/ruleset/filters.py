"""Occurrence-level filters: after the automaton pass, drop the hits that do not count.

Three stages, in this order, each only for the term ids that have the option and were found:

1. case: a case-sensitive term (or exclusion phrase) must read exactly as written at the hit;
2. exclusion: a hit inside a hit of one of its exclusion phrases ("graphite" in "Graphite Capital");
3. negation: a hit with a negator or hedge close before (or after) it in the same clause.

A dropped hit is gone for every node of the rule: `near`, evidence and the field masks see only what
is left, so "no shortage of gallium; magnet shortage hits carmakers" still fires on the second
"shortage". Items where no term with options was found pay one set intersection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rarewatch.ruleset.clauses import NEGATION
from rarewatch.ruleset.nodes import Hit
from rarewatch.ruleset.terms import NegationCheck, TermOptions

Hits = dict[int, list[Hit]]


class Negators:
    """The negators of each term's negation checks together (`of`: term id -> the union of its checks'
    negators, for the terms that have checks), and of every term (`every`): an item's negators are then
    found once, and a term none of whose negators the item holds is passed over without asking each of
    its checks. Likewise every exclusion phrase of every term (`excluding`): an item that holds none
    skips the exclusion stage. Worked out once per pack, when its scanner is made or read back."""

    __slots__ = ("every", "excluding", "of")

    def __init__(self, options: Mapping[int, TermOptions]) -> None:
        # Many terms share their checks' vocabularies of negators: each union is made once (a pack's
        # start-up), keyed by the sets it joins.
        unions: dict[tuple[frozenset[int], ...], frozenset[int]] = {}
        self.of = {}
        for tid, o in options.items():
            if o.negations:
                sets = tuple(check.negators for check in o.negations)
                union = unions.get(sets)
                if union is None:
                    union = unions[sets] = frozenset().union(*sets)
                self.of[tid] = union
        self.every: frozenset[int] = frozenset().union(*unions.values())
        self.excluding: frozenset[int] = frozenset().union(*(o.excludes for o in options.values()))


def apply_filters(
    options: Mapping[int, TermOptions],
    latin: Sequence[bool],
    hits: Hits,
    masks: dict[int, int],
    search: Sequence[str],
    cased: Callable[[int], str],
    negators: Negators,
) -> None:
    """Filter `hits` in place and update `masks`; `cased(field)` is the case-kept text of a field;
    `negators` is `Negators(options)`, kept by the caller (worked out once per pack)."""
    found = [tid for tid in hits if tid in options]  # the item's few terms, not every option
    if not found:
        return
    changed: set[int] = set()
    for tid in found:  # 1. case
        form = options[tid].cased
        if form is not None and _keep(hits, tid, _reads, cased, form):
            changed.add(tid)
    # 2. exclusions: most items hold none of the phrases, and skip the stage at once; the others ask each
    # term's phrases of those the item holds (`phrases`, kept up to date as hits drop).
    phrases = negators.excluding.intersection(hits)
    for tid in found if phrases else ():
        excludes = options[tid].excludes
        if (
            excludes
            and tid in hits
            and not excludes.isdisjoint(phrases)
            and _keep(hits, tid, _outside, hits, excludes)
        ):
            changed.add(tid)
            phrases = phrases.intersection(hits)
    # Many terms share one negation vocabulary: which of its negators the item holds is worked out once
    # per set of negators (interned at compile time, so found by identity, not compared element by
    # element), and again only after a hit is dropped (a dropped negator no longer negates). Each is
    # asked of the item's negators (`held`, kept up to date), a few terms, rather than of all its terms;
    # a term none of whose negators the item holds has none of its checks asked.
    held = negators.every.intersection(hits)
    negators_of = negators.of
    present_of: dict[frozenset[int], frozenset[int]] = {}
    for tid in found:  # 3. negation, only with a negator of the check present
        if (union := negators_of.get(tid)) is None or union.isdisjoint(held):
            continue
        for check in options[tid].negations:
            present = present_of.get(check.negators)
            if present is None:
                present = present_of[check.negators] = check.negators.intersection(held)
            if (
                present
                and tid in hits
                and _keep(hits, tid, _not_negated, hits, latin, search, tid, check, present)
            ):
                changed.add(tid)
                present_of.clear()
                held = held.intersection(hits)
    for tid in changed:
        if tid in hits:
            masks[tid] = _mask(hits[tid])
        else:
            masks.pop(tid, None)


def _keep(hits: Hits, tid: int, test: Callable[..., bool], *args: object) -> bool:
    """Keep the hits `h` of `tid` for which `test(h, *args)` holds; True when any was dropped."""
    before = hits[tid]
    after = [h for h in before if test(h, *args)]
    if len(after) == len(before):
        return False
    if after:
        hits[tid] = after
    else:
        del hits[tid]
    return True


def _mask(found: list[Hit]) -> int:
    mask = 0
    for h in found:
        mask |= 1 << h.field
    return mask


def _reads(hit: Hit, cased: Callable[[int], str], form: str) -> bool:
    """The case-kept text at the hit reads `form` (a plural ending after it is fine)."""
    return cased(hit.field).startswith(form, hit.start)


def _outside(hit: Hit, hits: Hits, phrases: frozenset[int]) -> bool:
    """The hit overlaps no hit of an exclusion phrase ("licence" in "mining licence", "许可证" in
    "采矿许可证"). A hit that spells exactly the phrase is not excluded by it: china's "Inner
    Mongolia" survives mongolia's exclusion of "Inner Mongolia"."""
    for tid in phrases & hits.keys():
        for p in hits[tid]:
            if (
                p.field == hit.field
                and p.start < hit.end
                and hit.start < p.end
                and (p.start, p.end) != (hit.start, hit.end)
            ):
                return False
    return True


def _not_negated(
    hit: Hit,
    hits: Hits,
    latin: Sequence[bool],
    search: Sequence[str],
    tid: int,
    c: NegationCheck,
    present: frozenset[int],
) -> bool:
    return not _negated(hits, latin, search, tid, hit, c, present)


def _negated(
    hits: Hits,
    latin: Sequence[bool],
    search: Sequence[str],
    tid: int,
    hit: Hit,
    c: NegationCheck,
    present: frozenset[int],
) -> bool:
    """A negator of `c` ends close before the hit (or starts close after it), in the same field and
    clause."""
    text = search[hit.field]
    for neg in present:  # the negators of `c` found in the item
        words = latin[tid] and latin[neg]
        before, after = (c.before, c.after) if words else (c.before_cjk, c.after_cjk)
        for n in hits[neg]:
            if n.field != hit.field or n == hit:
                continue
            # A negator that overlaps the hit is part of it ("未到货" is a disruption, not a denial).
            if n.end <= hit.start:
                if _within(text, n.end, hit.start, words, before):
                    return True
            elif n.start < hit.start and n.end >= hit.end and before is not None:
                # A negator that starts before the hit and holds it is its hedge ("或限制" hedges 限制).
                return True
            elif n.start >= hit.end and _within(text, hit.end, n.start, words, after):
                return True
    return False


def _within(text: str, start: int, end: int, words: bool, limit: int | None) -> bool:
    """The gap [start, end) is at most `limit` words (Latin) or characters (CJK) and holds no clause
    boundary (nor comma); False when `limit` is None (that side is not checked)."""
    if limit is None:
        return False
    gap = max(0, text.count(" ", start, end) - 1) if words else len(text[start:end].replace(" ", ""))
    return gap <= limit and not (end > start and NEGATION.search(text, start, end) is not None)
