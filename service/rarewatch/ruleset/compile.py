"""Validated rules -> one term table (one Aho-Corasick automaton for every term of every rule) and one
compiled expression per rule, with the index that says which rules a found term can wake."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from rarewatch.ruleset.nodes import AllOf, AnyOf, Near, Node, NoneOf, Regex, TermSet
from rarewatch.ruleset.schema import (
    FIELDS,
    Expr,
    Group,
    NearLeaf,
    NearSide,
    RegexLeaf,
    Rule,
    VocabRef,
    Vocabulary,
)
from rarewatch.ruleset.text import canonical_term, is_cjk, is_word_char, term_variants

Loc = tuple[str | int, ...]
# What the automaton stores per key: (key length, check the start boundary, check the end boundary,
# tolerate a plural "-s/-es" after the end, the ids of the terms this key spells).
KeyInfo = tuple[int, bool, bool, bool, tuple[int, ...]]


class ExpressionError(ValueError):
    """A rule's expression cannot be compiled; `loc` is the path of the offending value in the rule."""

    def __init__(self, message: str, rule_id: str, loc: Loc) -> None:
        self.rule_id = rule_id
        self.loc = loc
        super().__init__(message)


class TermTable:
    """Every distinct term (by canonical spelling) gets an id; `labels` keeps its first spelling."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self.labels: list[str] = []
        self.latin: list[bool] = []  # True when the term has no CJK character: `near` counts words
        self._keys: dict[str, KeyInfo] = {}

    def add(self, term: str) -> int:
        canonical = canonical_term(term)
        tid = self._ids.get(canonical)
        if tid is not None:
            return tid
        tid = self._ids[canonical] = len(self.labels)
        self.labels.append(term)
        self.latin.append(not any(is_cjk(c) for c in canonical))
        for key in term_variants(term):
            starts, ends = is_word_char(key[0]), is_word_char(key[-1])
            previous = self._keys.get(key)
            tids = (previous[4] if previous else ()) + (tid,)
            self._keys[key] = (len(key), starts, ends, ends and key[-1].isalpha(), tids)
        return tid

    def automata(self) -> tuple[Any | None, Any | None]:
        """Two automata: ASCII keys, searched in every text, and the other keys (CJK, accented), searched
        only in texts that are not pure ASCII. Splitting them keeps the automaton's root small, which is
        what an Aho-Corasick pass over English text spends its time on. None where there are no keys."""
        ascii_keys = {k: v for k, v in self._keys.items() if k.isascii()}
        other_keys = {k: v for k, v in self._keys.items() if not k.isascii()}
        return _automaton(ascii_keys), _automaton(other_keys)


def _automaton(keys: dict[str, KeyInfo]) -> Any | None:
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key, info in keys.items():
        automaton.add_word(key, info)
    automaton.make_automaton()
    return automaton


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    fields: int  # bit mask: 1 title, 2 summary, 4 content
    sources: frozenset[str] | None
    expr: Node


@dataclass(frozen=True)
class Compiled:
    terms: TermTable
    rules: tuple[CompiledRule, ...]  # sorted by rule id
    triggers: dict[int, tuple[int, ...]]  # term id -> indexes of the rules it can wake
    always: tuple[int, ...]  # rules with no anchor term (regex-only): evaluated on every item


class _Compiler:
    def __init__(self, vocabularies: Mapping[str, Vocabulary]) -> None:
        self.table = TermTable()
        self.vocabularies = vocabularies
        self._vocab_nodes: dict[str, TermSet] = {}
        self._regexes = 0
        self.rule_id = ""

    def expr(self, e: Expr, loc: Loc) -> Node:
        if isinstance(e, str):
            return TermSet(frozenset({self.table.add(e)}), self.table.labels)
        if isinstance(e, VocabRef):
            return self.vocab(e.vocab, (*loc, "vocab"))
        if isinstance(e, RegexLeaf):
            self._regexes += 1
            return Regex(e.regex, e.case_sensitive, self._regexes)
        if isinstance(e, NearLeaf):
            left, right = (self.side(s, (*loc, "near", i)) for i, s in enumerate(e.near))
            return Near(left, right, e.within, self.table.latin)
        assert isinstance(e, Group)
        return self.group(e, loc)

    def group(self, g: Group, loc: Loc) -> Node:
        parts: list[Node] = []
        if g.all is not None:
            parts.extend(self.expr(c, (*loc, "all", i)) for i, c in enumerate(g.all))
        if g.any is not None:
            options = self.merge_terms([self.expr(c, (*loc, "any", i)) for i, c in enumerate(g.any)])
            parts.append(options[0] if len(options) == 1 else AnyOf(options))
        if g.none is not None:
            parts.append(
                NoneOf(self.merge_terms([self.expr(c, (*loc, "none", i)) for i, c in enumerate(g.none)]))
            )
        return parts[0] if len(parts) == 1 else AllOf(parts)

    def merge_terms(self, options: list[Node]) -> list[Node]:
        """Alternatives that are plain terms or vocabularies become one `TermSet`: one test, not thirty."""
        terms = [o for o in options if isinstance(o, TermSet)]
        if len(terms) < 2:
            return options
        merged = TermSet(frozenset().union(*(t.tids for t in terms)), self.table.labels)
        return [merged, *(o for o in options if not isinstance(o, TermSet))]

    def side(self, side: NearSide, loc: Loc) -> TermSet:
        items = side if isinstance(side, list) else [side]
        tids: frozenset[int] = frozenset()
        for i, item in enumerate(items):
            where = (*loc, i) if isinstance(side, list) else loc
            if isinstance(item, VocabRef):
                tids |= self.vocab(item.vocab, (*where, "vocab")).tids
            else:
                tids |= {self.table.add(item)}
        return TermSet(tids, self.table.labels)

    def vocab(self, name: str, loc: Loc) -> TermSet:
        node = self._vocab_nodes.get(name)
        if node is None:
            vocabulary = self.vocabularies.get(name)
            if vocabulary is None:
                known = ", ".join(sorted(self.vocabularies)) or "none defined"
                raise ExpressionError(f"unknown vocabulary {name!r} (known: {known})", self.rule_id, loc)
            tids = frozenset(self.table.add(t) for t in vocabulary.terms)
            node = self._vocab_nodes[name] = TermSet(tids, self.table.labels)
        return node


def _field_mask(fields: Sequence[str]) -> int:
    return sum(1 << FIELDS.index(f) for f in fields)


def compile_rules(rules: Sequence[Rule], vocabularies: Mapping[str, Vocabulary]) -> Compiled:
    """Compile validated rules; raise `ExpressionError` on an unknown vocabulary or a rule with no term."""
    compiler = _Compiler(vocabularies)
    compiled: list[CompiledRule] = []
    for rule in sorted(rules, key=lambda r: r.id):
        compiler.rule_id = rule.id
        expr = compiler.expr(rule.match, ("match",))
        sources = frozenset(rule.sources) if rule.sources is not None else None
        compiled.append(CompiledRule(rule, _field_mask(rule.fields), sources, expr))
    usage = Counter(tid for c in compiled for tid in c.expr.term_ids())

    def weight(tids: frozenset[int]) -> int:
        return sum(usage[t] for t in tids)

    triggers: dict[int, list[int]] = {}
    always: list[int] = []
    for index, c in enumerate(compiled):
        anchor = c.expr.anchor(weight)
        if anchor is not None:
            for tid in anchor:
                triggers.setdefault(tid, []).append(index)
        elif _has_regex(c.expr):
            always.append(index)
        else:
            raise ExpressionError(
                "this expression holds for items that contain none of its terms; "
                "require a term, e.g. all: [term, {none: [...]}]",
                c.rule.id,
                ("match",),
            )
    return Compiled(
        compiler.table, tuple(compiled), {t: tuple(r) for t, r in triggers.items()}, tuple(always)
    )


def _has_regex(node: Node) -> bool:
    """Whether a regex can make the node hold (a regex under `none` only ever prevents a match)."""
    if isinstance(node, Regex):
        return True
    if isinstance(node, AllOf | AnyOf):
        return any(_has_regex(c) for c in node.children)
    return False
