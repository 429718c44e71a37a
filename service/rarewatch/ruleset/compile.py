"""Validated rules -> one term table (one Aho-Corasick automaton for every term of every rule) and one
compiled expression per rule, with the index that says which rules a found term can wake."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from rarewatch.ruleset.clauses import SCOPES
from rarewatch.ruleset.literals import LiteralIndex
from rarewatch.ruleset.nodes import AllOf, AnyOf, Near, Node, NoneOf, Regex, TermSet, Weight
from rarewatch.ruleset.schema import (
    BRACES_KEPT,
    FIELDS,
    PLACEHOLDER,
    CasedTerm,
    Expr,
    Group,
    NearLeaf,
    NearSide,
    Negation,
    RegexLeaf,
    Rule,
    TermLike,
    VocabRef,
    Vocabulary,
    check_fragment_regex,
    compile_regex,
    has_braces,
)
from rarewatch.ruleset.terms import PLAIN, NegationCheck, TermOptions, TermTable
from rarewatch.ruleset.text import canonical_term, term_variants

Loc = tuple[str | int, ...]
# The vocabulary kinds whose terms make an item that fires no rule worth reading in full. Countries are
# not among them: nearly every piece of world news names one.
WATCHED_KINDS = frozenset({"materials", "watch"})


# The vocabulary kinds that are not terms to match, and what to do instead.
_UNMATCHABLE: dict[str | None, str] = {
    "glossary": "is a glossary (English glosses, not terms): it cannot be matched",
    "patterns": "holds named patterns: write them as {{name}} inside a regex",
    "negators": "holds negators: use it in `negated_by`, not in an expression",
}


class ExpressionError(ValueError):
    """A rule or vocabulary cannot be compiled; `loc` is the path of the offending value in the rule
    (`rule_id`) or, when `vocabulary` is set, in that vocabulary's document."""

    def __init__(self, message: str, rule_id: str, loc: Loc, vocabulary: str | None = None) -> None:
        self.rule_id = rule_id
        self.loc = loc
        self.vocabulary = vocabulary
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    fields: int  # bit mask: 1 title, 2 summary, 4 content
    sources: frozenset[str] | None
    expr: Node
    required: tuple[frozenset[int], ...] = ()  # term sets that must each be found for the rule to fire


@dataclass(frozen=True)
class Compiled:
    terms: TermTable
    rules: tuple[CompiledRule, ...]  # sorted by rule id
    triggers: dict[int, tuple[int, ...]]  # term id -> indexes of the rules it can wake
    always: tuple[int, ...]  # rules with no anchor term (regex-only): evaluated on every item
    entities: dict[int, tuple[tuple[str, str], ...]]  # term id -> the (kind, name) entities it names
    gate: frozenset[int] | None  # one of these must be found for any rule to fire; None: no such set
    matched: frozenset[int]  # the terms matching needs (rules, their exclusions and negators)
    watched: frozenset[int] = frozenset()  # terms naming a material or a `kind: watch` term: worth a look


class _Compiler:
    def __init__(self, vocabularies: Mapping[str, Vocabulary]) -> None:
        self.table = TermTable()
        self.vocabularies = vocabularies
        self.entities: dict[int, list[tuple[str, str]]] = {}
        self._vocab_nodes: dict[str, TermSet] = {}
        self._regexes = 0
        self.literals = LiteralIndex()  # the required literals of every regex of the pack
        self.patterns = _named_patterns(vocabularies)
        self.rule_id = ""
        self.rule_options = PLAIN  # options of the terms written in the current rule
        self._interned: dict[frozenset[int], frozenset[int]] = {}

    def term(self, term: TermLike, options: TermOptions) -> int:
        if isinstance(term, CasedTerm):
            return self.table.add(term.term, options, case_sensitive=term.case_sensitive)
        return self.table.add(term, options)

    def expr(self, e: Expr, loc: Loc) -> Node:
        if isinstance(e, str | CasedTerm):
            return TermSet(frozenset({self.term(e, self.rule_options)}), self.table.labels)
        if isinstance(e, VocabRef):
            return self.vocab(e.vocab, (*loc, "vocab"))
        if isinstance(e, RegexLeaf):
            self._regexes += 1
            source = self.expand(e, (*loc, "regex"))
            return Regex(source, e.case_sensitive, self._regexes, e.regex, self.literals)
        if isinstance(e, NearLeaf):
            left, right = (self.side(s, (*loc, "near", i)) for i, s in enumerate(e.near))
            return Near(left, right, e.within, self.table.latin, SCOPES[e.scope])
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

    def expand(self, leaf: RegexLeaf, loc: Loc) -> str:
        """The leaf's regex with each `{{name}}` replaced by its named pattern, checked as compiled."""

        def fragment(m: re.Match[str]) -> str:
            name = m.group(1)
            found = self.patterns.get(name)
            if found is None:
                close = difflib.get_close_matches(name, self.patterns, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(sorted(self.patterns)) or "none defined"
                raise ExpressionError(
                    f"unknown pattern {{{{{name}}}}}{hint} (known: {known})", self.rule_id, loc
                )
            return f"(?:{found})"

        source = PLACEHOLDER.sub(fragment, leaf.regex)
        if has_braces(source):
            raise ExpressionError(f"regex {leaf.regex!r}: {BRACES_KEPT}", self.rule_id, loc)
        try:
            compile_regex(source, leaf.case_sensitive)
        except ValueError as exc:
            raise ExpressionError(f"{exc} (with its named patterns expanded)", self.rule_id, loc) from None
        return source

    def merge_terms(self, options: list[Node]) -> list[Node]:
        """Alternatives that are plain terms or vocabularies become one `TermSet`: one test, not thirty."""
        terms = [o for o in options if isinstance(o, TermSet)]
        if len(terms) < 2:
            return options
        merged = TermSet(frozenset().union(*(t.tids for t in terms)), self.table.labels)
        return [merged, *(o for o in options if not isinstance(o, TermSet))]

    def intern(self, tids: frozenset[int]) -> frozenset[int]:
        """One object per distinct term set: per-item caches keyed by term sets then compare by
        identity, not element by element."""
        return self._interned.setdefault(tids, tids)

    def side(self, side: NearSide, loc: Loc) -> TermSet:
        items = side if isinstance(side, list) else [side]
        tids: frozenset[int] = frozenset()
        for i, item in enumerate(items):
            where = (*loc, i) if isinstance(side, list) else loc
            if isinstance(item, VocabRef):
                tids |= self.vocab(item.vocab, (*where, "vocab")).tids
            else:
                tids |= {self.term(item, self.rule_options)}
        return TermSet(self.intern(tids), self.table.labels)

    def vocab(self, name: str, loc: Loc, owner: str | None = None, negators: bool = False) -> TermSet:
        kind = self._lookup(name, loc, owner).kind
        refusal = _UNMATCHABLE.get(kind) if not (negators and kind == "negators") else None
        if refusal is not None:
            raise ExpressionError(f"vocabulary {name!r} {refusal}", self.rule_id, loc, owner)
        node = self._vocab_nodes.get(name)
        if node is None:
            vocabulary = self._lookup(name, loc, owner)
            options = self.options(vocabulary.exclude, vocabulary.negated_by, vocabulary.all_terms(), name)
            tids = frozenset(self.term(t, options) for t in vocabulary.all_terms())
            node = self._vocab_nodes[name] = TermSet(tids, self.table.labels)
            self._record_entities(vocabulary, options)
        return node

    def _lookup(self, name: str, loc: Loc, owner: str | None) -> Vocabulary:
        vocabulary = self.vocabularies.get(name)
        if vocabulary is None:
            known = ", ".join(sorted(self.vocabularies)) or "none defined"
            raise ExpressionError(f"unknown vocabulary {name!r} (known: {known})", self.rule_id, loc, owner)
        return vocabulary

    def _record_entities(self, vocabulary: Vocabulary, options: TermOptions) -> None:
        if vocabulary.kind is None:
            return
        for name, synonyms in vocabulary.entities.items():
            for t in (name, *synonyms):
                names = self.entities.setdefault(self.term(t, options), [])
                if (vocabulary.kind, name) not in names:
                    names.append((vocabulary.kind, name))

    def options(
        self,
        exclude: Sequence[str],
        negations: Sequence[Negation],
        terms: Sequence[TermLike],
        owner: str | None,
    ) -> TermOptions:
        """Compile `exclude` and `negated_by` of a rule (owner None) or a vocabulary (owner: its name)."""
        keys = set().union(*(_spellings(t) for t in terms)) if exclude else set()
        excludes = []
        for i, phrase in enumerate(exclude):
            # Each spelling of the phrase (its `~` words inflected, as the term table searches it) against the
            # terms': "fail~ to secure power" holds "failed to secure" only once both are inflected.
            if not any(k in spelling for spelling in term_variants(phrase) for k in keys):
                raise ExpressionError(
                    f"exclusion {phrase!r} contains none of the terms it applies to: it would never exclude",
                    self.rule_id,
                    ("exclude", i),
                    owner,
                )
            excludes.append(self.table.add(phrase, case_sensitive=phrase != phrase.lower()))
        checks = tuple(self.negation(n, ("negated_by", i), owner) for i, n in enumerate(negations))
        return TermOptions(None, frozenset(excludes), checks)

    def negation(self, spec: Negation, loc: Loc, owner: str | None) -> NegationCheck:
        negators: set[int] = set()
        for i, item in enumerate(spec.terms):
            if isinstance(item, VocabRef):
                # With the negator vocabulary's own options: its `exclude` can say that "could not"
                # is no hedge. (Its own `negated_by` is not for negators: do not set one.)
                negators.update(
                    self.vocab(item.vocab, (*loc, "terms", i, "vocab"), owner, negators=True).tids
                )
            else:
                negators.add(self.table.add(item))
        # Interned: the hit filters work out the negators present once per distinct set (see `filters`).
        return NegationCheck(self.intern(frozenset(negators)), *spec.window())


def _named_patterns(vocabularies: Mapping[str, Vocabulary]) -> dict[str, str]:
    """Every `kind: patterns` vocabulary's patterns by name, each with the named patterns it uses
    expanded; a name defined twice is an error at the second definition."""
    found: dict[str, tuple[str, str]] = {}
    for vocab_name, vocabulary in vocabularies.items():
        for name, fragment in vocabulary.patterns.items():
            first = found.setdefault(name, (fragment, vocab_name))
            if first[1] != vocab_name:
                raise ExpressionError(
                    f"duplicate pattern {name!r} (first defined in vocabulary {first[1]!r})",
                    "",
                    ("patterns", name),
                    vocab_name,
                )
    expanded: dict[str, str] = {}
    for name in found:
        _expand_pattern(name, found, expanded, ())
    return expanded


def _expand_pattern(
    name: str, found: Mapping[str, tuple[str, str]], expanded: dict[str, str], using: tuple[str, ...]
) -> str:
    """Pattern `name` with each `{{other}}` it uses replaced by that pattern, expanded in turn (memoised
    in `expanded`); `using` is the chain of patterns being expanded, so that a cycle is an error, as an
    unknown name is. The result is checked as a regex on its own."""
    if name in expanded:
        return expanded[name]
    fragment, vocab_name = found[name]
    if name in using:
        cycle = " -> ".join((*using[using.index(name) :], name))
        raise ExpressionError(
            f"patterns use each other in a cycle: {cycle}", "", ("patterns", name), vocab_name
        )

    def inner(m: re.Match[str]) -> str:
        other = m.group(1)
        if other not in found:
            close = difflib.get_close_matches(other, found, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ExpressionError(
                f"pattern {name!r} uses unknown pattern {{{{{other}}}}}{hint}",
                "",
                ("patterns", name),
                vocab_name,
            )
        return f"(?:{_expand_pattern(other, found, expanded, (*using, name))})"

    source = PLACEHOLDER.sub(inner, fragment)
    if has_braces(fragment):  # a fragment without braces was checked at load (`schema._check_fragment`)
        if has_braces(source):
            raise ExpressionError(f"pattern {name!r}: {BRACES_KEPT}", "", ("patterns", name), vocab_name)
        try:
            check_fragment_regex(source)
        except ValueError as exc:
            raise ExpressionError(
                f"pattern {name!r}: {exc} (with its named patterns expanded)",
                "",
                ("patterns", name),
                vocab_name,
            ) from None
    expanded[name] = source
    return source


def _field_mask(fields: Sequence[str]) -> int:
    return sum(1 << FIELDS.index(f) for f in fields)


def compile_rules(rules: Sequence[Rule], vocabularies: Mapping[str, Vocabulary]) -> Compiled:
    """Compile validated rules; raise `ExpressionError` on an unknown vocabulary or a rule with no term."""
    compiler = _Compiler(vocabularies)
    compiled: list[CompiledRule] = []
    for rule in sorted(rules, key=lambda r: r.id):
        compiler.rule_id = rule.id
        compiler.rule_options = compiler.options(
            rule.exclude, rule.negated_by, _inline_terms(rule.match), None
        )
        expr = compiler.expr(rule.match, ("match",))
        sources = frozenset(rule.sources) if rule.sources is not None else None
        compiled.append(CompiledRule(rule, _field_mask(rule.fields), sources, expr))
    usage = Counter(tid for c in compiled for tid in c.expr.term_ids())

    def weight(tids: frozenset[int]) -> int:
        return sum(usage[t] for t in tids)

    compiled = [replace(c, required=tuple(_required(c.expr, weight))) for c in compiled]
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
    watched: set[int] = set()
    for name, vocabulary in vocabularies.items():
        # Entity and watch vocabularies are searched even when no rule uses them.
        if vocabulary.entities or vocabulary.kind == "watch":
            compiler.rule_id = ""
            node = compiler.vocab(name, (), owner=name)
            if vocabulary.kind in WATCHED_KINDS:
                watched |= node.tids
    return Compiled(
        compiler.table,
        tuple(compiled),
        {t: tuple(r) for t, r in triggers.items()},
        tuple(always),
        {t: tuple(names) for t, names in compiler.entities.items()},
        None if always else _gate(compiled, weight),
        _closure(frozenset().union(*(_every_term(c.expr) for c in compiled)), compiler.table),
        frozenset(watched),
    )


def _every_term(node: Node) -> frozenset[int]:
    """Every term id `node` looks at, those under `none` included (`term_ids` leaves them out)."""
    if isinstance(node, AllOf | AnyOf | NoneOf):
        return frozenset().union(*(_every_term(c) for c in node.children))
    return node.term_ids()


def _closure(tids: frozenset[int], table: TermTable) -> frozenset[int]:
    """`tids` with the exclusion phrases and negators their options need, and theirs in turn.
    Terms outside it (entity vocabularies no rule uses: countries) are searched for entities only."""
    done: set[int] = set()
    todo = list(tids)
    while todo:
        tid = todo.pop()
        if tid in done:
            continue
        done.add(tid)
        options = table.options.get(tid)
        if options is not None:
            todo.extend(options.excludes)
            todo.extend(n for check in options.negations for n in check.negators)
    return frozenset(done)


def _required(
    node: Node, weight: Weight, shared: frozenset[frozenset[int]] | None = None
) -> list[frozenset[int]]:
    """Term sets of which one term each must be found for `node` to hold (a necessary condition)."""
    if isinstance(node, TermSet):
        return [node.tids]
    if isinstance(node, Near):
        return [node.left.tids, node.right.tids]
    if isinstance(node, AllOf):
        return [s for c in node.children for s in _required(c, weight, shared)]
    if isinstance(node, AnyOf):
        sets = [_gate_set(c, weight, shared) for c in node.children]
        return [frozenset().union(*(s for s in sets if s is not None))] if None not in sets else []
    return []  # a regex or a `none` requires no term


def _gate_set(
    node: Node, weight: Weight, shared: frozenset[frozenset[int]] | None = None
) -> frozenset[int] | None:
    """The required set of `node` to gate it on. By default the set most shared with other rules: the
    subject that most rules of a pack name ("materials"). With `shared` (the sets that at least two
    rules would be gated on): such a set where `node` requires one, else the plain presence test that
    starts an `all` (the pack's convention: a branch's rarest words first), else its smallest required
    set; so a rule naming no material (a list designation, a dual-use ban) is gated on its own few
    specific terms and not on a large vocabulary it shares with a few rules (the countries, staff words)."""
    required = [s for s in _required(node, weight, shared) if s]
    if not required:
        return None
    if shared is None:
        return max(required, key=weight)
    common = [s for s in required if s in shared]
    if common:
        return max(common, key=weight)
    # The pack's convention: a branch starts with a plain presence test of its rarest words.
    if isinstance(node, AllOf) and node.children and isinstance(node.children[0], TermSet):
        return node.children[0].tids
    return min(required, key=lambda s: (len(s), -weight(s)))


def _gate(rules: Sequence[CompiledRule], weight: Weight) -> frozenset[int] | None:
    """The union over rules of the set each is gated on (see `_gate_set`)."""
    first = [_gate_set(c.expr, weight) for c in rules]
    if None in first:
        return None
    counts = Counter(s for s in first if s is not None)
    shared = frozenset(s for s, n in counts.items() if n >= 2)
    sets = [_gate_set(c.expr, weight, shared) for c in rules]
    return None if None in sets else frozenset().union(*(s for s in sets if s is not None))


def _spellings(term: TermLike) -> frozenset[str]:
    if isinstance(term, CasedTerm):
        return frozenset({canonical_term(term.term)})
    return term_variants(term)


def _inline_terms(e: Expr) -> list[TermLike]:
    """The terms written in a rule's expression itself (not through a vocabulary)."""
    if isinstance(e, str | CasedTerm):
        return [e]
    if isinstance(e, NearLeaf):
        sides = [s if isinstance(s, list) else [s] for s in e.near]
        return [t for side in sides for t in side if not isinstance(t, VocabRef)]
    if isinstance(e, Group):
        return [t for part in (e.all, e.any, e.none) for c in part or () for t in _inline_terms(c)]
    return []


def _has_regex(node: Node) -> bool:
    """Whether a regex can make the node hold (a regex under `none` only ever prevents a match)."""
    if isinstance(node, Regex):
        return True
    if isinstance(node, AllOf | AnyOf):
        return any(_has_regex(c) for c in node.children)
    return False
