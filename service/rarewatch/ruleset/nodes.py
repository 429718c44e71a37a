"""Compiled rule expressions, evaluated against the term hits of one item (a `Scan`).

Every node answers `test(scan, fields)` (does it hold in the item's fields given as a bit mask) and, once
its rule has fired, `evidence(...)` (what made it hold). Children of `all`/`any`/`none` are ordered
cheapest first, so a regex runs only when the terms around it have not already decided the answer.

`anchor(weight)` is the set of terms of which at least one must be present for the node to hold, or
None when the node can hold without any term (a regex, a `none`). The matcher evaluates a rule only on
items where one of its anchor terms was found; `weight` (how many rules use a term) steers an `all` to
anchor on its least shared child, so a rule about a rare phrase is not woken by every "rare earth".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple

from rarewatch.ruleset.chinese import to_simplified
from rarewatch.ruleset.clauses import crosses
from rarewatch.ruleset.literals import LiteralIndex, fold, required_literals
from rarewatch.ruleset.text import display_text, holds_cjk_letter

Weight = Callable[[frozenset[int]], int]


class Hit(NamedTuple):
    field: int  # 0 title, 1 summary, 2 content
    start: int  # in the field's search text
    end: int


class Evidence(NamedTuple):
    """One piece of what fired: a term (positions in the search text) or a regex (in the display text)."""

    field: int
    start: int
    end: int
    label: str
    in_search_text: bool


class Scan:
    """One item as the rules see it: its fields, their search texts and the term hits found in them."""

    __slots__ = (
        "_display",
        "_found_in",
        "_regex_text",
        "ascii",
        "hits",
        "literal_ids",
        "masks",
        "near_hits",
        "raw",
        "regex_results",
        "search",
        "snippets",
    )

    def __init__(
        self,
        raw: Sequence[str],
        search: Sequence[str],
        hits: dict[int, list[Hit]],
        masks: dict[int, int],
        ascii: bool | None = None,
    ) -> None:
        self.raw = raw
        self.search = search
        # Whether the search texts are ASCII (`ascii`, when the caller knows): then no Han, kana or Hangul
        # letter is in any field, and a regex that needs one is not asked (`core.compile_test`).
        self.ascii = all(map(str.isascii, search)) if ascii is None else ascii
        self.hits = hits  # term id -> hits, in text order per field
        self.masks = masks  # term id -> bit mask of the fields it was found in
        self.regex_results: dict[tuple[int, int], Evidence | None] = {}
        self.snippets: dict[Evidence, str] = {}  # rules that fire on the same first hit share a snippet
        self.near_hits: dict[tuple[frozenset[int], int], list[tuple[int, Hit]]] = {}  # see `_hits_of`
        self._display: dict[int, str] = {}
        self._regex_text: dict[int, str] = {}
        self.literal_ids: frozenset[int] | None = None  # see `Regex._search`
        self._found_in: dict[int, frozenset[int]] = {}

    def found_in(self, fields: int) -> frozenset[int]:
        """The term ids found in `fields` (a bit mask), computed once per mask: each rule's terms are
        then one set test rather than a walk of the item's terms. Call `masks_changed` after changing
        `masks`."""
        found = self._found_in.get(fields)
        if found is None:
            found = self._found_in[fields] = frozenset(t for t, m in self.masks.items() if m & fields)
        return found

    def masks_changed(self) -> None:
        """Forget what `found_in` worked out (the hit filters changed `masks`)."""
        self._found_in.clear()

    def display(self, field: int) -> str:
        """The NFKC text of a field, computed once and only when a regex or a snippet needs it."""
        text = self._display.get(field)
        if text is None:
            text = self._display[field] = display_text(self.raw[field])
        return text

    def regex_text(self, field: int) -> str:
        """What regexes search in a field: its display text with Traditional characters converted to
        Simplified, one character for one (so positions are the display text's), so that a pattern
        written in Simplified characters covers Taiwan and Hong Kong stories as rule terms do."""
        text = self._regex_text.get(field)
        if text is None:
            text = self._regex_text[field] = to_simplified(self.display(field))
        return text

    def regex_texts_folded(self) -> str:
        """The regex texts of the non-empty fields, joined by newlines and folded as regexes' required
        literals are (`literals.fold`): searched once for the literals of every regex of the pack."""
        return fold("\n".join(self.regex_text(f) for f in range(len(self.raw)) if self.raw[f]))

    def fill_literals(self, index: LiteralIndex) -> frozenset[int]:
        """`literal_ids`: the ids of `index`'s literals found in the regex texts, found now (the item's
        first regex to ask its needs; see `Regex._needs_met`)."""
        found = self.literal_ids = index.found(self.regex_texts_folded())
        return found

    def first_hit(self, tid: int, fields: int) -> Hit | None:
        for hit in self.hits.get(tid, ()):
            if (1 << hit.field) & fields:
                return hit
        return None


class TermSet:
    """A term, or a vocabulary: holds when any of its terms was found in the rule's fields."""

    __slots__ = ("labels", "tids")
    cost = 1

    def __init__(self, tids: frozenset[int], labels: Sequence[str]) -> None:
        self.tids = tids
        self.labels = labels  # the term table's labels, indexed by term id

    def test(self, scan: Scan, fields: int) -> bool:
        # The hottest test: one set test against the terms found in these fields (`isdisjoint` walks the
        # smaller side: the item's few terms, not a long vocabulary).
        return not self.tids.isdisjoint(scan.found_in(fields))

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        for tid in [t for t in scan.masks if t in self.tids]:  # walk the item's few terms, not the list
            hit = scan.first_hit(tid, fields)
            if hit is not None:
                out.append(Evidence(hit.field, hit.start, hit.end, self.labels[tid], True))

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        return self.tids

    def term_ids(self) -> frozenset[int]:
        return self.tids


class Near:
    """`near: [A, B], within: N`: a hit of A and a hit of B in the same field, at most N words apart
    (words between them), or N characters when either term is CJK. Either order; overlaps count.
    With a `boundary` (scope sentence or clause), no boundary may lie between them."""

    __slots__ = ("boundary", "latin", "left", "right", "within")
    cost = 3

    def __init__(
        self,
        left: TermSet,
        right: TermSet,
        within: int,
        latin: Sequence[bool],
        boundary: re.Pattern[str] | None = None,
    ) -> None:
        self.left = left
        self.right = right
        self.within = within
        self.latin = latin  # per term id: True when the term has no CJK character
        self.boundary = boundary

    def _pair(self, scan: Scan, fields: int) -> tuple[tuple[int, Hit], tuple[int, Hit]] | None:
        lefts = _hits_of(scan, self.left.tids, fields)
        rights = _hits_of(scan, self.right.tids, fields) if lefts else []
        for a in lefts:
            for b in rights:
                if a[1].field == b[1].field and self._close(scan.search[a[1].field], a, b):
                    return a, b
        return None

    def _close(self, text: str, a: tuple[int, Hit], b: tuple[int, Hit]) -> bool:
        (tid_a, first), (tid_b, second) = (a, b) if a[1].start <= b[1].start else (b, a)
        gap_start, gap_end = first.end, second.start
        if gap_end <= gap_start:
            return True
        if self.latin[tid_a] and self.latin[tid_b]:
            # Search text has single spaces between words: k words in between = k + 1 spaces.
            close = text.count(" ", gap_start, gap_end) - 1 <= self.within
        else:
            close = gap_end - gap_start <= self.within
        return close and not crosses(self.boundary, text, gap_start, gap_end)

    def test(self, scan: Scan, fields: int) -> bool:
        return self._pair(scan, fields) is not None

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        pair = self._pair(scan, fields)
        if pair is not None:
            for tid, hit in pair:
                out.append(Evidence(hit.field, hit.start, hit.end, self.left.labels[tid], True))

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        return min((self.left.tids, self.right.tids), key=weight)

    def term_ids(self) -> frozenset[int]:
        return self.left.tids | self.right.tids


def _hits_of(scan: Scan, tids: frozenset[int], fields: int) -> list[tuple[int, Hit]]:
    """The hits of `tids` in `fields`; cached per item, since every rule's `near` asks for the same
    subject vocabulary. Walks the item's few terms, not the (possibly long) vocabulary: `keys() & set`
    would iterate the larger side."""
    key = (tids, fields)
    found = scan.near_hits.get(key)
    if found is None:
        found = scan.near_hits[key] = [
            (tid, hit)
            for tid in scan.masks
            if tid in tids
            if scan.masks[tid] & fields
            for hit in scan.hits[tid]
            if (1 << hit.field) & fields
        ]
    return found


class Regex:
    """`{regex: ...}`: searched in each selected field's display text; results cached per item."""

    __slots__ = ("_compiled", "flags", "index", "key", "needs", "needs_cjk", "source", "written")
    cost = 20

    def __init__(
        self,
        source: str,
        case_sensitive: bool,
        key: int,
        written: str | None = None,
        index: LiteralIndex | None = None,
    ) -> None:
        self.flags = 0 if case_sensitive else re.IGNORECASE
        # The text is NFKC: normalise the pattern too, so a full-width character in it can still match.
        self.source = unicodedata.normalize("NFKC", source)
        self._compiled: re.Pattern[str] | None = None  # see `pattern`
        # The literals any match holds (`literals`), as ids in the pack's index: an item whose text lacks
        # them is not searched. Regexes made outside a pack (no index) are always searched.
        self.index = index
        needs = required_literals(self.source, self.flags) if index is not None else None
        self.needs = index.add(needs) if index is not None and needs else None
        # A need none of whose literals lacks a Han, kana or Hangul letter: no ASCII item can meet it.
        self.needs_cjk = bool(self.needs) and any(all(map(holds_cjk_letter, need)) for need in needs or ())
        self.key = key  # unique per regex node: the cache key
        # As the rule file spells it ({{named patterns}} unexpanded): what explanations show.
        self.written = source if written is None else written

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled pattern, compiled when first searched. The rule schema has compiled it once
        already to validate it; a pack read back from the rule cache (which stores the text, see
        `__getstate__`) compiles only the regexes its items reach, most being spared by their literals."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self.source, self.flags)
        return compiled

    def __getstate__(self) -> tuple[None, dict[str, object]]:
        """Pickled without the compiled pattern (unpickling a pattern compiles it)."""
        return None, {name: getattr(self, name) for name in self.__slots__ if name != "_compiled"}

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        for name, value in state[1].items():
            setattr(self, name, value)
        self._compiled = None

    def _search(self, scan: Scan, fields: int) -> Evidence | None:
        cache_key = (self.key, fields)
        if cache_key in scan.regex_results:
            return scan.regex_results[cache_key]
        if self.needs is not None and not self._needs_met(scan):
            scan.regex_results[cache_key] = None
            return None
        return self._search_text(scan, fields, cache_key)

    def searched(self, scan: Scan, fields: int) -> bool:
        """`test` for a caller that has found the pattern's needs met (`core.compile_test`'s tests):
        the search itself, or its result cached for the item."""
        cache_key = (self.key, fields)
        results = scan.regex_results
        if cache_key in results:
            return results[cache_key] is not None
        return self._search_text(scan, fields, cache_key) is not None

    def _search_text(self, scan: Scan, fields: int, cache_key: tuple[int, int]) -> Evidence | None:
        """The first match in the selected fields, recorded in the item's cache under `cache_key`."""
        found = None
        for field in range(len(scan.raw)):
            if (1 << field) & fields and scan.raw[field]:
                m = self.pattern.search(scan.regex_text(field))
                if m is not None:
                    # the evidence quotes the characters as published, not their Simplified forms
                    text = scan.display(field)[m.start() : m.end()]
                    found = Evidence(field, m.start(), m.end(), text, False)
                    break
        scan.regex_results[cache_key] = found
        return found

    def _needs_met(self, scan: Scan) -> bool:
        """Whether the item's text holds one literal of each of the pattern's needs (else no match)."""
        if self.needs_cjk and scan.ascii:
            return False
        found = scan.literal_ids
        if found is None:
            assert self.index is not None  # `needs` is set only with an index
            found = scan.fill_literals(self.index)
        # a loop, not `all` over a generator: this runs for every regex an item's rules ask
        for need in self.needs or ():  # noqa: SIM110
            if need.isdisjoint(found):
                return False
        return True

    def test(self, scan: Scan, fields: int) -> bool:
        return self._search(scan, fields) is not None

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        found = self._search(scan, fields)
        if found is not None:
            out.append(found)

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        return None

    def term_ids(self) -> frozenset[int]:
        return frozenset()


class _Group:
    """What `all`, `any` and `none` share: children tried cheapest first, and their terms."""

    __slots__ = ("children", "cost")
    cost: int

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(sorted(children, key=lambda c: c.cost))
        self.cost = sum(c.cost for c in children)

    def term_ids(self) -> frozenset[int]:
        return frozenset().union(*(c.term_ids() for c in self.children))


class AllOf(_Group):
    __slots__ = ()

    def test(self, scan: Scan, fields: int) -> bool:
        for c in self.children:  # noqa: SIM110 - a plain loop: generators cost more on this hot path
            if not c.test(scan, fields):
                return False
        return True

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        for c in self.children:
            c.evidence(scan, fields, out)

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        anchors = [a for a in (c.anchor(weight) for c in self.children) if a is not None]
        return min(anchors, key=weight) if anchors else None


class AnyOf(_Group):
    __slots__ = ()

    def test(self, scan: Scan, fields: int) -> bool:
        for c in self.children:  # noqa: SIM110 - a plain loop: generators cost more on this hot path
            if c.test(scan, fields):
                return True
        return False

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        for c in self.children:
            if c.test(scan, fields):
                c.evidence(scan, fields, out)

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        anchors = [c.anchor(weight) for c in self.children]
        if any(a is None for a in anchors):
            return None
        return frozenset().union(*(a for a in anchors if a is not None))


class NoneOf(_Group):
    """`none: [...]`: holds when no child holds. Its terms never wake a rule, and are not evidence."""

    __slots__ = ()

    def test(self, scan: Scan, fields: int) -> bool:
        for c in self.children:  # noqa: SIM110 - a plain loop: generators cost more on this hot path
            if c.test(scan, fields):
                return False
        return True

    def evidence(self, scan: Scan, fields: int, out: list[Evidence]) -> None:
        return None

    def anchor(self, weight: Weight) -> frozenset[int] | None:
        return None

    def term_ids(self) -> frozenset[int]:
        return frozenset()


Node = TermSet | Near | Regex | AllOf | AnyOf | NoneOf
