"""Finding the terms of the pack in an item: normalise the fields, run the automaton, filter the hits.

Cost per item: normalising the text, one automaton pass (two for text that is not pure ASCII), a
word-boundary check per raw hit. Items that cannot fire any rule stop early, at the *gate*: every rule
of a typical pack needs a subject (a material), and most news names none. The gate automaton holds
only the terms one of which every rule needs (`Compiled.gate`); when it finds none of them, the full
pass, the filters and the rules are skipped. Hit filters (`filters`) run only for items some rule
could still fire on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ahocorasick_rs

from rarewatch.ruleset.filters import Negators, apply_filters
from rarewatch.ruleset.nodes import Hit, Scan
from rarewatch.ruleset.terms import TermTable
from rarewatch.ruleset.text import cased_text, is_cjk, is_word_char, search_text

_new = tuple.__new__

# A quick gate: an `ahocorasick_rs` automaton (None: no key can open the gate) and the indexes of its
# keys that are passed over inside a word (`_word_keys`).
_Quick = tuple[Any | None, frozenset[int]]

# ASCII letters and digits: a quick gate's key made of them alone, found right after one of them, lies
# inside a word ("port" in "export", "report"), where the term pass would drop it (`_word_keys`).
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ALNUM_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class Scanner:
    """The automata of one rule pack and the filters of its terms."""

    def __init__(
        self,
        terms: TermTable,
        gate: frozenset[int] | None,
        matched: frozenset[int],
        watched: frozenset[int] = frozenset(),
    ) -> None:
        self._ascii, self._other = terms.automata(matched)
        self._all = terms.automata()  # for entities: the matched terms and the entity-only ones
        self._watched = watched
        self._watch = terms.gate_automata(watched) if watched else (None, None)
        self._gate = None
        self._vetoes: frozenset[int] = frozenset()
        if gate is not None:
            gate, self._vetoes = terms.gate_terms(gate)
            self._gate = terms.gate_automata(gate | self._vetoes)
            self._gate_ids = gate
        self._options = terms.options
        self._latin = terms.latin
        self._derive()

    _DERIVED = ("_quick", "_quick_lines", "_negators", "_gate_in_scan")

    def __getstate__(self) -> dict[str, object]:
        """What `_derive` makes is not pickled (the quick gates, `ahocorasick_rs`, do not pickle): it is
        made again from the rest."""
        return {k: v for k, v in self.__dict__.items() if k not in self._DERIVED}

    def __setstate__(self, state: dict[str, object]) -> None:
        # The derived parts are made on first use (`__getattr__`), not here: a pack read back from the rule
        # cache by a process that matches nothing (a steady `once`, every feed unchanged) never needs them.
        self.__dict__.update(state)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute of a scanner

        def __getattr__(self, name: str) -> Any:
            """A derived attribute missing after unpickling: derive them all now (called only when the
            normal look-up fails, so once per scanner)."""
            if name in Scanner._DERIVED:
                self._derive()
                return self.__dict__[name]
            raise AttributeError(name)

    def _derive(self) -> None:
        """The quick gates, from the gate automata; the negators of the terms' checks, from the terms'
        options; whether the gate can be read from the term pass's hits (`_gate_keys_in_scan`)."""
        self._quick, self._quick_lines = self._quick_gates()
        self._negators = Negators(self._options)
        self._gate_in_scan = self._gate_keys_in_scan()

    def _gate_keys_in_scan(self) -> bool:
        """Whether every key of the gate automata is a key of the term pass's automata, spelling the same
        terms: then a pass of those finds every hit the gate's pass finds (`scan_gated`)."""
        if self._gate is None or self._gate[1] is None:  # the second one holds all the gate's keys
            return self._gate is not None
        missing = object()
        for key, info in self._gate[1].items():
            automaton = self._ascii if key.isascii() else self._other  # as `TermTable.automata` splits
            if automaton is None or automaton.get(key, missing) != info:
                return False
        return True

    def _quick_gates(self) -> tuple[tuple[_Quick, _Quick], tuple[_Quick, _Quick]]:
        """A second automaton per gate automaton, of its keys that can open it (not vetoes alone), which
        only tells whether any of them occurs anywhere. Most items hold none, and this library says so
        in about half the time of a pass of the full gate; a None automaton: nothing can open the gate.
        Then the two again over UTF-8 bytes, for `gate_may_open_lines` (over a large text, the `str`
        automaton costs several times more): the ASCII keys for ASCII lines (a smaller automaton, about
        a quarter quicker over them), all the keys for lines that may not be. Each automaton goes with
        the indexes of its keys made of ASCII letters and digits alone (`_word_keys`)."""
        if self._gate is None:
            none: _Quick = (None, frozenset())
            return (none, none), (none, none)
        ascii_keys = _keys_of(self._gate[0], self._vetoes)
        other_keys = _keys_of(self._gate[1], self._vetoes)
        ascii_words, other_words = _word_keys(ascii_keys), _word_keys(other_keys)
        return (
            ((_str_automaton(ascii_keys), ascii_words), (_str_automaton(other_keys), other_words)),
            ((_bytes_automaton(ascii_keys), ascii_words), (_bytes_automaton(other_keys), other_words)),
        )

    def gate_may_open(self, joined: str) -> bool:
        """Whether a key that can open the gate occurs in `joined`, even off its end boundary (always
        True without a gate): False says the gate is closed, at the cost of one quick automaton call.
        A key of ASCII letters and digits found right after such a character does not count: it lies
        inside a word, where the term pass would drop it ("port" in "export"; see `_word_keys`)."""
        if self._gate is None:
            return True
        quick, words = self._quick[0 if joined.isascii() else 1]
        if quick is None:
            return False
        for index, start, _ in quick.find_matches_as_indexes(joined):
            if index not in words or not start or joined[start - 1] not in _ALNUM:
                return True
        return False

    def gate_may_open_many(self, joined: Sequence[str]) -> list[bool]:
        """`gate_may_open` of each text of `joined`, in one automaton call over them all (joined by "\n",
        which no key holds, so no match spans two texts; a text holding a key still gives a match, as the
        search restarts after each). A fetch's items asked one call at a time spend most of it bringing
        the automaton back into the processor's cache: one call over 50 costs about what 3 did."""
        if self._gate is None:
            return [True] * len(joined)
        if len(joined) < 2:
            return [self.gate_may_open(text) for text in joined]
        big = "\n".join(joined)
        quick, words = self._quick[0 if big.isascii() else 1]
        maybe = [False] * len(joined)
        if quick is None:
            return maybe
        # The matches come in text order: walk the texts' ends along with them.
        index, end = 0, len(joined[0])
        for key, start, _ in quick.find_matches_as_indexes(big):
            if key in words and start and big[start - 1] in _ALNUM:
                continue  # inside a word
            while start > end:
                index += 1
                end += 1 + len(joined[index])
            maybe[index] = True
        return maybe

    def gate_open(self, joined: str) -> bool:
        """Whether a term of the gate occurs in `joined` (always True without a gate)."""
        if self._gate is None:
            return True
        if not self.gate_may_open(joined):
            return False  # no key that could open the gate occurs, even off its word boundaries
        return self._gate_confirms(joined)

    def _gate_confirms(self, joined: str) -> bool:
        """`gate_open` of a text on which `gate_may_open` holds, for a pack with a gate."""
        assert self._gate is not None
        automaton = self._gate[0] if joined.isascii() else self._gate[1]
        found = _gate_hits(automaton, joined, self._vetoes)
        if not found:
            return False  # the common case: no subject at all
        vetoes = [(a, b) for a, b, veto in found if veto]
        # Open when a gate term was found outside every veto ("magnet" but not in "magnet school"). Only a
        # veto that holds the hit closes it: an exclusion phrase holds the terms it applies to, and a veto
        # of another term's that merely overlaps the hit ("lithium battery" against "battery technology" in
        # "lithium battery technology") does not drop it in the filters either.
        return any(not veto and not any(s <= a and b <= e for s, e in vetoes) for a, b, veto in found)

    def gate_may_open_lines(self, folded: bytes) -> list[bool] | None:
        """For each line of `folded` (text folded by `text.fold_ascii_lines` or `text.fold_lines`; its
        lines are `folded.split(b"\\n")`, an empty one after a final newline), whether a key that
        can open the gate occurs in it, off its end boundary too, as `gate_may_open` asks. False for a
        line says the gate is closed on any texts whose search texts are substrings of the line (each
        within it, as `fold_ascii_lines` promises for the lines' substrings) that do not start right
        after an ASCII letter or digit (a JSON string's text starts after its quote). One automaton call
        for every line: the cheap verdict on most items of a large input. None when there is no gate."""
        if self._gate is None:
            return None
        maybe = [False] * (folded.count(b"\n") + 1)
        # ASCII text holds no key with another character: the automaton of the ASCII keys alone will do.
        automaton, words = self._quick_lines[0 if folded.isascii() else 1]
        if automaton is not None:
            # Non-overlapping matches suffice: a key occurring in a line gives a match in that line, as
            # no key holds a newline (a match never spans two lines). The matches come in text order, so
            # a match's line is the newlines counted up to it from the one before (not a position of
            # every line's start, made for the few lines that hold a match).
            line = at = 0
            for key, start, _ in automaton.find_matches_as_indexes(folded):
                if key in words and start and folded[start - 1] in _ALNUM_BYTES:
                    continue  # inside a word, as in `gate_may_open`
                line += folded.count(b"\n", at, start)
                at = start
                maybe[line] = True
        return maybe

    def mentions_watched(self, raw: Sequence[str]) -> bool:
        """Whether the fields name a watched term (a material, an agency, a list) once the filters have
        had their say. A small automaton of the watched terms alone answers most items; only a raw hit
        pays for the full scan and the filters ("Graphite Capital" names no graphite)."""
        search = [search_text(text) if text else "" for text in raw]
        joined = "\n".join(search)
        automaton = self._watch[0] if joined.isascii() else self._watch[1]
        if automaton is None or not _gate_hits(automaton, joined, frozenset()):
            return False
        scan = self.scan(raw, gated=False, every_term=True)
        assert scan is not None
        self.filter(scan)
        return not self._watched.isdisjoint(scan.hits)

    def scan(self, raw: Sequence[str], gated: bool, every_term: bool = False) -> Scan | None:
        """The unfiltered term hits of an item's fields; None when `gated` and the gate is closed.
        `every_term` also finds the terms that only entities use."""
        search = [search_text(text) if text else "" for text in raw]
        # One automaton pass over the fields joined by "\n", which no search text contains: a term
        # cannot span two fields, and one pass costs less than three.
        joined = "\n".join(search)
        if gated and not self.gate_open(joined):
            return None
        return self._scan(raw, search, joined, every_term)

    def scan_may_open(self, raw: Sequence[str], search: Sequence[str], joined: str) -> Scan | None:
        """`scan(raw, gated=True)` of an item whose search texts are `search` (joined by "\n": `joined`),
        computed already, on which `gate_may_open` holds (`gate_may_open_many` said so)."""
        if self._gate is not None and not self._gate_confirms(joined):
            return None
        return self._scan(raw, search, joined, every_term=False)

    def scan_searched(self, raw: Sequence[str], joined: str) -> Scan:
        """`scan` (ungated) of fields whose search texts joined by "\n" are `joined`, already computed
        (the caller asked the gate with them): the fields are not normalised a second time."""
        return self._scan(raw, joined.split("\n"), joined, every_term=False)

    def scan_gated(self, raw: Sequence[str], joined: str) -> Scan | None:
        """`scan_searched`, or None when the gate is closed on the item (as `gate_open(joined)` says),
        for an item on which `gate_may_open` holds (it says so of most items that get this far): the
        verdict is read from the scan's own hits (`_opens_gate`), not from a pass of the gate automaton,
        where the term pass's automata hold every key of the gate's (the bundled pack's do); else the
        gate's pass is asked first."""
        if self._gate is None:
            return self.scan_searched(raw, joined)
        if not self._gate_in_scan:
            return self.scan_searched(raw, joined) if self.gate_open(joined) else None
        scan = self.scan_searched(raw, joined)
        return scan if self._opens_gate(scan.hits) else None

    def _opens_gate(self, hits: dict[int, list[Hit]]) -> bool:
        """What `gate_open` answers for the texts whose unfiltered hits (a pass of automata holding every
        key of the gate's) are `hits`. `_find_terms` appends one `Hit` object per key found to the
        list of each term the key spells, so the terms of a key's hit are the lists holding that object:
        as in `_gate_hits`, a hit is a veto when every term its key spells is a veto, and the gate opens
        on a hit of a gate key that is no veto and lies inside no veto's hit."""
        vetoes = self._vetoes
        if vetoes.isdisjoint(hits):  # most items: no veto, so any hit of a gate term opens it
            return not self._gate_ids.isdisjoint(hits)
        # A hit of a gate term that is a veto too stays among the vetoes, and a veto overlaps itself.
        openers = [hit for tid in hits if tid in self._gate_ids for hit in hits[tid]]
        vetoed = {id(hit): hit for tid in hits if tid in vetoes for hit in hits[tid]}
        if vetoed:
            for tid, found in hits.items():  # a veto's key that also spells another term is no veto
                if tid not in vetoes:
                    for hit in found:
                        if id(hit) in vetoed:
                            openers.append(vetoed.pop(id(hit)))
        return any(
            not any(v.field == h.field and v.start <= h.start and h.end <= v.end for v in vetoed.values())
            for h in openers
        )

    def _scan(self, raw: Sequence[str], search: Sequence[str], joined: str, every_term: bool) -> Scan:
        hits: dict[int, list[Hit]] = {}
        masks: dict[int, int] = {}
        ascii_automaton, other_automaton = self._all if every_term else (self._ascii, self._other)
        if ascii_automaton is not None:
            _find_terms(ascii_automaton, joined, search, hits, masks)
        ascii = joined.isascii()
        if other_automaton is not None and not ascii:
            _find_terms(other_automaton, joined, search, hits, masks)
        return Scan(raw, search, hits, masks, ascii)

    def filter(self, scan: Scan) -> None:
        """Drop the hits that do not count (case, exclusions, negation), in place."""
        if self._options and scan.masks:
            apply_filters(
                self._options,
                self._latin,
                scan.hits,
                scan.masks,
                scan.search,
                _CasedTexts(scan.raw),
                self._negators,
            )
            scan.masks_changed()


class _CasedTexts:
    """`cased_text` of each field, computed on first use: only case-sensitive terms need it."""

    __slots__ = ("_done", "_raw")

    def __init__(self, raw: Sequence[str]) -> None:
        self._raw = raw
        self._done: dict[int, str] = {}

    def __call__(self, field: int) -> str:
        text = self._done.get(field)
        if text is None:
            text = self._done[field] = cased_text(self._raw[field])
        return text


def _end_of(text: str, start: int, end: int, check_start: bool, check_end: bool, plural_ok: bool) -> int:
    """The end of a raw automaton hit that sits on the word boundaries its term needs, or -1."""
    if check_start and start and is_word_char(text[start - 1]):
        return -1
    if check_end and end < len(text) and is_word_char(text[end]):
        if not plural_ok or text[end] not in "se":  # cheap test first: "ban" in "bank", "band"
            return -1
        return _plural_end(text, end)
    return end


def _keys_of(automaton: Any | None, vetoes: frozenset[int]) -> list[str]:
    """The keys of `automaton` that spell a term other than a veto."""
    return [key for key, info in automaton.items() if not vetoes.issuperset(info[4])] if automaton else []


def _bytes_automaton(keys: list[str]) -> Any | None:
    """An `ahocorasick_rs` automaton of `keys` over UTF-8 bytes, or None when there are none."""
    if not keys:
        return None
    # Leftmost-first: a line holding a key still gives a match (the search restarts after each match,
    # and no match spans a newline), and this library searches such an automaton faster.
    return ahocorasick_rs.BytesAhoCorasick(
        [key.encode("utf-8") for key in keys],
        implementation=ahocorasick_rs.Implementation.DFA,
        matchkind=ahocorasick_rs.MatchKind.LeftmostFirst,
    )


def _str_automaton(keys: list[str]) -> Any | None:
    """An `ahocorasick_rs` automaton of `keys`, leftmost-first as `_bytes_automaton`'s (which
    `_word_keys` needs), or None when there are none."""
    if not keys:
        return None
    return ahocorasick_rs.AhoCorasick(
        keys,
        implementation=ahocorasick_rs.Implementation.DFA,
        matchkind=ahocorasick_rs.MatchKind.LeftmostFirst,
    )


def _word_keys(keys: list[str]) -> frozenset[int]:
    """The indexes of `keys` made of ASCII letters and digits alone. A quick gate may pass over such a
    key's match when the character before it is one too: the match lies inside a word, where the term
    pass would drop it, and no match it hides could open the gate. A leftmost-first search reports the
    leftmost match, so a key hidden by it starts at or after its start, right after one of its letters
    or digits (or at its start, after the same character): off its start boundary too, as every key that
    starts with a letter or digit needs one (`TermTable.add`). A key holding a space or a sign is not one
    of these: a key starting after that character would be hidden ("port controls" in "export controls"
    hides "controls")."""
    return frozenset(i for i, key in enumerate(keys) if key.isascii() and key.isalnum())


def _gate_hits(automaton: Any, text: str, vetoes: frozenset[int]) -> list[tuple[int, int, bool]]:
    """(start, end, is a veto) of every gate key found on its word boundaries."""
    found = []
    for last, (length, check_start, check_end, plural_ok, tids) in automaton.iter(text):
        start = last - length + 1
        end = _end_of(text, start, last + 1, check_start, check_end, plural_ok)
        if end >= 0:
            found.append((start, end, vetoes.issuperset(tids)))
    return found


def _find_terms(
    automaton: Any, text: str, fields: Sequence[str], hits: dict[int, list[Hit]], masks: dict[int, int]
) -> None:
    """Record the automaton's hits in `text` (the `fields` joined by "\n") that sit on word boundaries
    where the term needs them; positions are recorded relative to their field."""
    second = len(fields[0]) + 1
    third = second + len(fields[1]) + 1
    n = len(text)
    for last, (length, check_start, check_end, plural_ok, tids) in automaton.iter(text):
        start, end = last - length + 1, last + 1
        # `_end_of` and `is_word_char`, inlined: this loop runs once per raw hit of every item that
        # passed the gate, and a function call was a tenth of such an item's time.
        if check_start and start and (c := text[start - 1]).isalnum() and (c < "\u2e80" or not is_cjk(c)):
            continue
        if check_end and end < n and (c := text[end]).isalnum() and (c < "\u2e80" or not is_cjk(c)):
            if not plural_ok or c not in "se":
                continue
            end = _plural_end(text, end)
            if end < 0:
                continue
        # The hit made with `tuple.__new__` (a named tuple's own constructor is a Python function), and
        # each term's list and mask found with one look-up.
        if start >= third:
            hit, bit = _new(Hit, (2, start - third, end - third)), 4
        elif start >= second:
            hit, bit = _new(Hit, (1, start - second, end - second)), 2
        else:
            hit, bit = _new(Hit, (0, start, end)), 1
        for tid in tids:
            found = hits.get(tid)
            if found is None:
                hits[tid] = [hit]
                masks[tid] = bit
            else:
                found.append(hit)
                masks[tid] |= bit


def _plural_end(text: str, end: int) -> int:
    """The end of a "-s" or "-es" ending at `end` followed by a word boundary, or -1."""
    for suffix in ("s", "es"):
        after = end + len(suffix)
        if text.startswith(suffix, end) and (after == len(text) or not is_word_char(text[after])):
            return after
    return -1
