"""Advice on a rule pack that loads: not errors, but almost certainly slips an operator wants to hear of
before deploying (`rarewatch rules check` prints it and still exits 0)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rarewatch.ruleset.text import canonical_term
from rarewatch.yamlpos import load_documents


@dataclass(frozen=True)
class Advice:
    """One piece of advice, at a place in a rule file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: warning: {self.message}"


def duplicate_terms(files: Sequence[tuple[str, str]]) -> list[Advice]:
    """Terms a vocabulary lists twice, in one canonical spelling ("licence" and "License" are one term),
    each at its second listing, naming the first: the second one does nothing, and usually a later edit
    was meant for a term that is already there. `files` are (name, YAML text) pairs of a pack that loads."""
    found: list[Advice] = []
    for name, text in files:
        for doc in load_documents(text):
            data = doc.data
            if not isinstance(data, dict) or "vocabulary" not in data:
                continue
            first: dict[str, int] = {}
            for index, term in enumerate(data.get("terms") or ()):
                key = _key(term)
                if key is None:
                    continue
                line = doc.line_of(("terms", index))
                if key in first:
                    found.append(
                        Advice(
                            name,
                            line,
                            f"vocabulary {data['vocabulary']!r} lists {_spelled(term)!r} twice "
                            f"(first at line {first[key]})",
                        )
                    )
                else:
                    first[key] = line
    return found


def _key(term: Any) -> str | None:
    """The term's canonical form, case-sensitive ones apart (`{term: US, case_sensitive: true}`)."""
    if isinstance(term, str):
        return canonical_term(term)
    if isinstance(term, dict) and isinstance(term.get("term"), str):
        return term["term"] if term.get("case_sensitive") else canonical_term(term["term"])
    return None


def _spelled(term: Any) -> str:
    return term if isinstance(term, str) else str(term.get("term"))


# Endings English base forms do not have, left when a word is cut before its final "e" or "y": announc~,
# remov~, doubl~, smuggl~, dodg~, paralyz~, paralys~, worr~, revok~, alleg~, and "-ate" verbs cut before
# the "e" (terminat~, violat~, evacuat~, confiscat~). A heuristic on the spelling, not a dictionary.
_CUT_SHORT = re.compile(
    r"(?:c|v|bl|gl|pl|dg|yz|lys|rr|[bcdfghjklmnpqrstvwxz]ok)$|^.{3,}eg$|^.{3,}[iluncgdp]at$"
)
_STEM = re.compile(r"(?<![A-Za-z])([A-Za-z]{2,})~")


def looks_cut_short(stem: str) -> bool:
    """Whether a `~` stem (lower case, without the `~`) looks like a word cut before its last letter:
    the forms of `reduc~` are reduc, reduced, reducing (and "reduces" through the plural ending), never
    "reduce"; those of `worr~` are no words at all."""
    return _CUT_SHORT.search(stem) is not None


def cut_short_stems(files: Sequence[tuple[str, str]]) -> list[Advice]:
    """Every `word~` of the rule files (comments and regexes aside) whose word looks cut short, at its
    line, with the whole word to write: word forms grow from the word as written
    (`rarewatch.ruleset.forms`)."""
    found: list[Advice] = []
    for name, text in files:
        for number, line in enumerate(text.splitlines(), start=1):
            code = line.split(" #", 1)[0]
            if code.lstrip().startswith("#") or "regex:" in code:
                continue
            for stem in _STEM.findall(code):
                if looks_cut_short(stem.lower()):
                    whole = stem + ("y" if stem.endswith("rr") else "e")
                    found.append(
                        Advice(
                            name,
                            number,
                            f"'{stem}~' looks cut short: its forms grow from the word as written and never "
                            f"include the word itself; write the whole word ('{whole}~')",
                        )
                    )
    return found
