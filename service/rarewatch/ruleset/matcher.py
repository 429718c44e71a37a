"""The compiled rule pack: one Aho-Corasick pass over an item's fields finds every term of every rule,
then only the rules anchored on a found term are evaluated. Pure and synchronous; no I/O.

Cost per item: normalising the text, one automaton pass (two for text that is not pure ASCII), a
word-boundary check per raw hit, and the expressions of the woken rules. Rules that cannot be anchored
on a term (regex-only rules) are evaluated on every item: keep them few.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rarewatch.models import Item, Match
from rarewatch.ruleset.compile import Compiled, CompiledRule
from rarewatch.ruleset.nodes import Evidence, Hit, Scan
from rarewatch.ruleset.schema import FIELDS, Rule, Vocabulary
from rarewatch.ruleset.text import is_word_char, search_offset_to_display, search_text, snippet


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
        self._ascii_automaton, self._other_automaton = compiled.terms.automata()
        self.rules: tuple[Rule, ...] = tuple(c.rule for c in compiled.rules)
        self.vocabularies = vocabularies
        self.version = version
        self.origins = origins

    def match(self, item: Item) -> list[Match]:
        """The rules that fire on a normalised item, sorted by rule id."""
        return self._match((item.title, item.summary, item.content), item.source)  # the order of FIELDS

    def match_fields(
        self, fields: Mapping[str, str], source: str | None = None, lang: str | None = None
    ) -> list[Match]:
        """The rules that fire on plain texts keyed `title`, `summary`, `content` (missing keys are empty).

        Rules restricted to `sources` fire only when `source` is one of them. `lang` is accepted for
        symmetry with `Item`; matching does not depend on it (each term's script decides how it matches).
        """
        return self._match(tuple(fields.get(name) or "" for name in FIELDS), source)

    def _match(self, raw: Sequence[str], source: str | None) -> list[Match]:
        scan = self._scan(raw)
        if scan is None:
            return []
        woken = set(self._always)
        for tid in scan.masks:
            woken.update(self._triggers.get(tid, ()))
        found = []
        for index in sorted(woken):  # rules are sorted by id, so matches are too
            rule = self._compiled[index]
            if rule.sources is not None and source not in rule.sources:
                continue
            if rule.expr.test(scan, rule.fields):
                found.append(_to_match(rule, scan))
        return found

    def _scan(self, raw: Sequence[str]) -> Scan | None:
        """Find the terms in every field; None when no term was found and no rule runs regardless."""
        search = [search_text(text) if text else "" for text in raw]
        # One automaton pass over the fields joined by "\n", which no search text contains: a term
        # cannot span two fields, and one pass costs less than three.
        joined = "\n".join(search)
        hits: dict[int, list[Hit]] = {}
        masks: dict[int, int] = {}
        if self._ascii_automaton is not None:
            _find_terms(self._ascii_automaton, joined, search, hits, masks)
        if self._other_automaton is not None and not joined.isascii():
            _find_terms(self._other_automaton, joined, search, hits, masks)
        if not masks and not self._always:
            return None
        return Scan(raw, search, hits, masks)


def _find_terms(
    automaton: Any, text: str, fields: Sequence[str], hits: dict[int, list[Hit]], masks: dict[int, int]
) -> None:
    """Record the automaton's hits in `text` (the `fields` joined by "\n") that sit on word boundaries
    where the term needs them; positions are recorded relative to their field."""
    n = len(text)
    second = len(fields[0]) + 1
    third = second + len(fields[1]) + 1
    for last, (length, check_start, check_end, plural_ok, tids) in automaton.iter(text):
        start, end = last - length + 1, last + 1
        if check_start and start and is_word_char(text[start - 1]):
            continue
        if check_end and end < n and is_word_char(text[end]):
            if not plural_ok or text[end] not in "se":  # cheap test first: "ban" in "bank", "band"
                continue
            end = _plural_end(text, end)
            if end < 0:
                continue
        field, offset = (2, third) if start >= third else (1, second) if start >= second else (0, 0)
        hit = Hit(field, start - offset, end - offset)
        for tid in tids:
            if tid in hits:
                hits[tid].append(hit)
                masks[tid] |= 1 << field
            else:
                hits[tid] = [hit]
                masks[tid] = 1 << field


def _plural_end(text: str, end: int) -> int:
    """The end of a "-s" or "-es" ending at `end` followed by a word boundary, or -1."""
    for suffix in ("s", "es"):
        after = end + len(suffix)
        if text.startswith(suffix, end) and (after == len(text) or not is_word_char(text[after])):
            return after
    return -1


def _to_match(rule: CompiledRule, scan: Scan) -> Match:
    evidence: list[Evidence] = []
    rule.expr.evidence(scan, rule.fields, evidence)
    evidence.sort()  # by field and position; the rest of the tuple only makes ties deterministic
    terms = tuple(dict.fromkeys(e.label for e in evidence))
    return Match(
        rule=rule.rule.id,
        category=rule.rule.category,
        severity=rule.rule.severity,
        terms=terms,
        snippet=_snippet(scan, evidence[0]) if evidence else "",
    )


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
