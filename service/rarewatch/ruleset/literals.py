"""Required literals of a regex: strings at least one of which any match must contain.

A rule's `{regex: ...}` is mostly asked of items it cannot match (a veto looking for "prepared to
close" in an item that says neither). Before running the pattern, the matcher asks whether the
field holds one of the pattern's required literals, a substring test that costs a fraction of a
regex search; only then does it search. This is the literal prefilter of grep tools and of RE2's
and Hyperscan's callers, read from Python's own parse of the pattern.

The prefilter may only say "cannot match", never "matches": `required_literals` returns a set
only when every match of the pattern contains one of its strings, after `fold` on both sides. It
gives up (returns None) on anything it does not understand, and the pattern is then always run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import ahocorasick_rs

# The parser behind `re.compile` and its case classes: private modules, present in every Python this
# project supports (3.11 and later), typed loosely as typeshed does not describe them.
_sre: Any = importlib.import_module("re._constants")
_sre_parse: Any = importlib.import_module("re._parser")
_casefix: Any = importlib.import_module("re._casefix")


def _fold_table() -> dict[int, str]:
    """Characters that `re.IGNORECASE` matches against another character which `str.lower` does not
    map them to, each mapped to the lowest member of its class: the classes `re` itself reads
    (`_casefix`: ı and i, ſ and s, ς and σ, ϐ and β, ᲀ and в, …), and U+0130, whose full lower case is
    two characters. The text and the literals are both folded through this table, before lowering and
    after (a final sigma lowers to ς), so a case-insensitive match is never lost to the prefilter."""
    classes = [{0x130, 0x69}, *({code, *others} for code, others in _casefix._EXTRA_CASES.items())]
    table = {code: chr(min(members)) for members in classes for code in members}
    return {code: canon for code, canon in table.items() if chr(code) != canon}


_FOLD = _fold_table()
_MAX_SET = 64  # alternatives kept when adjacent parts are multiplied out
_MIN_LENGTH = 2  # the shortest string of a set worth a test (`_worth_a_test`), outside ASCII
_MIN_ASCII = 4  # and in ASCII
_MAX_NEEDS = 3  # sets kept per pattern, the most telling

Strings = frozenset[str]
Needs = tuple[Strings, ...]  # every set must be met: one string of each occurs in any match


_FIRST = itemgetter(0)


def fold(text: str) -> str:
    """The form both the text and the literals are compared in: lower case, case equivalences joined."""
    if text.isascii():  # `str.translate` looks up every character in Python: only where it can matter
        return text.lower()
    # Before lowering (U+0130 lowers to two characters) and after (a final sigma lowers to ς)
    return text.translate(_FOLD).lower().translate(_FOLD)


def required_literals(pattern: str, flags: int = 0) -> tuple[Strings, ...] | None:
    """Sets of folded strings such that every match of `pattern` holds one string of each set, or None
    when no useful set is known (the pattern must then always be run)."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
        _exact, required = _sequence(list(parsed))
    except (re.error, RecursionError):
        return None
    kept = [_without_redundant(frozenset(map(fold, r))) for r in required if _worth_a_test(r)]
    kept = sorted(set(kept), key=_telling, reverse=True)[:_MAX_NEEDS]
    return tuple(kept) if kept else None


def _without_redundant(strings: Strings) -> Strings:
    """Drop each string that holds another of the set: where it occurs, the shorter one does too."""
    return frozenset(s for s in strings if not any(o != s and o in s for o in strings))


def _worth_a_test(strings: Strings) -> bool:
    """Whether a set is rare enough in text to be worth finding: every string of it at least four
    letters, or two characters outside ASCII (Chinese words). Short strings ("to", "the") are in most
    items, and an item's literals are found all at once: each of their many hits costs time."""
    return all(len(s) >= (_MIN_LENGTH if not s.isascii() else _MIN_ASCII) for s in strings) and bool(strings)


def _most_telling(needs: Needs) -> Strings:
    return max(needs, key=_telling)


def _shortest(strings: Strings) -> int:
    return min(map(len, strings)) if strings else 0


def _telling(strings: Strings) -> tuple[int, int, tuple[str, ...]]:
    """How much a set says: its shortest string longest, then the fewest strings (then its strings, so
    that the choice does not depend on the order of a set)."""
    return _shortest(strings), -len(strings), tuple(sorted(strings))


class LiteralIndex:
    """The required literals of a pack's regexes in one automaton: an item's text is searched once for
    all of them, and each regex then asks whether its needs are met by the literals found (a set test)
    before it searches."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._automaton: Any | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"_ids": self._ids}  # the automaton (`ahocorasick_rs`) does not pickle: made when asked

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._automaton = None

    def add(self, needs: tuple[Strings, ...]) -> tuple[frozenset[int], ...]:
        """`needs` (folded strings) as sets of literal ids, the literals added to the index."""
        self._automaton = None
        return tuple(frozenset(self._ids.setdefault(s, len(self._ids)) for s in need) for need in needs)

    def found(self, folded: str) -> frozenset[int]:
        """The ids of the literals that occur in `folded` (a text passed through `fold`)."""
        if self._automaton is None:
            if not self._ids:
                return frozenset()
            self._automaton = ahocorasick_rs.AhoCorasick(
                sorted(self._ids, key=self._ids.__getitem__), matchkind=ahocorasick_rs.MatchKind.Standard
            )
        # `map` of an `itemgetter`: no Python frame per literal found (a generator's was most of the call)
        return frozenset(map(_FIRST, self._automaton.find_matches_as_indexes(folded, overlapping=True)))


def _sequence(items: Iterable[tuple[Any, Any]]) -> tuple[Strings | None, Needs]:
    """(the exact strings the sequence matches, if finitely few; what any match of it needs)."""
    run: Strings = frozenset({""})
    exact = True
    needs: list[Strings] = []
    for op, av in items:
        part_exact, part_needs = _element(op, av)
        if part_exact is not None and len(run) * len(part_exact) <= _MAX_SET:
            run = frozenset(a + b for a in run for b in part_exact)
            continue
        exact = False
        needs.append(run)
        if part_exact is not None:  # the bound was reached: a new run starts with this part's strings
            run = part_exact
        else:
            needs.extend(part_needs)
            run = frozenset({""})
    needs.append(run)
    return (run if exact else None), tuple(n for n in needs if _shortest(n) > 0)


def _element(op: Any, av: Any) -> tuple[Strings | None, Needs]:
    """(exact strings, needs) of one parsed element."""
    if op is _sre.LITERAL:
        return frozenset({chr(av)}), ()
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return frozenset({""}), ()  # zero width: matches consume nothing here
    if op is _sre.IN:
        return _char_class(av), ()
    if op is _sre.SUBPATTERN:
        return _sequence(av[-1])
    if op is _sre.ATOMIC_GROUP:
        return _sequence(av)
    if op is _sre.BRANCH:
        return _branch(av[1])
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        return _repeat(*av)
    # any character, a category, a negated class, a back-reference, a conditional: consumes something
    # unknown, which the analysis steps over
    return None, ()


def _char_class(members: list[tuple[Any, Any]]) -> Strings | None:
    if all(op is _sre.LITERAL for op, _ in members) and len(members) <= 8:
        return frozenset(chr(av) for _, av in members)
    return None


def _branch(alternatives: list[Any]) -> tuple[Strings | None, Needs]:
    """Exact strings if every alternative has them; else one set: each alternative's most telling need."""
    exacts: set[str] = set()
    either: set[str] | None = set()
    all_exact = True
    for alternative in alternatives:
        exact, needs = _sequence(alternative)
        if exact is None:
            all_exact = False
        else:
            exacts |= exact
        if exact is not None and "" not in exact:
            needs = (exact,)
        if not needs or either is None:
            either = None  # this alternative needs nothing known: neither does the branch
        else:
            either |= _most_telling(needs)
    exact_set = frozenset(exacts) if all_exact and len(exacts) <= _MAX_SET else None
    return exact_set, (frozenset(either),) if either else ()


def _repeat(low: int, high: int, body: Any) -> tuple[Strings | None, Needs]:
    exact, needs = _sequence(body)
    if low == 0:
        if high == 1 and exact is not None:
            return exact | {""}, ()  # an optional part: its strings or nothing
        return None, ()
    if exact is not None and "" not in exact:
        return None, (exact,)  # one or more: what one repetition matches, the match holds
    return None, needs
