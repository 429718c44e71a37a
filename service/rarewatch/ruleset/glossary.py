"""English glosses of Chinese terms, built offline from the rule pack: no translation service.

Two sources, both vocabularies of the pack:

* entity vocabularies (`kind: materials|countries`): each Chinese synonym glosses as its canonical
  English name (稀土 -> rare earths, 美国 -> united states);
* glossaries (`kind: glossary`, `entries: {不可靠实体清单: unreliable entity list}`), which win over
  an entity name for the same key.

A term without an entry of its own is glossed by greedy longest-match segmentation: from left to right,
the longest glossed key that starts at each position (稀土出口管制 -> 稀土 + 出口管制 -> "rare earths
export control"). Digits and Latin letters in a term stand for themselves (232调查 -> "232
investigation"); Chinese characters no key covers are kept as they are and reported by `uncovered`, so
a rule author can see what to add. Keys and terms are compared in Simplified script (Traditional text
is converted before matching, so a Simplified entry covers both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rarewatch.ruleset.chinese import to_simplified
from rarewatch.ruleset.forms import STEM_MARK
from rarewatch.ruleset.schema import ENTITY_KINDS, CasedTerm, Vocabulary
from rarewatch.ruleset.text import canonical_term, is_cjk


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a term: its text and its English gloss (None: Chinese that no entry covers)."""

    text: str
    gloss: str | None


def has_cjk(text: str) -> bool:
    """Whether `text` holds a Chinese (CJK) character."""
    return any(is_cjk(c) for c in text)


def gloss_key(term: str) -> str:
    """The form terms and glossary keys are compared in: canonical, Simplified, without `~`."""
    return to_simplified(canonical_term(term)).replace(STEM_MARK, "").strip()


class Glossary:
    """Chinese term -> English gloss, with segmentation for terms without an entry of their own."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = {gloss_key(k): v for k, v in entries.items() if has_cjk(k)}
        self._longest = max((len(k) for k in self._entries), default=0)

    @classmethod
    def from_vocabularies(cls, vocabularies: Iterable[Vocabulary]) -> Glossary:
        """The glossary of a pack: entity synonyms by their canonical names, then glossary entries."""
        vocabularies = list(vocabularies)
        entries: dict[str, str] = {}
        for vocabulary in vocabularies:
            if vocabulary.kind in ENTITY_KINDS:
                for name, synonyms in vocabulary.entities.items():
                    for synonym in synonyms:
                        text = synonym.term if isinstance(synonym, CasedTerm) else synonym
                        if has_cjk(text):
                            entries.setdefault(gloss_key(text), name)
        for vocabulary in vocabularies:
            if vocabulary.kind == "glossary":
                entries.update({gloss_key(k): v for k, v in vocabulary.entries.items()})
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, term: str) -> str | None:
        """The gloss of `term` when it has an entry of its own (no segmentation)."""
        return self._entries.get(gloss_key(term))

    def segments(self, term: str) -> list[Segment]:
        """`term` cut into glossed pieces by greedy longest match (see the module docstring)."""
        text = gloss_key(term)
        found: list[Segment] = []
        i = 0
        while i < len(text):
            if not is_cjk(text[i]):
                j = i
                while j < len(text) and not is_cjk(text[j]):
                    j += 1
                piece = text[i:j].strip()
                if any(c.isalnum() for c in piece):  # "232" stays; a lone bracket or space does not
                    found.append(Segment(piece, piece))
                i = j
                continue
            for length in range(min(self._longest, len(text) - i), 0, -1):
                gloss = self._entries.get(text[i : i + length])
                if gloss is not None:
                    found.append(Segment(text[i : i + length], gloss))
                    i += length
                    break
            else:  # no key starts here: one uncovered character, merged with an uncovered neighbour
                if found and found[-1].gloss is None:
                    found[-1] = Segment(found[-1].text + text[i], None)
                else:
                    found.append(Segment(text[i], None))
                i += 1
        return found

    def gloss(self, term: str) -> str | None:
        """The English gloss of a Chinese `term`, or None when no part of it is glossed (or it has no
        Chinese). Uncovered characters are kept as they are: a partial gloss still says something."""
        if not has_cjk(term):
            return None
        segments = self.segments(term)
        if not any(s.gloss is not None and has_cjk(s.text) for s in segments):
            return None
        return " ".join(s.gloss if s.gloss is not None else s.text for s in segments)

    def uncovered(self, term: str) -> tuple[str, ...]:
        """The runs of Chinese characters in `term` that no entry covers (empty: fully glossed)."""
        return tuple(s.text for s in self.segments(term) if s.gloss is None)

    def glosses(self, terms: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """(term, gloss) for each distinct Chinese term of `terms` that can be glossed, in order."""
        found: dict[str, str] = {}
        for term in terms:
            if term not in found:
                gloss = self.gloss(term)
                if gloss is not None:
                    found[term] = gloss
        return tuple(found.items())


EMPTY = Glossary({})
