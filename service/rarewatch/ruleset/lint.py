"""Advice on a rule pack that loads: not errors, but almost certainly slips an operator wants to hear of
before deploying (`rarewatch rules check` prints it and still exits 0)."""

from __future__ import annotations

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
