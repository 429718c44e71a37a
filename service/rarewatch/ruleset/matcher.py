"""The compiled rule pack: one Aho-Corasick pass over an item's fields finds every term of every rule,
then only the rules anchored on a found term are evaluated. Pure and synchronous; no I/O.

Cost per item: see `scanning` (normalisation, the gate, one automaton pass, the hit filters), then
the expressions of the woken rules whose required terms were all found. Rules that cannot be anchored
on a term (regex-only rules) are evaluated on every item, and turn the gate off: keep them few.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rarewatch.models import Item, Match
from rarewatch.ruleset import chinese, explain
from rarewatch.ruleset.compile import Compiled, CompiledRule
from rarewatch.ruleset.core import CoreRule, MatchCore, candidate_indexes
from rarewatch.ruleset.entities import NONE, Entities, collect
from rarewatch.ruleset.glossary import Glossary
from rarewatch.ruleset.nodes import Evidence, Scan
from rarewatch.ruleset.scanning import Scanner
from rarewatch.ruleset.schema import FIELDS, FieldName, Rule, Vocabulary
from rarewatch.ruleset.text import search_offset_to_display, search_text, snippet


@dataclass(frozen=True)
class RuleOrigin:
    """Where a rule was defined: its file, line, and the line of each example (by kind)."""

    file: str
    line: int
    example_lines: Mapping[str, tuple[int, ...]]  # "match" / "no_match" -> one line per example


class Ruleset:
    """A loaded rule pack, ready to match. Build it with `load_ruleset`."""

    def __init__(
        self,
        compiled: Compiled,
        version: str,
        origins: Mapping[str, RuleOrigin],
        vocabularies: Mapping[str, Vocabulary],
    ) -> None:
        self._compiled = compiled.rules
        self._triggers = compiled.triggers
        self._always = frozenset(compiled.always)
        self._scanner = Scanner(compiled.terms, compiled.gate, compiled.matched, compiled.watched)
        self._entities = compiled.entities
        chinese.warm_up()
        self.rules: tuple[Rule, ...] = tuple(c.rule for c in compiled.rules)
        self._by_id = {r.id: r for r in self.rules}
        self.vocabularies = vocabularies
        self.glossary = Glossary.from_vocabularies(vocabularies.values())
        self.version = version
        self.origins = origins
        self.core = MatchCore(
            [
                CoreRule(
                    c.rule.id, c.rule.category, c.rule.severity.label, c.fields, c.sources, c.expr, c.required
                )
                for c in compiled.rules
            ],
            compiled.triggers,
            self._always,
            self._scanner,
        )

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickling (the rule cache) skips `__init__`: warm the Chinese tables as it would."""
        self.__dict__.update(state)
        chinese.warm_up()

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError for an unknown id)."""
        return self._by_id[rule_id]

    def match(self, item: Item) -> list[Match]:
        """The rules that fire on a normalised item, sorted by rule id."""
        return self._match((item.title, item.summary, item.content), item.source)  # the order of FIELDS

    def match_many(self, items: Sequence[Item]) -> list[list[Match]]:
        """`match` of each item, in order: the gate's quick verdict is asked of all the items at once
        (`Scanner.gate_may_open_many`), and only those on which it may open are matched further."""
        if self._always:  # no gate: every item is matched in full
            return [self.match(item) for item in items]
        raws = [(item.title, item.summary, item.content) for item in items]  # the order of FIELDS
        searches = [[search_text(text) if text else "" for text in raw] for raw in raws]
        joined = ["\n".join(search) for search in searches]
        maybe = self._scanner.gate_may_open_many(joined)
        found: list[list[Match]] = []
        for item, raw, search, text, open_ in zip(items, raws, searches, joined, maybe, strict=True):
            scan = self._scanner.scan_may_open(raw, search, text) if open_ else None
            found.append([] if scan is None else self._fire(scan, item.source))
        return found

    def match_fields(
        self,
        fields: Mapping[str, str],
        source: str | None = None,
        lang: str | None = None,
        *,
        snippet_from: FieldName | None = None,
    ) -> list[Match]:
        """The rules that fire on plain texts keyed `title`, `summary`, `content` (missing keys are empty).

        Rules restricted to `sources` fire only when `source` is one of them. `lang` is accepted for
        symmetry with `Item`; matching does not depend on it (each term's script decides how it matches).
        `snippet_from` takes each snippet from that field's first evidence when a rule has some there
        (an article's lead says more than the headline it was read for); by default, the first evidence.
        """
        raw = tuple(fields.get(name) or "" for name in FIELDS)
        return self._match(raw, source, None if snippet_from is None else FIELDS.index(snippet_from))

    def cannot_fire(self, search: str) -> bool:
        """Whether no rule can fire on an item whose title, summary and content have the search texts
        `search` (`text.search_text` of each plain text, "" for an empty one, joined by "\n"): the gate
        is closed on them. The verdict `match_fields` reaches first on most items, for a caller that can
        build the search texts more cheaply than from the plain texts (`rarewatch match`). False when
        the pack has no gate (a rule anchored on no term runs on every item)."""
        return self.core.cannot_fire(search)

    def gate_closed_lines(self, folded: bytes) -> list[bool]:
        """For each line of `folded` (lines folded by `text.fold_ascii_lines` or `text.fold_lines`, split
        on "\\n"), True when the gate is surely closed on any item whose title, summary and content have
        search texts that are substrings of that line's fold (those functions say when they are: a JSON
        line holding its texts verbatim, for instance). Then `cannot_fire` would say so too, and
        matching stops there. False when the line may open it (or the pack has no gate): ask
        `cannot_fire`. One automaton call over all the lines, rather than one normalisation and one
        gate per item."""
        return self.core.gate_closed_lines(folded)

    def worth_enriching(self, fields: Mapping[str, str], lang: str | None = None) -> bool:
        """Whether texts keyed `title`, `summary`, `content` name a material of the pack or a term of a
        `kind: watch` vocabulary (an agency, a list, a control), after exclusions and negation: an item
        that does but fires no rule is worth reading in full. `lang` is accepted as in `match_fields`."""
        return self._scanner.mentions_watched(tuple(fields.get(name) or "" for name in FIELDS))

    def first_fields(
        self, fields: Mapping[str, str], rule_ids: Collection[str], source: str | None = None
    ) -> dict[str, FieldName]:
        """For each of `rule_ids` (rules that fire on `fields`), the field that completed its match: the
        first of title, summary, content such that the rule fires on that field and those before it.

        A rule that fires on no shorter prefix (or, through `none`, only on the whole text) gets the last
        non-empty field. Costs at most two extra matches, and only for items that matched.
        """
        present = [name for name in FIELDS if fields.get(name)]
        if not present:
            return {}
        found: dict[str, FieldName] = {}
        wanted = set(rule_ids)
        for end, name in enumerate(present[:-1], start=1):
            prefix: dict[str, str] = {f: fields[f] for f in present[:end]}
            # Which rules fire on the prefix, as `match_fields` would say, without their evidence.
            for rule in self._firing(tuple(prefix.get(f) or "" for f in FIELDS), source):
                if rule in wanted and rule not in found:
                    found[rule] = name
            if len(found) == len(wanted):
                return found
        return {rule: found.get(rule, present[-1]) for rule in wanted}

    def entities(self, item: Item) -> Entities:
        """The materials and countries `item` names (canonical names, in order of first mention)."""
        return self.entities_fields({"title": item.title, "summary": item.summary, "content": item.content})

    def entities_fields(self, fields: Mapping[str, str]) -> Entities:
        """`entities` of plain texts keyed `title`, `summary`, `content` (missing keys are empty).
        The same automaton and filters as matching; a second pass over the item (matching stops at
        the gate for most items, so sharing its pass would not save the alerts' second one)."""
        if not self._entities:
            return NONE
        scan = self._scanner.scan(
            tuple(fields.get(name) or "" for name in FIELDS), gated=False, every_term=True
        )
        assert scan is not None
        self._scanner.filter(scan)
        return collect(self._entities, scan.hits)

    def glosses(self, matches: Sequence[Match]) -> tuple[tuple[str, str], ...]:
        """(term, English gloss) for each Chinese term that fired in `matches`, in match order (see
        `glossary`): what an alert carries so that every destination can show an English gloss."""
        return self.glossary.glosses(t for m in matches for t in m.terms)

    def why_not(self, fields: Mapping[str, str], source: str | None = None) -> list[dict[str, Any]]:
        """Why each rule that an item came close to (a term of it was found) did not fire: see
        `rarewatch.ruleset.explain`. Texts keyed `title`, `summary`, `content`, as in `match_fields`."""
        scan = self._scanner.scan(tuple(fields.get(name) or "" for name in FIELDS), gated=False)
        assert scan is not None  # never None ungated
        unfiltered = dict(scan.masks)
        found = unfiltered.keys()
        close = [
            i
            for i, r in enumerate(self._compiled)
            if i in self._always or not found.isdisjoint(r.expr.term_ids())
        ]
        self._scanner.filter(scan)
        return explain.why_not(self._compiled, close, scan, unfiltered, source)

    def _match(self, raw: Sequence[str], source: str | None, snippet_field: int | None = None) -> list[Match]:
        scan = self._scanner.scan(raw, gated=not self._always)
        if scan is None:
            return []
        return self._fire(scan, source, snippet_field)

    def _firing(self, raw: Sequence[str], source: str | None) -> list[str]:
        """The ids of the rules `_match(raw, source)` finds firing, in the same order, without building
        their matches (evidence, snippet): what `first_fields` needs of a prefix of an item's texts."""
        scan = self._scanner.scan(raw, gated=not self._always)
        if scan is None:
            return []
        return [self._compiled[i].rule.id for i in self._firing_indexes(scan, source)]

    def _fire(self, scan: Scan, source: str | None, snippet_field: int | None = None) -> list[Match]:
        """The rules that fire on the item `scan` found the (unfiltered) terms of, each with its match."""
        return [_to_match(self._compiled[i], scan, snippet_field) for i in self._firing_indexes(scan, source)]

    def _firing_indexes(self, scan: Scan, source: str | None) -> list[int]:
        """The indexes of the rules that fire on the item `scan` found the (unfiltered) terms of, in id
        order (rules are sorted by id). Each woken rule is asked its expression's compiled test
        (`MatchCore.tests`: the expression's own answer, one function rather than a tree of node calls);
        the caller builds a match only for those that fire."""
        indexes = candidate_indexes(self._compiled, self._triggers, self._always, scan.masks, source)
        if not indexes:
            return []
        self._scanner.filter(scan)
        compiled, tests, found_in = self._compiled, self.core.tests, scan.found_in
        return [i for i in indexes if tests[i](scan, compiled[i].fields, found_in(compiled[i].fields))]


def _to_match(rule: CompiledRule, scan: Scan, snippet_field: int | None = None) -> Match:
    evidence: list[Evidence] = []
    rule.expr.evidence(scan, rule.fields, evidence)
    evidence.sort()  # by field and position; the rest of the tuple only makes ties deterministic
    terms = tuple(dict.fromkeys(e.label for e in evidence))
    return Match(
        rule=rule.rule.id,
        category=rule.rule.category,
        severity=rule.rule.severity,
        terms=terms,
        snippet=_snippet(scan, _snippet_evidence(evidence, snippet_field)) if evidence else "",
    )


def _snippet_evidence(evidence: Sequence[Evidence], field: int | None) -> Evidence:
    """The first evidence in `field` if there is any (and `field` is given), else the first of all."""
    if field is not None:
        for e in evidence:
            if e.field == field:
                return e
    return evidence[0]


def _snippet(scan: Scan, first: Evidence) -> str:
    cached = scan.snippets.get(first)
    if cached is None:
        cached = scan.snippets[first] = _make_snippet(scan, first)
    return cached


def _make_snippet(scan: Scan, first: Evidence) -> str:
    display = scan.display(first.field)
    start, end = first.start, first.end
    # Equal lengths mean the whitespace collapse removed nothing: search positions are display positions.
    if first.in_search_text and len(scan.search[first.field]) != len(display):
        start = search_offset_to_display(display, start)
        end = search_offset_to_display(display, end)
    return snippet(display, start, end)
