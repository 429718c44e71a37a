"""The term table: every distinct term of the pack gets an id, and every spelling of it becomes a key of
one Aho-Corasick automaton (two, split by script; see `TermTable.automata`).

A term's identity is its canonical spelling plus its options (`TermOptions`): "graphite" in a vocabulary
that excludes "Graphite Capital" and a bare "graphite" in a rule are two ids that share the automaton
keys, so that an option of one vocabulary never changes what another rule sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from rarewatch.ruleset.forms import STEM_MARK
from rarewatch.ruleset.text import (
    canonical_term,
    cased_text,
    is_cjk,
    is_word_char,
    search_text,
    term_variants,
)

# What the automaton stores per key: (key length, check the start boundary, check the end boundary,
# tolerate a plural "-s/-es" after the end, the ids of the terms this key spells).
KeyInfo = tuple[int, bool, bool, bool, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class NegationCheck:
    """Compiled `negated_by`: negator term ids and the distances (None: that side is not checked)."""

    negators: frozenset[int]
    before: int | None
    before_cjk: int | None
    after: int | None
    after_cjk: int | None


@dataclass(frozen=True, slots=True)
class TermOptions:
    """What can cancel a hit of a term after the automaton found it."""

    cased: str | None = None  # case-sensitive: the text at the hit must read exactly this
    excludes: frozenset[int] = frozenset()  # ids of exclusion phrases: a hit inside one does not count
    negations: tuple[NegationCheck, ...] = ()

    @property
    def plain(self) -> bool:
        return self.cased is None and not self.excludes and not self.negations


PLAIN = TermOptions()


@dataclass
class TermTable:
    """Term ids by (canonical spelling, options); `labels` keeps each id's first spelling."""

    labels: list[str] = field(default_factory=list)
    latin: list[bool] = field(default_factory=list)  # True when the term has no CJK: distances in words
    options: dict[int, TermOptions] = field(default_factory=dict)  # ids with options only
    _ids: dict[tuple[str, TermOptions], int] = field(default_factory=dict)
    _keys: dict[str, KeyInfo] = field(default_factory=dict)

    def add(self, term: str, options: TermOptions = PLAIN, case_sensitive: bool = False) -> int:
        """The id of `term` with `options`, created (with its automaton keys) on first sight."""
        if case_sensitive:
            cased = cased_text(term)
            options = TermOptions(cased, options.excludes, options.negations)
            canonical, keys = "=" + cased, frozenset({search_text(term)})
        else:
            canonical, keys = canonical_term(term), term_variants(term)
        tid = self._ids.get((canonical, options))
        if tid is not None:
            return tid
        tid = self._ids[(canonical, options)] = len(self.labels)
        self.labels.append(term.replace(STEM_MARK, ""))
        self.latin.append(not any(is_cjk(c) for c in canonical))
        if not options.plain:
            self.options[tid] = options
        for key in keys:
            starts, ends = is_word_char(key[0]), is_word_char(key[-1])
            previous = self._keys.get(key)
            tids = (previous[4] if previous else ()) + (tid,)
            self._keys[key] = (len(key), starts, ends, ends and key[-1].isalpha(), tids)
        return tid

    def gate_terms(self, gate: frozenset[int]) -> tuple[frozenset[int], frozenset[int]]:
        """The gate's terms and the exclusion phrases that can veto a gate hit for sure: those of the
        gate's terms written in lower case (a capitalised one is case-sensitive, which the gate, to
        stay cheap, does not check)."""
        vetoes = {e for t in gate if t in self.options for e in self.options[t].excludes}
        return gate, frozenset(e for e in vetoes if e not in self.options)

    def automata(self, only: frozenset[int] | None = None) -> tuple[Any | None, Any | None]:
        """Two automata: ASCII keys, searched in every text, and the other keys (CJK, accented), searched
        only in texts that are not pure ASCII. Splitting them keeps the automaton's root small, which is
        what an Aho-Corasick pass over English text spends its time on. None where there are no keys.
        With `only`, just the keys that spell one of those term ids (the gate)."""
        keys = (
            self._keys if only is None else {k: v for k, v in self._keys.items() if not only.isdisjoint(v[4])}
        )
        ascii_keys = {k: v for k, v in keys.items() if k.isascii()}
        other_keys = {k: v for k, v in keys.items() if not k.isascii()}
        return _automaton(ascii_keys), _automaton(other_keys)

    def gate_automata(self, only: frozenset[int]) -> tuple[Any | None, Any | None]:
        """The gate: its ASCII keys for ASCII texts, and all its keys in one automaton for the other
        texts (one pass over Chinese text rather than two: the gate runs on every item)."""
        keys = {k: v for k, v in self._keys.items() if not only.isdisjoint(v[4])}
        return _automaton({k: v for k, v in keys.items() if k.isascii()}), _automaton(keys)


def _automaton(keys: dict[str, KeyInfo]) -> Any | None:
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key, info in keys.items():
        automaton.add_word(key, info)
    automaton.make_automaton()
    return automaton
